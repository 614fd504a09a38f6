"""Live figures of one stream for each of its viewers, over a sliding window (the ``stats`` event).

Two levels, as the hub has them: a :class:`StreamStats` per stream's reader (every viewer of
the stream shares it) and a :class:`ViewerStats` per viewer.

- ``fps_in``: frames ingest published per second, told by the frame numbers (``seq``) of the
  detections read. Ingest numbers every frame it publishes 0, 1, 2 ... without a gap (and
  carries on across a camera's reconnections), so the highest ``seq`` read rises by one per
  frame ingested, whether or not the workers detected it.
- ``fps_detected``: detections messages the stream's reader read per second.
- ``fps_shown``: frame messages sent to this viewer per second.
- ``latency_p50_ms``/``latency_p95_ms``: capture (``ts_capture``) to sent, of the messages
  sent to this viewer (the quantity ``pitchside_end_to_end_seconds`` observes); None without one.
- drops per second: ``skipped`` (ingested, not detected: ``fps_in - fps_detected``, never
  negative), ``slow_client`` (this viewer's queue let its oldest go) and ``frame_trimmed`` (a
  binary viewer's frame whose JPEG had left the frames stream), the reasons of
  ``pitchside_frames_dropped_total{stage="gateway"}``.

Each rate counts the events of the last ``window_s`` and divides by the window, or by the time
since the reader (the viewer) started when that is shorter. The clock is injected (monotonic
seconds); wall-clock stamps enter only as the latency's two ends. Memory is bounded: a window
holds at most ``MAX_EVENTS`` of each kind (rates above ``MAX_EVENTS / window_s`` read low).

Limits of ``fps_in``: it is ingest's rate as the detections show it, so it lags by the
pipeline's latency, reads 0 while no detection arrives (no worker, or every frame skipped),
and moves in steps as coarse as the detections (a worker detecting one frame a second shows
ingest's frames in one-second steps; the window averages them). A late detection (a lower
``seq`` than one read before) does not move it.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from gateway.metrics import FRAME_TRIMMED, SLOW_CLIENT

WINDOW_S = 2.0  # the rates and percentiles cover this much of the past
MAX_EVENTS = 8192  # per kind and window: the memory bound
SKIPPED = "skipped"  # ingested but never detected (the metrics' reasons are the workers')
DROP_REASONS = (SKIPPED, SLOW_CLIENT, FRAME_TRIMMED)

Clock = Callable[[], float]  # monotonic seconds


@dataclass(frozen=True, slots=True)
class Stats:
    """One viewer's figures at one moment; see the module docstring for each."""

    window_s: float
    fps_in: float
    fps_detected: float
    fps_shown: float
    latency_p50_ms: float | None  # None: nothing sent in the window
    latency_p95_ms: float | None
    drops_per_s: dict[str, float]  # by reason, every one of DROP_REASONS


class _Window:
    """Events (monotonic time, value) of the last ``window_s``, at most ``MAX_EVENTS``."""

    def __init__(self, window_s: float, clock: Clock) -> None:
        self.window_s = window_s
        self.clock = clock
        self.started = clock()
        self.events: deque[tuple[float, float]] = deque()
        self.evicted_max: float | None = None  # the largest value that left the window

    def add(self, value: float = 0.0) -> None:
        if len(self.events) >= MAX_EVENTS:
            self._pop()
        self.events.append((self.clock(), value))

    def current(self) -> tuple[list[float], float]:
        """The values in the window, oldest first, and the seconds they cover (0: none yet)."""
        now = self.clock()
        while self.events and self.events[0][0] <= now - self.window_s:
            self._pop()
        return [v for _, v in self.events], min(self.window_s, max(0.0, now - self.started))

    def _pop(self) -> None:
        _, value = self.events.popleft()
        self.evicted_max = value if self.evicted_max is None else max(self.evicted_max, value)


def _rate(count: int, span_s: float) -> float:
    return count / span_s if span_s > 0 else 0.0


def _percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of a sorted, non-empty list."""
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


class StreamStats:
    """What one stream's reader saw: the ``seq`` of each detections message it read.

    Args:
        window_s: the sliding window.
        clock: monotonic seconds (``time.monotonic``; a fake in tests).
    """

    def __init__(self, window_s: float = WINDOW_S, clock: Clock = time.monotonic) -> None:
        self._reads = _Window(window_s, clock)

    @property
    def window_s(self) -> float:
        return self._reads.window_s

    def detected(self, seq: int) -> None:
        """The reader read the detections of frame ``seq``."""
        self._reads.add(seq)

    def rates(self) -> tuple[float, float]:
        """``(fps_in, fps_detected)`` now; both 0 when no detection came in the window."""
        seqs, span_s = self._reads.current()
        if not seqs:
            return 0.0, 0.0
        # The frames ingested in the window: those numbered above the highest seen before it
        # (before the first read: from the first one read on), up to the highest seen now.
        before = self._reads.evicted_max
        base = before if before is not None else min(seqs) - 1
        ingested = max(0.0, max(seqs) - base)
        return _rate(int(ingested), span_s), _rate(len(seqs), span_s)


class ViewerStats:
    """One viewer's figures: what was sent to it and dropped for it, with its stream's.

    Args:
        stream: the stats of the stream it views (shared with its other viewers).
        clock: monotonic seconds, the same clock as ``stream``'s.
    """

    def __init__(self, stream: StreamStats, clock: Clock = time.monotonic) -> None:
        self.stream = stream
        self._sent = _Window(stream.window_s, clock)  # value: latency ms, NaN when unknown
        self._drops = {
            reason: _Window(stream.window_s, clock) for reason in (SLOW_CLIENT, FRAME_TRIMMED)
        }

    def sent(self, ts_capture_ns: int, sent_ns: int) -> None:
        """A frame message captured at ``ts_capture_ns`` was sent at ``sent_ns`` (epoch ns;
        a capture time of 0, or after the send, counts the message but not its latency)."""
        known = 0 < ts_capture_ns <= sent_ns
        self._sent.add((sent_ns - ts_capture_ns) / 1e6 if known else math.nan)

    def dropped(self, reason: str) -> None:
        """A message of this viewer went for ``reason``: SLOW_CLIENT or FRAME_TRIMMED."""
        self._drops[reason].add()

    def snapshot(self) -> Stats:
        """The figures now."""
        fps_in, fps_detected = self.stream.rates()
        latencies, span_s = self._sent.current()
        ordered = sorted(v for v in latencies if not math.isnan(v))
        drops = {SKIPPED: max(0.0, fps_in - fps_detected)}
        for reason, window in self._drops.items():
            events, drop_span_s = window.current()
            drops[reason] = _rate(len(events), drop_span_s)
        return Stats(
            window_s=self.stream.window_s,
            fps_in=fps_in,
            fps_detected=fps_detected,
            fps_shown=_rate(len(latencies), span_s),
            latency_p50_ms=_percentile(ordered, 50) if ordered else None,
            latency_p95_ms=_percentile(ordered, 95) if ordered else None,
            drops_per_s=drops,
        )
