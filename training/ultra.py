"""Import Ultralytics the way training needs it: private settings, all CPU threads.

Ultralytics reads ``YOLO_OFFLINE`` (no update checks, no font or asset downloads) and
``YOLO_CONFIG_DIR`` when it is first imported. The ``pitchside`` command puts both in the
process environment before any command runs (the config dir is ``<data dir>/ultralytics``
unless the user chose one); training never touches the environment itself. This module
turns off, in that private settings file, Ultralytics' own MLflow callback and usage events
(pitchside logs to MLflow itself) and sets the torch thread count (Ultralytics would keep
one core idle).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from pitchside.settings import Settings

#: Ultralytics integrations that would log or phone home on their own.
_INTEGRATIONS = ("mlflow", "sync", "clearml", "comet", "dvc", "hub", "neptune", "raytune",
                 "tensorboard", "wandb")  # fmt: skip


def import_ultralytics(settings: Settings, threads: int = 0) -> ModuleType:
    """Return the ``ultralytics`` module, its integrations off and its torch threads set.

    Args:
        settings: its data dir holds Ultralytics' config dir (created if missing).
        threads: torch threads for training; 0 means every core.
    """
    # the YOLO_CONFIG_DIR the pitchside command sets
    (settings.data_dir / "ultralytics").mkdir(parents=True, exist_ok=True)
    ultralytics = importlib.import_module("ultralytics")  # typed as a module (mypy skips it)
    from ultralytics.utils import SETTINGS, torch_utils

    off = {k: False for k in _INTEGRATIONS if k in SETTINGS}
    if any(SETTINGS.get(k) for k in off):
        SETTINGS.update(off)
    torch_utils.NUM_THREADS = threads or os.cpu_count() or 1
    return ultralytics


def error_text(exc: BaseException) -> str:
    """An exception from Ultralytics or torch as one line: their messages span several."""
    return " ".join(str(exc).split())
