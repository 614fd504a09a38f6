"""Prometheus metrics of the tracker stage: one registry per process, built from
:mod:`pitchside.metrics`, served by :func:`exporter` on the tracker's own endpoint.

Per stream (at most ``PITCHSIDE_METRICS_MAX_STREAMS`` by name, the rest ``stream="other"``,
forgotten when the tracker lets the stream go): frames tracked, active tracks and frames
dropped. Per frame: the tracking time. And the streams this process owns, and the leases it
took.
"""

from __future__ import annotations

from pitchside import metrics as m
from pitchside.exporter import MetricsServer
from pitchside.settings import Settings

STAGE = m.TRACKER  # the ``stage`` label of this service's frames_dropped
# frames_dropped_total{stage="tracker", reason=...}
REASON_LATE = "late"  # its place in the sequence had passed: the frames after it went out
REASON_BAD_MESSAGE = "bad_message"  # a dets entry of another schema version or malformed
REASONS = (REASON_LATE, REASON_BAD_MESSAGE)

REGISTRY = m.service_registry()
STREAMS = m.StreamLabels()
FRAMES_DROPPED = STREAMS.track(m.FRAMES_DROPPED, m.counter(m.FRAMES_DROPPED, REGISTRY))
FRAMES = STREAMS.track(m.TRACKER_FRAMES, m.counter(m.TRACKER_FRAMES, REGISTRY))
ACTIVE_TRACKS = STREAMS.track(m.TRACKER_ACTIVE_TRACKS, m.gauge(m.TRACKER_ACTIVE_TRACKS, REGISTRY))
# A stream's counters exist from its start, at 0, so that a first event shows in rate().
STREAMS.start_at_zero(FRAMES)
STREAMS.start_at_zero(FRAMES_DROPPED, *({"stage": STAGE, "reason": r} for r in REASONS))
SECONDS = m.histogram(m.TRACKER_SECONDS, REGISTRY)
OWNED = m.gauge(m.TRACKER_STREAMS, REGISTRY)
LEASES_TAKEN = m.counter(m.TRACKER_LEASES, REGISTRY)


def exporter(settings: Settings) -> MetricsServer:
    """This process's tracker ``/metrics`` server; applies the settings' stream cap."""
    STREAMS.max_streams = settings.metrics_max_streams
    return MetricsServer(REGISTRY, settings.metrics_host, settings.metrics_port)


def tracked(sid: str, seconds: list[float], active_tracks: int) -> None:
    """Frames of ``sid`` tracked, each in its time, with ``active_tracks`` kept after them."""
    STREAMS.child(FRAMES, sid).inc(len(seconds))
    for s in seconds:
        SECONDS.observe(s)
    STREAMS.child(ACTIVE_TRACKS, sid).set(active_tracks)


def dropped(sid: str, reason: str, n: int = 1) -> None:
    STREAMS.child(FRAMES_DROPPED, sid, stage=STAGE, reason=reason).inc(n)


def owned(n: int) -> None:
    OWNED.set(n)


def lease_taken() -> None:
    LEASES_TAKEN.inc()


def forget(sid: str) -> None:
    """Remove the series of a stream this process no longer tracks."""
    STREAMS.forget(sid)
