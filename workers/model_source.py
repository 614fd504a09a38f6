"""Where a worker's model comes from: a file path or an MLflow registry URI.

``models:/football-detector@champion`` (an alias) or ``models:/football-detector/3`` (a
version) is resolved with the MLflow client and its ONNX artifact downloaded to the data
directory; a plain path is used as it is. :class:`ModelWatcher` re-resolves an alias so a
running worker can switch to a newly promoted champion between batches.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from pitchside.errors import ModelError
from pitchside.settings import Settings

log = logging.getLogger(__name__)

REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """A model ready to load: its local ONNX file and the id detections are stamped with."""

    uri: str
    path: Path
    model_id: str  # "pitchside-football.onnx" for a file, "football-detector/3" for the registry
    version: str | None = None


def is_registry_uri(uri: str) -> bool:
    return uri.startswith("models:/")


def resolve(uri: str, settings: Settings) -> ResolvedModel:
    """Resolve ``uri`` to a local file.

    Raises:
        ModelError: a malformed registry URI, an unknown name/alias/version, a registry
            version without an ONNX artifact, or MLflow missing for a registry URI.
    """
    if not is_registry_uri(uri):
        path = Path(uri)
        return ResolvedModel(uri=uri, path=path, model_id=path.name)
    match = REGISTRY_URI.match(uri)
    if match is None:
        raise ModelError(
            f"model URI {uri!r} is not of the form models:/NAME@ALIAS or models:/NAME/VERSION"
        )
    try:
        from training.tracking import mlflow_client
    except ImportError as exc:  # mlflow is part of the train extra
        raise ModelError(f"serving {uri} needs MLflow: pip install 'pitchside[train]'") from exc
    mlflow = mlflow_client(settings)
    client = mlflow.MlflowClient()
    name = match["name"]
    try:
        if match["alias"]:
            mv = client.get_model_version_by_alias(name, match["alias"])
        else:
            mv = client.get_model_version(name, match["version"])
    except mlflow.exceptions.MlflowException as exc:
        raise ModelError(f"{uri} is not in the registry at {settings.tracking_uri}: {exc}") from exc
    dest = settings.data_dir / "models" / f"{name}-v{mv.version}"
    try:
        local = Path(
            mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=str(dest))
        )
    except mlflow.exceptions.MlflowException as exc:
        raise ModelError(f"cannot download {uri} (version {mv.version}): {exc}") from exc
    onnx = local if local.suffix == ".onnx" else next(iter(sorted(local.rglob("*.onnx"))), None)
    if onnx is None:
        raise ModelError(f"{uri} (version {mv.version}) has no ONNX artifact at {mv.source}")
    return ResolvedModel(uri=uri, path=onnx, model_id=f"{name}/{mv.version}", version=mv.version)


class ModelWatcher:
    """Notices when a registry alias moves. Call :meth:`poll` from a thread now and then."""

    def __init__(self, current: ResolvedModel, settings: Settings) -> None:
        self._current = current
        self._settings = settings

    @property
    def watching(self) -> bool:
        """Only aliases move; a file path or a pinned version never changes."""
        match = REGISTRY_URI.match(self._current.uri)
        return bool(match and match["alias"])

    def poll(self) -> ResolvedModel | None:
        """The newly resolved model when the alias points elsewhere now, else None."""
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
