"""Follow a registry alias so that a running worker can switch to a newly promoted model.

Resolving a URI (a path, ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``) is
:func:`pitchside.models.resolve`; :class:`ModelWatcher` re-resolves an alias now and then
and hands over the new version, which the worker swaps in between batches.
"""

from __future__ import annotations

import logging

from pitchside.errors import ModelError
from pitchside.models import ResolvedModel, is_moving, resolve
from pitchside.settings import Settings

log = logging.getLogger(__name__)


class ModelWatcher:
    """Notices when a registry alias moves. Call :meth:`poll` from a thread now and then.

    Args:
        current: the model being served.
        settings: where the registry is (``tracking_uri``) and where versions download to.
    """

    def __init__(self, current: ResolvedModel, settings: Settings) -> None:
        self._current = current
        self._settings = settings

    @property
    def watching(self) -> bool:
        """Only aliases move; a file path or a pinned version never changes."""
        return is_moving(self._current.uri)

    def poll(self) -> ResolvedModel | None:
        """The newly resolved model when the alias points elsewhere now, else None.

        Blocks on the registry (and on downloading a new version): call it off the loop. A
        registry that cannot be read is logged and the current model kept.
        """
        if not self.watching:
            return None
        try:
            latest = resolve(self._current.uri, self._settings)
        except ModelError as exc:
            log.warning(
                "cannot re-resolve %s, keeping %s: %s",
                self._current.uri,
                self._current.model_id,
                exc,
            )
            return None
        if latest.version == self._current.version:
            return None
        self._current = latest
        return latest
