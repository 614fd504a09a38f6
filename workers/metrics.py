"""Prometheus metrics of the worker stage (default registry; label values are bounded).

``frames_dropped_total{stage="worker",reason}``, ``frames_processed_total{stage}`` and
``stage_seconds{stage}`` are the pipeline-wide ones of :mod:`pitchside.metrics`;
``batch_size`` is the workers' own.
"""

from __future__ import annotations

from prometheus_client import Histogram

from pitchside.metrics import FRAMES_DROPPED, FRAMES_PROCESSED, STAGE_SECONDS

__all__ = ["BATCH_SIZE", "FRAMES_DROPPED", "FRAMES_PROCESSED", "STAGE_SECONDS"]

STAGE = "worker"  # the ``stage`` label of this service's frames_dropped/frames_processed

# frames_dropped_total{stage="worker", reason=...}
REASON_BEHIND = "behind"  # live: an older frame skipped for a newer one of the same stream
REASON_BAD_FRAME = "bad_frame"  # not a decodable JPEG, or a malformed message
REASON_STALE = "stale"  # live: left pending by a dead worker, acknowledged unprocessed

BATCH_SIZE = Histogram("batch_size", "Frames per inference batch", buckets=(1, 2, 4, 8, 16, 32, 64))
