"""What a worker holds between reading frames and writing detections, and small pure helpers.

A :class:`Frame` is an entry read from a frames stream and not yet acknowledged; a
:class:`Batch` is frames decoded and letterboxed together (with the detector that prepared
them, so a model swap never mixes two models in one batch); :class:`Inferred` is a batch with
its raw model output.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from pitchside.schema import FrameMsg, Mode, entry_order
from workers.engines import Detector, Prepared


@dataclass(slots=True)
class Frame:
    """One frames-stream entry this worker has read and not yet acknowledged."""

    key: str  # frames key
    sid: str
    entry_id: str
    mode: Mode
    fields: dict[bytes, bytes]
    dequeue_ns: int  # epoch ns when XREADGROUP/XAUTOCLAIM returned it
    job: str | None = None  # the analysis job it belongs to: its result is stored


@dataclass(slots=True)
class Batch:
    """Frames decoded and letterboxed together; ``bad`` ones are only acknowledged."""

    frames: list[Frame] = field(default_factory=list)
    msgs: list[FrameMsg] = field(default_factory=list)
    prepared: Prepared | None = None
    bad: list[tuple[Frame, str]] = field(default_factory=list)
    decode_s: float = 0.0
    detector: Detector | None = None  # the one that prepared it infers it, across a model swap


@dataclass(slots=True)
class Inferred:
    batch: Batch
    raw: np.ndarray | None = None  # (N, 4 + nc, A)
    infer_start_ns: int = 0
    infer_end_ns: int = 0
    infer_s: float = 0.0


def decode_jpeg(payload: bytes) -> np.ndarray | None:
    """``(H, W, 3)`` uint8 BGR from JPEG bytes, or None when they do not decode."""
    if not payload:
        return None
    try:
        return cv2.imdecode(np.frombuffer(payload, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        return None


def ids_by_key(frames: Iterable[Frame]) -> dict[str, list[str]]:
    ids: dict[str, list[str]] = {}
    for frame in frames:
        ids.setdefault(frame.key, []).append(frame.entry_id)
    return ids


def round_robin(frames: Sequence[Frame]) -> list[Frame]:
    """Frames interleaved across streams, each stream's in entry order."""
    queues: dict[str, list[Frame]] = {}
    for frame in sorted(frames, key=lambda f: entry_order(f.entry_id)):
        queues.setdefault(frame.key, []).append(frame)
    out: list[Frame] = []
    lists = list(queues.values())
    for i in range(max((len(q) for q in lists), default=0)):
        out.extend(q[i] for q in lists if i < len(q))
    return out
