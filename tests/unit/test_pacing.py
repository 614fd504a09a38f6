"""Pacing maps media timestamps to wall-clock due times: pure arithmetic, no clock, no sleep."""

from __future__ import annotations

import pytest

from ingest.pacing import Pacer

MS = 1_000_000
FRAME = 40 * MS  # 25 fps


def test_pacer_schedules_frames_at_their_own_rate_when_on_time() -> None:
    # given a pacer and a decoder that is always ready early
    pacer = Pacer()
    start = 1_000 * MS
    # when 25 fps frames ask for their due time as soon as they are decoded
    dues = [pacer.due(pts_ns=i * FRAME, now_ns=start + i * 5 * MS) for i in range(10)]
    # then they are due exactly 40 ms apart, starting at once
    assert dues == [start + i * FRAME for i in range(10)], "frames must keep the source's rate"
    assert pacer.reanchors == 0


def test_pacer_follows_timestamps_when_frame_rate_is_variable() -> None:
    # given irregular timestamps: 40 ms steps, a 500 ms held frame, then 20 ms steps
    pts = [0, 40, 80, 580, 600, 620, 700]
    pacer = Pacer()
    start = 7 * MS
    # when each frame asks early
    dues = [pacer.due(p * MS, now_ns=start) for p in pts]
    # then each is due at its own timestamp, not at a constant interval
    assert [d - start for d in dues] == [p * MS for p in pts]


def test_pacer_publishes_late_frame_now_and_does_not_burst_when_decoder_is_late() -> None:
    # given a schedule anchored at t=0
    pacer = Pacer(max_late_ns=100 * MS)
    assert pacer.due(0, now_ns=0) == 0
    # when frame 1 (due at 40 ms) only arrives at 1 s
    late = pacer.due(FRAME, now_ns=1_000 * MS)
    # then it is due now (no sleep) and the schedule restarts from it: frame 2 is due 40 ms
    # later, not immediately as a catch-up burst would have it
    assert late == 1_000 * MS, "a late frame must not wait"
    assert pacer.due(2 * FRAME, now_ns=1_001 * MS) == 1_000 * MS + FRAME
    assert pacer.reanchors == 1


def test_pacer_keeps_the_schedule_when_lateness_is_within_tolerance() -> None:
    # given a schedule anchored at t=0 and a 100 ms tolerance
    pacer = Pacer(max_late_ns=100 * MS)
    pacer.due(0, now_ns=0)
    # when frame 1 is 30 ms late
    due1 = pacer.due(FRAME, now_ns=FRAME + 30 * MS)
    # then it is already due (publish at once) and frame 2 keeps its original slot, so jitter
    # does not accumulate into a slower stream
    assert due1 == FRAME
    assert pacer.due(2 * FRAME, now_ns=FRAME + 31 * MS) == 2 * FRAME
    assert pacer.reanchors == 0


def test_pacer_never_bursts_more_than_the_tolerance_when_decoder_is_slow() -> None:
    # given a decoder that delivers 25 fps frames every 50 ms (slower than real time)
    pacer = Pacer(max_late_ns=100 * MS)
    now = 0
    published = []
    for i in range(100):
        now = i * 50 * MS
        due = pacer.due(i * FRAME, now_ns=now)
        published.append(max(now, due))
    # then no frame is ever scheduled in the past by more than the tolerance
    for i, when in enumerate(published):
        assert when >= i * 50 * MS, f"frame {i} published before it was decoded"
    assert pacer.reanchors > 0, "a decoder that is always slower must re-anchor"


def test_pacer_continues_across_a_loop_when_source_keeps_timestamps_increasing() -> None:
    # given a 3-frame clip looped twice, the source offsetting the second pass by its length
    pacer = Pacer()
    pts = [0, FRAME, 2 * FRAME, 3 * FRAME, 4 * FRAME, 5 * FRAME]
    # when all are asked early
    dues = [pacer.due(p, now_ns=0) for p in pts]
    # then playback is continuous
    assert dues == pts
    assert pacer.reanchors == 0


@pytest.mark.parametrize(
    ("next_pts_ns", "why"),
    [
        (-FRAME, "timestamps went backwards"),
        (60_000 * MS, "timestamps jumped a minute ahead"),
    ],
)
def test_pacer_restarts_schedule_when_timestamps_are_discontinuous(
    next_pts_ns: int, why: str
) -> None:
    # given a running schedule
    pacer = Pacer(max_gap_ns=5_000 * MS)
    pacer.due(0, now_ns=0)
    pacer.due(FRAME, now_ns=1 * MS)
    # when the next timestamp is discontinuous
    due = pacer.due(next_pts_ns, now_ns=2 * MS)
    # then it is due now and the frame after it keeps the normal spacing
    assert due == 2 * MS, why
    assert pacer.due(next_pts_ns + FRAME, now_ns=3 * MS) == 2 * MS + FRAME, why


def test_pacer_refuses_negative_bounds() -> None:
    with pytest.raises(ValueError, match="max_late_ns"):
        Pacer(max_late_ns=-1)
