"""What a source from the API may be: an allowed scheme, a local file only in the media
folder, an upload only by its id.

Ingest opens what it is told to, on its own host; without a limit any API client could make it
open any file, and tell from the answer whether a path exists ("no such file") or what it is
("not a video: passwd"). So a local path must lie inside ``PITCHSIDE_MEDIA_DIR`` once every
symbolic link and ``..`` is resolved, or be one of the files the operator named
(``PITCHSIDE_MEDIA_ALLOW``, which ``pitchside up --source`` sets); a relative path is taken
inside the folder. Outside it, and for a missing file inside it, the answer is the same 422,
which says nothing about the file.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ingest.sources import FILE, SourceSpec
from ingest.sources.file import local_path
from pitchside.errors import SourceError
from pitchside.settings import Settings
from pitchside.uploads import UPLOAD_SCHEME, is_id, upload_path


def check_allowed(spec: SourceSpec, settings: Settings) -> SourceSpec:
    """``spec`` if the API may open it; a local file's path resolved inside the media folder.

    Raises:
        SourceError: (422) a scheme that is not allowed, or a local path that is outside the
            media folder or missing in it (one message for both).
    """
    if spec.scheme not in settings.source_schemes:
        raise SourceError(
            f"{spec.scheme} sources are not allowed here; allowed: "
            f"{', '.join(settings.source_schemes)}"
        )
    if spec.kind is not FILE:
        return spec
    if spec.scheme == UPLOAD_SCHEME:  # target: the upload's id
        path = upload_path(settings.data_dir, spec.target) if is_id(spec.target) else None
        if path is None or not path.is_file():
            raise SourceError(f"no upload {spec.target[:40]!r}; GET /api/uploads lists them")
        return dataclasses.replace(spec, target=str(path.resolve()))
    given = local_path(spec.target)
    root = settings.media_root.resolve()
    path = (root / given).resolve()  # an absolute `given` replaces root
    allowed = {Path(p).resolve() for p in settings.media_allow}
    if path in allowed or (path.is_relative_to(root) and path.is_file()):
        return dataclasses.replace(spec, target=str(path), shown=str(given))
    raise SourceError(f"no video {given.name!r} in the media folder")
