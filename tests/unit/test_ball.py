"""The ball filter on generated trajectories: noise, misses, skipped frames, false positives."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence

import numpy as np
import pytest

from tracker.football.ball import BallFilter, BallState

Box = tuple[float, float, float, float]
Point = tuple[float, float]
Path = Callable[[float], Point]

FPS = 25.0
BALL_PX = 12.0
SPOT: Point = (960.0, 900.0)  # the penalty spot: a ball-like blob that never moves


def _box(xy: Point, size: float = BALL_PX) -> Box:
    return (xy[0] - size / 2, xy[1] - size / 2, xy[0] + size / 2, xy[1] + size / 2)


def _centre(box: Box) -> Point:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def _dist(a: Point, b: Point) -> float:
    return math.hypot(a[0] - b[0], a[1] - b[1])


def straight(t: float) -> Point:
    return 200.0 + 800.0 * t, 500.0 - 100.0 * t


def parabola(t: float) -> Point:
    """A lofted ball: gravity at broadcast zoom (about 40 px/m) is some 400 px/s^2."""
    return 300.0 + 600.0 * t, 700.0 - 900.0 * t + 0.5 * 400.0 * t**2


def kick(t: float) -> Point:
    """At rest until 0.4 s, then struck at 2000 px/s."""
    return (600.0 + 2000.0 * max(t - 0.4, 0.0), 400.0)


def _feed(
    ball: BallFilter,
    path: Path,
    times: list[float],
    rng: np.random.Generator,
    noise_px: float = 1.0,
    missing: Collection[int] = (),
    extra: Sequence[tuple[Box, float]] = (),
) -> list[BallState | None]:
    """One update per time: the path's ball (score 0.8) but at ``missing`` frames, and ``extra``."""
    out = []
    for i, t in enumerate(times):
        cands = list(extra)
        if i not in missing:
            x, y = path(t)
            cands.append((_box((x + rng.normal(0, noise_px), y + rng.normal(0, noise_px))), 0.8))
        out.append(ball.update(cands, t))
    return out


def _frames(n: int) -> list[float]:
    return [i / FPS for i in range(n)]


@pytest.mark.parametrize("path", [straight, parabola, kick], ids=["straight", "parabola", "kick"])
def test_ball_filter_follows_a_noisy_ball_once_confirmed(path: Path) -> None:
    # given a ball seen in every frame with 1 px of noise
    rng = np.random.default_rng(1)
    ball = BallFilter()
    times = _frames(30)
    # when the frames go through
    out = _feed(ball, path, times, rng)
    # then the first frame is not reported (one hit confirms nothing), every later one is,
    # measured, on the ball (the kick included: a measured frame shows the detection)
    assert out[0] is None
    for t, state in zip(times[1:], out[1:], strict=True):
        assert state is not None and not state.predicted
        err = _dist(_centre(state.box), path(t))
        assert err < 4.0, f"t={t:.2f}: {err:.1f} px off"


@pytest.mark.parametrize(
    ("path", "first_missed", "limit_px"),
    [
        (straight, 15, 6.0),
        # a constant-velocity guess under gravity: 3 px from 0.12 s of it, more from the lag
        # of the velocity estimate behind it; within the ball's size
        (parabola, 15, BALL_PX),
        (kick, 12, BALL_PX),  # missed from the second frame after the kick on
    ],
    ids=["straight", "parabola", "after-a-kick"],
)
def test_ball_filter_bridges_a_three_frame_miss_with_marked_predictions(
    path: Path, first_missed: int, limit_px: float
) -> None:
    # given a ball with 1 px of noise, missed for three frames (over many noise draws)
    for seed in range(20):
        rng = np.random.default_rng(seed)
        ball = BallFilter()
        times = _frames(30)
        missed = range(first_missed, first_missed + 3)
        # when the frames go through
        out = _feed(ball, path, times, rng, missing=set(missed))
        # then the missed frames are predicted, near the truth, and then measured again
        for i in missed:
            state = out[i]
            assert state is not None and state.predicted, f"frame {i} not bridged"
            err = _dist(_centre(state.box), path(times[i]))
            assert err < limit_px, f"seed {seed}, frame {i}: prediction {err:.1f} px off"
        state = out[first_missed + 3]
        assert state is not None and not state.predicted, "measured again after the miss"


