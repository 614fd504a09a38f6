"""Prometheus metrics of the ingest service: one registry per process, built from
:mod:`pitchside.metrics`, served by :func:`exporter` on the service's own endpoint.

Per stream: frames and JPEG bytes published, reconnects, frames dropped and the source's state
(one series per stream, its state as a label), at most ``PITCHSIDE_METRICS_MAX_STREAMS``
streams by name (:data:`STREAMS`), the rest as ``stream="other"``; the service forgets a
stream's series once it has left the registry (:func:`keep_only`). Unlabelled: decode and
JPEG encode time per frame, and the streams running.
"""

from __future__ import annotations

from collections.abc import Collection

from prometheus_client import Gauge

from pitchside import metrics as m
from pitchside.exporter import MetricsServer
from pitchside.schema import StreamState
from pitchside.settings import Settings

STAGE = m.INGEST  # the ``stage`` label of this service's frames_dropped
REASON_STOPPED = "stopped"  # decoded and encoded, then discarded because the stream stopped
REASON_STALE = "stale"  # WebRTC: a newer frame arrived before it was taken
REASON_BUS_LOST = "bus_lost"  # live: Redis was away when the frame was to be published
REASONS = (REASON_STOPPED, REASON_STALE, REASON_BUS_LOST)

REGISTRY = m.service_registry()
STREAMS = m.StreamLabels()

DROPPED = STREAMS.track(m.FRAMES_DROPPED, m.counter(m.FRAMES_DROPPED, REGISTRY))
FRAMES_PUBLISHED = STREAMS.track(m.INGEST_FRAMES, m.counter(m.INGEST_FRAMES, REGISTRY))
BYTES_PUBLISHED = STREAMS.track(m.INGEST_BYTES, m.counter(m.INGEST_BYTES, REGISTRY))
RECONNECTS = STREAMS.track(m.INGEST_RECONNECTS, m.counter(m.INGEST_RECONNECTS, REGISTRY))
# Each stream's counters exist from its start, at 0, so that a first event shows in rate().
for _counter in (FRAMES_PUBLISHED, BYTES_PUBLISHED, RECONNECTS):
    STREAMS.start_at_zero(_counter)
STREAMS.start_at_zero(DROPPED, *({"stage": STAGE, "reason": r} for r in REASONS))
SOURCE_STATE = m.gauge(m.INGEST_SOURCE_STATE, REGISTRY)  # kept by SourceStates, below
DECODE_SECONDS = m.histogram(m.INGEST_DECODE_SECONDS, REGISTRY)
ENCODE_SECONDS = m.histogram(m.INGEST_ENCODE_SECONDS, REGISTRY)
STREAMS_ACTIVE = m.gauge(m.INGEST_STREAMS, REGISTRY)


def exporter(settings: Settings) -> MetricsServer:
    """This process's ingest ``/metrics`` server; applies the settings' stream cap."""
    STREAMS.max_streams = settings.metrics_max_streams
    return MetricsServer(REGISTRY, settings.metrics_host, settings.metrics_port)


def dropped(sid: str, reason: str, n: int = 1) -> None:
    """Count ``n`` frames of ``sid`` that ingest did not publish, and why."""
    STREAMS.child(DROPPED, sid, stage=STAGE, reason=reason).inc(n)


def published(sid: str, jpeg_bytes: int) -> None:
    """Count one frame of ``sid`` published, ``jpeg_bytes`` long."""
    STREAMS.child(FRAMES_PUBLISHED, sid).inc()
    STREAMS.child(BYTES_PUBLISHED, sid).inc(jpeg_bytes)


def reconnected(sid: str) -> None:
    STREAMS.child(RECONNECTS, sid).inc()


class SourceStates:
    """``pitchside_ingest_source_state``: each stream's one series, moved as its state changes.

    A stream with its own label has a single series ``{stream=sid, state=...} 1``; the
    streams past the cap add up in ``{stream="other", state=...}``. A series at 0 is removed.
    """

    def __init__(self, gauge: Gauge, streams: m.StreamLabels) -> None:
        self._gauge = gauge
        self._streams = streams
        self._current: dict[str, tuple[str, str]] = {}  # sid -> (label, state)
        self._counts: dict[tuple[str, str], int] = {}  # (label, state) -> streams

    def set(self, sid: str, state: StreamState) -> None:
        """Record that ``sid`` is in ``state`` now."""
        self._move(sid, (self._streams.label(sid), state.value))

    def forget(self, sid: str) -> None:
        self._move(sid, None)

    @property
    def sids(self) -> frozenset[str]:
        return frozenset(self._current)

    def _move(self, sid: str, new: tuple[str, str] | None) -> None:
        old = self._current.pop(sid, None)
        if old == new:
            if new is not None:
                self._current[sid] = new
            return
        if old is not None:
            self._counts[old] -= 1
            if self._counts[old]:
                self._gauge.labels(*old).set(self._counts[old])
            else:
                del self._counts[old]
                self._gauge.remove(*old)
        if new is not None:
            self._current[sid] = new
            self._counts[new] = self._counts.get(new, 0) + 1
            self._gauge.labels(*new).set(self._counts[new])


STATES = SourceStates(SOURCE_STATE, STREAMS)


def keep_only(sids: Collection[str]) -> None:
    """Forget the series of every stream not in ``sids`` (the registry's ids)."""
    for sid in STATES.sids - set(sids):
        STATES.forget(sid)
    STREAMS.keep_only(sids)
