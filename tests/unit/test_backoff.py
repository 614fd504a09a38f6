"""Reconnection delays: capped, exponential, jittered, started over after a success."""

from __future__ import annotations

import random

import pytest

from ingest.sources import MediaClock
from pitchside.backoff import Backoff

MS = 1_000_000


def test_backoff_bound_doubles_up_to_the_cap_and_every_delay_stays_within_it() -> None:
    # given a backoff from 0.5 s capped at 4 s, with seeded jitter
    backoff = Backoff(0.5, 4.0, random.Random(7))
    bounds, delays = [], []
    # when six attempts fail in a row
    for _ in range(6):
        bounds.append(backoff.bound_s())
        delays.append(backoff.next_s())
    # then the bound doubles to the cap and each delay is drawn below its bound
    assert bounds == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert all(0.0 <= d <= b for d, b in zip(delays, bounds, strict=True))
    assert len(set(delays)) == len(delays), "jittered: no two delays alike"


def test_backoff_reset_starts_over_at_the_initial_bound() -> None:
    backoff = Backoff(0.5, 4.0, random.Random(1))
    for _ in range(4):
        backoff.next_s()
    backoff.reset()
    assert backoff.bound_s() == 0.5 and backoff.attempts == 0


@pytest.mark.parametrize(("initial", "cap"), [(0.0, 1.0), (2.0, 1.0), (-1.0, 1.0)])
def test_backoff_refuses_bounds_that_make_no_sense(initial: float, cap: float) -> None:
    with pytest.raises(ValueError, match="initial_s <= cap_s"):
        Backoff(initial, cap)


def test_media_clock_continues_across_connections_and_never_goes_back() -> None:
    # given a camera whose timestamps start at 90 s, one frame every 40 ms
    clock = MediaClock()
    first = [clock.media_time(90_000 * MS + i * 40 * MS, 40 * MS) for i in range(3)]
    # when it reconnects and its timestamps start again from 0 (one frame without any)
    clock.new_connection()
    second = [clock.media_time(ts, 40 * MS) for ts in (0, 40 * MS, None)]
    # then media time starts at 0, and goes on increasing after the reconnect by at least a
    # frame, with the frame without a timestamp one step after the one before it
    assert first == [0, 40 * MS, 80 * MS]
    assert second[0] >= first[-1] + 40 * MS
    assert second[1] - second[0] == 40 * MS and second[2] - second[1] == 40 * MS


def test_media_clock_holds_when_a_camera_clock_steps_back() -> None:
    clock = MediaClock()
    a = clock.media_time(1_000 * MS, 40 * MS)
    b = clock.media_time(500 * MS, 40 * MS)  # the camera's clock jumped back within a session
    assert b > a


def test_media_clock_places_a_first_frame_without_timestamp_one_step_before_the_next() -> None:
    # given a camera whose first frame has no timestamp (PyAV over RTSP), then 7 s, 7.04 s...
    clock = MediaClock()
    times = [clock.media_time(ts, 40 * MS) for ts in (None, 7_000 * MS, 7_040 * MS)]
    # then the timed frames follow the untimed one a frame apart, from 0
    assert times == [0, 40 * MS, 80 * MS]