def test_ball_filter_ends_the_track_after_a_long_miss_and_confirms_anew() -> None:
    # given a ball missed for 0.6 s (15 frames), longer than max_predicted_s (0.25 s)
    rng = np.random.default_rng(3)
    ball = BallFilter(max_predicted_s=0.25)
    times = _frames(40)
    out = _feed(ball, straight, times, rng, missing=set(range(10, 25)))
    # then it is predicted up to 0.25 s after the last hit (frame 9), then nothing
    predicted = [i for i, s in enumerate(out) if s is not None and s.predicted]
    assert predicted == list(range(10, 16)), predicted
    assert all(out[i] is None for i in range(16, 25))
    # and when the ball is back, a new track needs its confirming second hit
    assert out[25] is None and out[26] is not None and not out[26].predicted
    assert len(out[26].trail) == 2, "a new track starts a new trail"


def test_ball_filter_never_takes_the_penalty_spot_once_the_ball_is_tracked() -> None:
    # given a static false positive in every frame, scored lower than the ball
    rng = np.random.default_rng(4)
    ball = BallFilter()
    times = _frames(60)
    spot = [(_box(SPOT), 0.5)]
    # when the ball crosses the frame, missed for three frames on the way
    out = _feed(ball, straight, times, rng, missing={30, 31, 32}, extra=spot)
    # then from its confirmation on, the ball is reported and never the spot
    for i, state in enumerate(out[1:], start=1):
        assert state is not None, f"frame {i}: nothing reported"
        assert _dist(_centre(state.box), SPOT) > 100, f"frame {i}: the spot was taken"
        assert _dist(_centre(state.box), straight(times[i])) < 5.0


def test_ball_filter_moves_off_a_false_positive_it_started_on_when_the_ball_appears() -> None:
    # given the spot alone for 10 frames (a track starts on it), then the ball as well
    rng = np.random.default_rng(5)
    ball = BallFilter()
    times = _frames(40)
    spot = [(_box(SPOT), 0.4)]
    out = _feed(ball, straight, times, rng, missing=set(range(10)), extra=spot)
    # then within a few frames the ball, with its clearly higher score, is the one reported
    assert all(s is not None and _dist(_centre(s.box), SPOT) < 2 for s in out[1:10])
    later = zip(out[14:], times[14:], strict=True)
    assert all(s is not None and _dist(_centre(s.box), straight(t)) < 5 for s, t in later)


def test_ball_filter_ignores_a_head_in_a_player_box_top() -> None:
    # given a player whose head the detector sees as a ball, scored higher than the ball
    rng = np.random.default_rng(6)
    player: Box = (1400.0, 300.0, 1460.0, 460.0)
    head = [(_box((1430.0, 315.0)), 0.9)]
    ball = BallFilter()
    times = _frames(30)
    # when the frames go through, the real ball missed for three of them
    for i, t in enumerate(times):
        cands = list(head)
        if i not in (12, 13, 14):
            x, y = straight(t)
            cands.append((_box((x + rng.normal(0, 1), y + rng.normal(0, 1))), 0.6))
        state = ball.update(cands, t, players=[player])
        # then the head is never reported
        assert state is None or _dist(_centre(state.box), (1430.0, 315.0)) > 100, f"frame {i}"
    # and heads alone never start a ball
    alone = BallFilter()
    assert all(alone.update(head, t, players=[player]) is None for t in times)


