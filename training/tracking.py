"""MLflow names and plumbing shared by train, promote and ``pitchside models``.

The tracking store itself comes from :func:`pitchside.models.tracking_store`, pointed at
:data:`EXPERIMENT`; ``mlflow`` is imported only when it is used (~2 s).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import ModuleType

EXPERIMENT = "football-detector"
REGISTERED_MODEL = "football-detector"
CLASSIFIER_EXPERIMENT = "ball-classifier"  # the classifier has its own runs and champion
CLASSIFIER_MODEL = "ball-classifier"
CHAMPION = "champion"


def code_version() -> str:
    """The git commit of this checkout (``+dirty`` when modified), else the package version."""
    from pitchside import __version__

    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return __version__
    return f"{sha}+dirty" if dirty else sha


def register_artifact(
    mlflow: ModuleType, run_id: str, artifact_path: str, name: str = REGISTERED_MODEL
) -> str:
    """Register a run's artifact (an ONNX file) as a new version of model ``name``.

    MLflow 3's ``register_model("runs:/...")`` wants a logged MLflow model; the workers serve
    a plain ONNX file, so the version's source is the artifact itself.
    """
    client = mlflow.MlflowClient()
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(name)
    source = f"{client.get_run(run_id).info.artifact_uri}/{artifact_path}"
    return str(client.create_model_version(name, source, run_id=run_id).version)
