"""Prometheus metrics of the worker stage: one registry per process, built from
:mod:`pitchside.metrics`, served by :func:`exporter` on the worker's own endpoint.

Per stream (at most ``PITCHSIDE_METRICS_MAX_STREAMS`` by name, the rest ``stream="other"``,
forgotten once the stream leaves the registry): frames inferred (and by which model) and
frames dropped. Per batch: its size and its preprocess, inference and postprocess times; per
frame: its share of the inference. And the model served, as an info metric.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable

from pitchside import metrics as m
from pitchside.exporter import MetricsServer
from pitchside.settings import Settings

STAGE = m.WORKER  # the ``stage`` label of this service's frames_dropped

# frames_dropped_total{stage="worker", reason=...}
REASON_BEHIND = "behind"  # live: an older frame skipped for a newer one of the same stream
REASON_BAD_FRAME = "bad_frame"  # not a decodable JPEG, or a malformed message
REASON_STALE = "stale"  # live: left pending by a dead worker, acknowledged unprocessed
REASONS = (REASON_BEHIND, REASON_BAD_FRAME, REASON_STALE)

REGISTRY = m.service_registry()
STREAMS = m.StreamLabels()

FRAMES_DROPPED = STREAMS.track(m.FRAMES_DROPPED, m.counter(m.FRAMES_DROPPED, REGISTRY))
FRAMES_INFERRED = STREAMS.track(m.WORKER_FRAMES, m.counter(m.WORKER_FRAMES, REGISTRY))
# Each stream's drops exist from its first frame, at 0, so that a first drop shows in rate().
STREAMS.start_at_zero(FRAMES_DROPPED, *({"stage": STAGE, "reason": r} for r in REASONS))
BATCH_SIZE = m.histogram(m.WORKER_BATCH_SIZE, REGISTRY)
PREPROCESS_SECONDS = m.histogram(m.WORKER_PREPROCESS_SECONDS, REGISTRY)
INFERENCE_SECONDS = m.histogram(m.WORKER_INFERENCE_SECONDS, REGISTRY)
INFERENCE_FRAME_SECONDS = m.histogram(m.WORKER_INFERENCE_FRAME_SECONDS, REGISTRY)
POSTPROCESS_SECONDS = m.histogram(m.WORKER_POSTPROCESS_SECONDS, REGISTRY)
MODEL = m.info(m.WORKER_MODEL, REGISTRY)


def exporter(settings: Settings) -> MetricsServer:
    """This process's worker ``/metrics`` server; applies the settings' stream cap."""
    STREAMS.max_streams = settings.metrics_max_streams
    return MetricsServer(REGISTRY, settings.metrics_host, settings.metrics_port)


def dropped(sids: Iterable[str], reason: str) -> None:
    """Count one dropped frame per item of ``sids`` (a stream id per frame)."""
    for sid, n in collections.Counter(sids).items():
        STREAMS.child(FRAMES_DROPPED, sid, stage=STAGE, reason=reason).inc(n)


def batch_done(
    sids: Iterable[str], model_id: str, preprocess_s: float, infer_s: float, post_s: float
) -> None:
    """Count a batch of frames (a stream id per frame) inferred by ``model_id``, and time it."""
    n = 0
    for sid, count in collections.Counter(sids).items():
        STREAMS.child(FRAMES_INFERRED, sid, model=model_id).inc(count)
        n += count
    if not n:
        return
    BATCH_SIZE.observe(n)
    PREPROCESS_SECONDS.observe(preprocess_s)
    INFERENCE_SECONDS.observe(infer_s)
    for _ in range(n):
        INFERENCE_FRAME_SECONDS.observe(infer_s / n)
    POSTPROCESS_SECONDS.observe(post_s)


def serving(model_id: str) -> None:
    """Set the model info: ``name/version`` of a registry model, else the file name alone."""
    name, _, version = model_id.rpartition("/") if "/" in model_id else (model_id, "", "")
    MODEL.info({"name": name, "version": version})
