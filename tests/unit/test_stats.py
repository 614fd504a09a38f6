"""The stats event's figures: rates over a sliding window on an injected clock, ingest's frame
rate from the frames' seq, latency percentiles, and drops by reason."""

from __future__ import annotations

import pytest

from gateway.hub import Outgoing, Viewer
from gateway.stats import (
    FRAME_TRIMMED,
    MAX_EVENTS,
    SKIPPED,
    SLOW_CLIENT,
    StreamStats,
    ViewerStats,
)

CAPTURE_NS = 1_700_000_000_000_000_000


class Clock:
    """Monotonic seconds that move only when a test says so (by binary fractions, which add
    up exactly: no event falls on a window's edge by rounding)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _read(stream: StreamStats, clock: Clock, seqs: range | list[int], every_s: float) -> None:
    for seq in seqs:
        clock.advance(every_s)
        stream.detected(seq)


def test_rates_are_zero_and_latency_none_before_any_detection(clock: Clock) -> None:
    # given a stream and a viewer that has seen nothing for a while
    stream = StreamStats(window_s=2.0, clock=clock)
    viewer = ViewerStats(stream, clock=clock)
    clock.advance(5.0)
    # then every figure is 0 and there is no latency
    stats = viewer.snapshot()
    assert (stats.fps_in, stats.fps_detected, stats.fps_shown) == (0.0, 0.0, 0.0)
    assert stats.latency_p50_ms is None and stats.latency_p95_ms is None
    assert stats.drops_per_s == {SKIPPED: 0.0, SLOW_CLIENT: 0.0, FRAME_TRIMMED: 0.0}
    assert stats.window_s == 2.0


def test_every_frame_detected_gives_fps_in_equal_to_fps_detected(clock: Clock) -> None:
    # given 32 frames a second for 4 s, every one detected
    stream = StreamStats(window_s=2.0, clock=clock)
    _read(stream, clock, range(128), every_s=1 / 32)
    # then both rates are 32 and nothing was skipped
    assert stream.rates() == (32.0, 32.0)
    assert ViewerStats(stream, clock=clock).snapshot().drops_per_s[SKIPPED] == 0.0


def test_seq_gaps_count_as_ingested_frames_the_workers_skipped(clock: Clock) -> None:
    # given ingest at 32 fps for 4 s and workers detecting every other frame (16 a second)
    stream = StreamStats(window_s=2.0, clock=clock)
    _read(stream, clock, range(1, 128, 2), every_s=1 / 16)
    # then fps_in is ingest's 32, fps_detected 16, and 16 a second were skipped
    assert stream.rates() == (32.0, 16.0)
    assert ViewerStats(stream, clock=clock).snapshot().drops_per_s[SKIPPED] == 16.0


def test_the_window_forgets_what_is_older_than_it(clock: Clock) -> None:
    # given 32 fps for 3 s, every frame detected, then for 2 s a worker that keeps up with
    # every fourth frame only (the newest each time: 99, 103 ... 159)
    stream = StreamStats(window_s=2.0, clock=clock)
    _read(stream, clock, range(96), every_s=1 / 32)
    _read(stream, clock, range(99, 160, 4), every_s=1 / 8)
    # then the rates are those of the last 2 s alone: ingest still at 32, 8 detected
    assert stream.rates() == (32.0, 8.0)
    # and once nothing arrives for longer than the window, they fall to 0
    clock.advance(2.5)
    assert stream.rates() == (0.0, 0.0)


def test_rates_of_a_young_stream_divide_by_the_time_since_it_started(clock: Clock) -> None:
    # given a reader started 1 s ago, on a stream long running, that read 8 frames
    stream = StreamStats(window_s=2.0, clock=clock)
    _read(stream, clock, range(500, 508), every_s=1 / 8)
    # then the rates are 8 a second, not 4: the window is not full yet
    assert stream.rates() == (8.0, 8.0)


def test_a_late_lower_seq_does_not_move_fps_in(clock: Clock) -> None:
    # given frames 0-63 over 2 s, then a second worker's late answer for frame 10
    stream = StreamStats(window_s=2.0, clock=clock)
    _read(stream, clock, range(64), every_s=1 / 32)
    stream.detected(10)
    # then ingest's rate is unchanged, though one more detection was read
    assert stream.rates() == (32.0, 65 / 2)


def test_fps_in_after_a_pause_counts_from_the_last_seq_seen(clock: Clock) -> None:
    # given frames up to 63, a 5 s silence (a camera reconnecting), then frames 64-71 in 1 s
    stream = StreamStats(window_s=2.0, clock=clock)
    _read(stream, clock, range(64), every_s=1 / 32)
    clock.advance(5.0)
    _read(stream, clock, range(64, 72), every_s=1 / 8)
    # then 8 frames in the 2 s window: 4 a second, both rates
    assert stream.rates() == (4.0, 4.0)


def test_viewer_shown_rate_and_latency_percentiles(clock: Clock) -> None:
    # given a viewer sent 16 messages in 2 s, with latencies 10, 20, ... 160 ms, shuffled
    stream = StreamStats(window_s=2.0, clock=clock)
    viewer = ViewerStats(stream, clock=clock)
    for seq, i in enumerate([9, 3, 16, 1, 12, 5, 7, 14, 2, 10, 15, 4, 8, 13, 6, 11]):
        clock.advance(1 / 8)
        stream.detected(seq)
        viewer.sent(CAPTURE_NS, CAPTURE_NS + i * 10_000_000)
    # then it was shown 8 a second, p50 80 ms and p95 160 ms (nearest rank)
    stats = viewer.snapshot()
    assert (stats.fps_in, stats.fps_detected, stats.fps_shown) == (8.0, 8.0, 8.0)
    assert stats.latency_p50_ms == pytest.approx(80.0)
    assert stats.latency_p95_ms == pytest.approx(160.0)
    # and 2 s after the last one, nothing is left: no latency, nothing shown
    clock.advance(2.0)
    stats = viewer.snapshot()
    assert stats.fps_shown == 0.0 and stats.latency_p50_ms is None


def test_a_message_without_capture_time_counts_as_shown_without_latency(clock: Clock) -> None:
    viewer = ViewerStats(StreamStats(window_s=2.0, clock=clock), clock=clock)
    clock.advance(1.0)
    viewer.sent(0, CAPTURE_NS)  # unknown capture time
    viewer.sent(CAPTURE_NS + 5, CAPTURE_NS)  # a capture after the send: another host's clock
    stats = viewer.snapshot()
    assert stats.fps_shown == pytest.approx(2.0)
    assert stats.latency_p50_ms is None and stats.latency_p95_ms is None


def test_viewer_drops_are_counted_per_reason_and_per_viewer(clock: Clock) -> None:
    # given two viewers of one stream; one loses 4 messages to its full queue in 2 s and 2
    # frames whose JPEG was gone
    stream = StreamStats(window_s=2.0, clock=clock)
    slow = ViewerStats(stream, clock=clock)
    other = ViewerStats(stream, clock=clock)
    for _ in range(4):
        clock.advance(0.5)
        slow.dropped(SLOW_CLIENT)
    slow.dropped(FRAME_TRIMMED)
    slow.dropped(FRAME_TRIMMED)
    # then its drops are 2 a second for being slow and 1 for trimming, the other's none
    assert slow.snapshot().drops_per_s == {SKIPPED: 0.0, SLOW_CLIENT: 2.0, FRAME_TRIMMED: 1.0}
    assert other.snapshot().drops_per_s == {SKIPPED: 0.0, SLOW_CLIENT: 0.0, FRAME_TRIMMED: 0.0}


def test_memory_is_bounded_and_the_seq_base_survives_the_bound(clock: Clock) -> None:
    # given more reads in one window than a window holds, each a frame apart, in 1 s
    stream = StreamStats(window_s=2.0, clock=clock)
    n = MAX_EVENTS + 100
    _read(stream, clock, range(n), every_s=1.0 / n)
    # then the window holds at most MAX_EVENTS, and fps_in counts the frames it holds
    fps_in, fps_detected = stream.rates()
    assert fps_detected == pytest.approx(MAX_EVENTS)
    assert fps_in == pytest.approx(MAX_EVENTS)


async def test_hub_viewer_notes_its_drops_in_its_stats(clock: Clock) -> None:
    # given a binary viewer with a queue of 2 and stats on the test clock
    stats = ViewerStats(StreamStats(window_s=2.0, clock=clock), clock=clock)
    viewer = Viewer("s", frames=True, maxlen=2, stats=stats)
    clock.advance(1.0)
    # when 5 messages come while it reads none, and one whose JPEG was gone
    for _ in range(5):
        viewer.offer(Outgoing(text="{}", binary=b"jpeg", ts_capture=1))
    viewer.offer(Outgoing(text="{}", binary=None))
    # then 3 slow-client drops and 1 trimmed frame in the last second
    drops = stats.snapshot().drops_per_s
    assert (drops[SLOW_CLIENT], drops[FRAME_TRIMMED]) == (3.0, 1.0)
    assert viewer.dropped == 3
