"""Prometheus metrics of the ingest service (default registry; label values are bounded).

prometheus_client adds ``_total`` to counter names: ``frames_published_total``,
``frames_dropped_total{stage="ingest",reason}``. No label carries a stream id.
``frames_dropped`` and ``stage_seconds`` are shared with other stages: when another service
module in the same process registered one first, that collector is reused instead of failing
on a duplicate name (as ``workers.metrics`` does).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

STAGE = "ingest"  # the ``stage`` label of this service's frames_dropped
REASON_STOPPED = "stopped"  # decoded and encoded, then discarded because the stream stopped

M = TypeVar("M", Counter, Gauge, Histogram)


def _shared(kind: Callable[..., M], name: str, doc: str, labels: Sequence[str], **kw: object) -> M:
    existing = REGISTRY._names_to_collectors.get(name)  # noqa: SLF001 (no public lookup)
    if existing is not None:
        return existing  # type: ignore[return-value]
    return kind(name, doc, labels, **kw)


FRAMES_PUBLISHED = _shared(
    Counter, "frames_published", "Frames ingest published to a frames stream", ["mode"]
)
FRAMES_DROPPED = _shared(Counter, "frames_dropped", "Frames not processed", ["stage", "reason"])
STAGE_SECONDS = _shared(
    Histogram,
    "stage_seconds",
    "Time per stage and frame; ingest: decode (with conversion to BGR), encode (resize, JPEG)",
    ["stage"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0),
)
STREAMS_ACTIVE = _shared(Gauge, "streams_active", "Streams this ingest process is running", [])
