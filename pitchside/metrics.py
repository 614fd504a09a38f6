"""The metrics every pipeline stage shares: defined once, labelled by stage.

``frames_dropped_total{stage,reason}``, ``frames_processed_total{stage}`` and
``stage_seconds{stage}`` mean the same thing in ingest, the workers and the gateway, so
their names, help texts, labels and buckets live here. Each service's own ``metrics`` module
adds what only it measures and uses these for the rest. ``FRAMES_DROPPED`` and the others
are the process-wide instances in the default registry (the benchmark runs ingest and a
worker in one process: they share them); the gateway builds its own in a per-app registry
with the same factories. prometheus_client adds ``_total`` to counter names. Label values
stay bounded: stage, reason; never a frame, a viewer or (yet) a stream.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

#: Seconds per stage and frame or batch: JPEG encode (~1 ms) up to a slow batch (~2 s).
STAGE_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def frames_dropped(registry: CollectorRegistry = REGISTRY) -> Counter:
    return Counter(
        "frames_dropped",
        "Frames not processed or not delivered, by stage and reason",
        ["stage", "reason"],
        registry=registry,
    )


def frames_processed(registry: CollectorRegistry = REGISTRY) -> Counter:
    return Counter("frames_processed", "Frames processed, by stage", ["stage"], registry=registry)


def stage_seconds(registry: CollectorRegistry = REGISTRY) -> Histogram:
    return Histogram(
        "stage_seconds",
        "Time per stage: ingest decode and encode per frame; worker decode (JPEG and "
        "letterbox), infer and post (NMS) per batch",
        ["stage"],
        buckets=STAGE_BUCKETS_S,
        registry=registry,
    )


FRAMES_DROPPED = frames_dropped()
FRAMES_PROCESSED = frames_processed()
STAGE_SECONDS = stage_seconds()
