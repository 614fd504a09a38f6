"""Import Ultralytics the way training needs it: offline, private settings, all CPU threads.

Ultralytics reads its settings file and a few environment variables when it is first
imported, so this module is the one place that prepares them: ``YOLO_OFFLINE`` (no update
checks, no font or asset downloads), a private ``YOLO_CONFIG_DIR`` under the data directory
(its settings file turns off Ultralytics' own MLflow callback and usage events; pitchside logs
to MLflow itself), and the torch thread count (Ultralytics would keep one core idle).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType


def import_ultralytics(config_dir: Path, threads: int = 0) -> ModuleType:
    """Return the ``ultralytics`` module, configured for offline training.

    Args:
        config_dir: folder for Ultralytics' settings.json (created if missing).
        threads: torch threads for training; 0 means every core.
    """
    config_dir.mkdir(parents=True, exist_ok=True)
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir.resolve())
    import ultralytics
    from ultralytics.utils import SETTINGS, torch_utils

    off = {
        k: False
        for k in (
            "mlflow",
            "sync",
            "clearml",
            "comet",
            "dvc",
            "hub",
            "neptune",
            "raytune",
            "tensorboard",
            "wandb",
        )
        if k in SETTINGS
    }
    if any(SETTINGS.get(k) for k in off):
        SETTINGS.update(off)
    torch_utils.NUM_THREADS = threads or os.cpu_count() or 1
    return ultralytics
