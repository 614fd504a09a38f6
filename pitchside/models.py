"""Where a model comes from: a local path, or a version in the MLflow model registry.

``models:/football-detector@champion`` (an alias) or ``models:/football-detector/3`` (a
version) is resolved with the MLflow client and its artifact downloaded to the data
directory; a plain path is used as it is. Workers serve what :func:`resolve` returns and
training re-evaluates the champion through it, so both read the registry the same way.
``mlflow`` is imported only when a registry URI or the tracking store is used (~2 s).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from pitchside.errors import ModelError, ModelNotFoundError
from pitchside.settings import Settings

REGISTRY_SCHEME = "models:/"
_REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


@dataclass(frozen=True, slots=True)
class RegistryRef:
    """A parsed ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``."""

    name: str
    alias: str | None
    version: str | None

    @classmethod
    def parse(cls, uri: str) -> RegistryRef:
        """Raises ModelError for anything but the two registry forms."""
        match = _REGISTRY_URI.match(uri)
        if match is None:
            raise ModelError(
                f"model URI {uri!r} is not of the form models:/NAME@ALIAS or models:/NAME/VERSION"
            )
        return cls(match["name"], match["alias"], match["version"])


def registry_uri(name: str, alias: str) -> str:
    """``models:/NAME@ALIAS``."""
    return f"{REGISTRY_SCHEME}{name}@{alias}"


def is_registry_uri(uri: str) -> bool:
    return uri.startswith(REGISTRY_SCHEME)


def is_moving(uri: str) -> bool:
    """Only a registry alias can point elsewhere later; a path or a pinned version cannot."""
    return is_registry_uri(uri) and RegistryRef.parse(uri).alias is not None


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """A model ready to load: its local file and the id detections are stamped with."""

    uri: str
    path: Path
    model_id: str  # "pitchside-football.onnx" for a file, "football-detector/3" for the registry
    version: str | None = None


def tracking_store(settings: Settings, experiment: str | None = None) -> ModuleType:
    """The ``mlflow`` module, pointed at ``settings.tracking_uri`` (and ``experiment``).

    With the default sqlite store, artifacts go to ``<data_dir>/mlartifacts`` rather than to a
    ``mlruns`` folder in whatever directory the command was started from.

    Raises:
        ModelError: MLflow is not installed (it comes with the ``train`` extra).
    """
    try:
        import mlflow
    except ImportError as exc:
        raise ModelError(
            "the MLflow registry needs MLflow: pip install 'pitchside[train]'"
        ) from exc
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    if experiment is not None:
        if mlflow.get_experiment_by_name(experiment) is None:
            location = None
            if settings.mlflow_tracking_uri is None:
                location = (settings.data_dir / "mlartifacts").resolve().as_uri()
            mlflow.create_experiment(experiment, artifact_location=location)
        mlflow.set_experiment(experiment)
    module: ModuleType = mlflow  # untyped to the checker: its stubs are not analysed
    return module


def resolve(uri: str, settings: Settings) -> ResolvedModel:
    """Resolve ``uri`` to a local file, downloading a registry version's artifact.

    Raises:
        ModelNotFoundError: the registry has no such name, alias or version.
        ModelError: a malformed registry URI, a version without a servable artifact, or
            MLflow missing for a registry URI.
    """
    if not is_registry_uri(uri):
        path = Path(uri.removeprefix("file://")).expanduser()
        return ResolvedModel(uri=uri, path=path, model_id=path.name)
    ref = RegistryRef.parse(uri)
    mlflow = tracking_store(settings)
    client = mlflow.MlflowClient()
    try:
        if ref.alias is not None:
            mv = client.get_model_version_by_alias(ref.name, ref.alias)
        else:
            mv = client.get_model_version(ref.name, ref.version)
    except mlflow.exceptions.MlflowException as exc:
        raise ModelNotFoundError(
            f"{uri} is not in the registry at {settings.tracking_uri}: {exc}"
        ) from exc
    dest = settings.data_dir / "models" / f"{ref.name}-v{mv.version}"
    try:
        local = Path(
            mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=str(dest))
        )
    except mlflow.exceptions.MlflowException as exc:
        raise ModelError(f"cannot download {uri} (version {mv.version}): {exc}") from exc
    onnx = local if local.suffix == ".onnx" else next(iter(sorted(local.rglob("*.onnx"))), None)
    if onnx is None:
        raise ModelError(f"{uri} (version {mv.version}) has no ONNX artifact at {mv.source}")
    return ResolvedModel(
        uri=uri, path=onnx, model_id=f"{ref.name}/{mv.version}", version=str(mv.version)
    )
