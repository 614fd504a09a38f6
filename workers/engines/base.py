"""What every engine is: the :class:`Engine` protocol, the shapes it speaks, and how a runtime
is opened (:class:`Runtime`), so that the detector and the loader never name a runtime."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

DEFAULT_STRIDE = 32  # an export that does not say: every YOLOv8/YOLO11 detector's largest

#: Input shape with ``None`` for a dynamic dimension: (batch, channels, height, width).
InputShape = tuple[int | None, int | None, int | None, int | None]


class Engine(Protocol):
    """A loaded detection model that turns a letterboxed batch into raw YOLO output.

    ``infer`` may be called from several threads at once.
    """

    model_id: str  # the model file name, e.g. "yolov8n_int8.onnx"
    names: dict[int, str]  # class id -> label, from the model's metadata
    input_shape: InputShape
    stride: int  # the model's largest stride
    providers: list[str]  # what actually runs it, best first

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """``(N, 3, H, W)`` float32 RGB in [0, 1] -> ``(N, 4 + nc, A)`` float32."""
        ...


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What ``pitchside up`` learns about a model before starting anything."""

    model_id: str
    names: dict[int, str]
    input_shape: InputShape
    providers: list[str]


class OpenEngine(Protocol):
    """Opens one model file on a runtime."""

    def __call__(self, path: Path, providers: Sequence[str], threads: int, lanes: int) -> Engine:
        """Args: the model file, what runs it (from :attr:`Runtime.providers`), intra-op
        threads for each caller, and how many callers will infer at once."""
        ...


@dataclass(frozen=True, slots=True)
class Runtime:
    """One inference runtime, as the loader sees it.

    Attributes:
        providers: ``PITCHSIDE_PROVIDERS`` -> what would run a model, best first; raises
            SettingsError for a value this runtime cannot honour.
        check_providers: what a model is checked on before serving (the CPU: quick, and no
            accelerator memory taken by ``pitchside up``).
        open: loads a model file.
    """

    providers: Callable[[str], list[str]]
    check_providers: list[str]
    open: OpenEngine


def dim(value: object) -> int | None:
    """A static dimension, or None for a symbolic, dynamic or unknown one."""
    return value if isinstance(value, int) and value > 0 else None


def infer_in_chunks(
    batch: np.ndarray, fixed: int | None, run: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Run ``batch`` through ``run`` in chunks of a model's fixed batch size.

    A dynamic batch (``fixed`` None) or one of exactly ``fixed`` images is one call, with no
    copy; otherwise chunks of ``fixed``, the last one padded with zeros and the padding's
    output dropped.

    Args:
        batch: ``(N, 3, H, W)``.
        fixed: the model's batch dimension, None when dynamic.
        run: one model call, ``(fixed, 3, H, W)`` -> ``(fixed, 4 + nc, A)``.

    Returns:
        ``(N, 4 + nc, A)``.
    """
    if fixed is None or fixed == len(batch):
        return run(batch)
    chunks = []
    for start in range(0, len(batch), fixed):
        chunk = batch[start : start + fixed]
        n = len(chunk)
        if n < fixed:  # a fixed batch of 4 with 3 images: pad, then drop the padding
            padding = np.zeros((fixed - n, *chunk.shape[1:]), dtype=chunk.dtype)
            chunk = np.concatenate([chunk, padding])
        chunks.append(run(chunk)[:n])
    return np.concatenate(chunks)
