"""Prometheus metrics of the worker stage (served on /metrics in a later change).

Label values stay bounded: stage, reason. ``frames_dropped`` is shared by every stage
(``frames_dropped_total{stage,reason}``): when another service module in the same process
registered it first, that collector is reused instead of failing on a duplicate name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from prometheus_client import REGISTRY, Counter, Histogram

STAGE = "worker"  # the ``stage`` label of this service's frames_dropped/frames_processed

# frames_dropped_total{stage="worker", reason=...}
REASON_BEHIND = "behind"  # live: an older frame skipped for a newer one of the same stream
REASON_BAD_FRAME = "bad_frame"  # not a decodable JPEG, or a malformed message
REASON_STALE = "stale"  # live: left pending by a dead worker, acknowledged unprocessed

M = TypeVar("M", Counter, Histogram)


def _shared(kind: Callable[..., M], name: str, doc: str, labels: Sequence[str], **kw: object) -> M:
    existing = REGISTRY._names_to_collectors.get(name)  # noqa: SLF001 (no public lookup)
    if existing is not None:
        return existing  # type: ignore[return-value]
    return kind(name, doc, labels, **kw)


FRAMES_DROPPED = _shared(Counter, "frames_dropped", "Frames not processed", ["stage", "reason"])
FRAMES_PROCESSED = _shared(Counter, "frames_processed", "Frames processed", ["stage"])
STAGE_SECONDS = _shared(
    Histogram,
    "stage_seconds",
    "Time per worker stage, per batch: decode (JPEG + letterbox), infer, post (NMS)",
    ["stage"],
    buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
BATCH_SIZE = _shared(
    Histogram,
    "batch_size",
    "Frames per inference batch",
    [],
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
