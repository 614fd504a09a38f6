"""The tracker's reorder buffer: detections back in seq order, waiting only while a missing
frame can still come, never longer than its bound."""

from __future__ import annotations

from pitchside.schema import DetsMsg
from tracker.reorder import Reorder


def dets(seq: int, worker: str = "w1") -> DetsMsg:
    return DetsMsg(seq, f"{seq}-0", 0, 4, 4, "m", [], {}, worker=worker)


def seqs(msgs: list[DetsMsg]) -> list[int]:
    return [m.seq for m in msgs]


def test_one_writer_never_waits_even_for_frames_it_skipped() -> None:
    # given one live worker that skipped frames 3 and 4
    reorder = Reorder(max_wait_s=1.0)
    for seq in (0, 1, 2, 5, 6):
        assert reorder.push(dets(seq), now_s=0.0)
    # then every frame goes out at once, in order: nobody can still send 3 or 4
    assert seqs(reorder.pop_ready(now_s=0.0)) == [0, 1, 2, 5, 6]
    assert len(reorder) == 0 and reorder.wait_s(0.0) is None


def test_two_writers_wait_for_the_one_that_may_still_send_the_missing_frames() -> None:
    # given frames 0-3 from w1, then w2's 8-11 before w1's 4-7 arrive
    reorder = Reorder(max_wait_s=1.0)
    for seq in range(4):
        reorder.push(dets(seq, "w1"), 0.0)
    assert seqs(reorder.pop_ready(0.0)) == [0, 1, 2, 3]
    for seq in range(8, 12):
        reorder.push(dets(seq, "w2"), 0.1)
    # then 8-11 wait: w1's newest is 3, so it may still send 4-7
    assert reorder.pop_ready(0.1) == [] and len(reorder) == 4
    assert reorder.wait_s(0.1) == 1.0
    # and when w1's frames come, all go out in order
    for seq in range(4, 8):
        reorder.push(dets(seq, "w1"), 0.2)
    assert seqs(reorder.pop_ready(0.2)) == list(range(4, 12))


def test_a_frame_waits_no_longer_than_the_bound_and_a_late_one_is_refused() -> None:
    reorder = Reorder(max_wait_s=0.5)
    reorder.push(dets(0, "w1"), 0.0)
    reorder.push(dets(1, "w2"), 0.0)
    assert seqs(reorder.pop_ready(0.0)) == [0, 1]
    reorder.push(dets(5, "w2"), 1.0)  # w1 (newest 0) may still send 2-4
    assert reorder.pop_ready(1.2) == []
    assert abs((reorder.wait_s(1.2) or 0) - 0.3) < 1e-9
    # when the bound passes, 5 goes out without 2-4
    assert seqs(reorder.pop_ready(1.5)) == [5]
    # and a frame whose place has passed, or a repeat, is refused
    assert not reorder.push(dets(3, "w1"), 1.6)
    assert not reorder.push(dets(5, "w2"), 1.6)
    assert reorder.push(dets(6, "w2"), 1.6)


def test_a_writer_gone_quiet_stops_holding_the_others_up() -> None:
    reorder = Reorder(max_wait_s=60.0, writer_idle_s=2.0)
    reorder.push(dets(0, "dead"), 0.0)
    assert seqs(reorder.pop_ready(0.0)) == [0]
    reorder.push(dets(3, "alive"), 1.0)
    assert reorder.pop_ready(1.0) == []  # "dead" may still send 1 and 2
    assert seqs(reorder.pop_ready(2.5)) == [3]  # not after 2 s of silence


def test_memory_stays_bounded_by_max_held() -> None:
    # given a writer that never sends frame 1 while another sends 10,000 frames after it
    reorder = Reorder(max_wait_s=1e9, max_held=100)
    reorder.push(dets(0, "slow"), 0.0)
    out = reorder.pop_ready(0.0)
    for seq in range(2, 10_002):
        reorder.push(dets(seq, "fast"), 0.0)
        out += reorder.pop_ready(0.0)
        assert len(reorder) <= 101
    # then what went out is in order, with no repeat
    assert seqs(out) == sorted(set(seqs(out)))