def test_ball_filter_keeps_a_tracked_ball_through_a_header() -> None:
    # given a ball in flight that passes through the top of a player's box
    rng = np.random.default_rng(7)
    player: Box = (560.0, 400.0, 620.0, 560.0)  # head band y 400..432; the path crosses it
    ball = BallFilter()
    times = _frames(30)
    out = []
    for t in times:
        x, y = straight(t)[0], 420.0
        box = _box((x + rng.normal(0, 1), y + rng.normal(0, 1)))
        out.append(ball.update([(box, 0.8)], t, players=[player]))
    # then it is measured in every frame after confirmation, in the head band as well
    assert all(s is not None and not s.predicted for s in out[1:])


def test_ball_filter_uses_real_time_between_skipped_frames() -> None:
    # given frames with irregular gaps (a live worker skipping), as much as 0.2 s apart
    rng = np.random.default_rng(8)
    ball = BallFilter()
    gaps = [0.04, 0.12, 0.04, 0.2, 0.08, 0.04, 0.16, 0.04, 0.04, 0.12] * 3
    times = list(np.cumsum([0.0, *gaps]))
    # when the frames go through
    out = _feed(ball, straight, times, rng)
    # then every frame after confirmation is measured and on the ball
    for t, state in zip(times[1:], out[1:], strict=True):
        assert state is not None and not state.predicted
        assert _dist(_centre(state.box), straight(t)) < 4.0


def test_ball_filter_reports_one_ball_and_bounds_its_trail() -> None:
    # given a tracked ball, then a second ball-like candidate far away (a spare ball), scored
    # the same, and the tracked ball missed for three frames
    rng = np.random.default_rng(9)
    ball = BallFilter(trail_len=25)
    times = _frames(200)
    spare = [(_box((1700.0, 100.0)), 0.8)]
    path: Path = lambda t: (900.0 + 100.0 * math.sin(t), 500.0)  # noqa: E731
    out = _feed(ball, path, times[:10], rng)
    out += _feed(ball, path, times[10:], rng, missing={50, 51, 52}, extra=spare)
    # then one ball, the tracked one, and its trail holds the last 25 centres, newest last
    last = out[-1]
    assert last is not None
    assert all(s is not None and _dist(_centre(s.box), (1700.0, 100.0)) > 100 for s in out[1:])
    assert len(last.trail) == 25
    assert last.trail[-1] == pytest.approx(_centre(last.box))


def test_ball_filter_keeps_the_last_measured_size_while_predicting() -> None:
    ball = BallFilter()
    ball.update([(_box((500.0, 500.0), 10.0), 0.8)], 0.0)
    ball.update([(_box((510.0, 500.0), 16.0), 0.8)], 0.04)
    state = ball.update([], 0.08)
    assert state is not None and state.predicted
    assert state.box[2] - state.box[0] == pytest.approx(16.0)


def test_ball_filter_starts_over_after_reset_or_when_time_goes_back() -> None:
    ball = BallFilter()
    for i in range(5):
        ball.update([(_box((500.0 + 10 * i, 500.0)), 0.8)], i / FPS)
    ball.reset()
    assert ball.update([], 0.2) is None
    for i in range(5):
        ball.update([(_box((500.0 + 10 * i, 500.0)), 0.8)], 10 + i / FPS)
    assert ball.update([(_box((500.0, 500.0)), 0.8)], 1.0) is None, "time went back: a new track"


def test_ball_filter_scales_its_speed_limit_with_the_frame_width() -> None:
    # given a ball jumping 60 px in one frame (1500 px/s): fine at 1920 px, too fast at 640 px
    wide, narrow = BallFilter(frame_width_px=1920), BallFilter(frame_width_px=640)
    for f in (wide, narrow):
        f.update([(_box((100.0, 100.0)), 0.8)], 0.0)
        f.update([(_box((100.0, 100.0)), 0.8)], 0.04)
    jump = [(_box((160.0, 100.0)), 0.8)]
    wide_state, narrow_state = wide.update(jump, 0.08), narrow.update(jump, 0.08)
    assert wide_state is not None and not wide_state.predicted
    assert narrow_state is not None and narrow_state.predicted, "outside the gate at 640 px"
