"""Prometheus metrics of the ingest service (default registry; label values are bounded).

``frames_dropped_total{stage="ingest",reason}`` and ``stage_seconds{stage}`` are the
pipeline-wide ones of :mod:`pitchside.metrics`; ``frames_published_total{mode}`` and
``streams_active`` are ingest's own. No label carries a stream id.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from pitchside.metrics import FRAMES_DROPPED, STAGE_SECONDS

__all__ = ["FRAMES_DROPPED", "FRAMES_PUBLISHED", "STAGE_SECONDS", "STREAMS_ACTIVE"]

STAGE = "ingest"  # the ``stage`` label of this service's frames_dropped
REASON_STOPPED = "stopped"  # decoded and encoded, then discarded because the stream stopped

FRAMES_PUBLISHED = Counter(
    "frames_published", "Frames ingest published to a frames stream", ["mode"]
)
STREAMS_ACTIVE = Gauge("streams_active", "Streams this ingest process is running")
