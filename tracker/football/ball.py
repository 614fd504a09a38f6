"""The ball: at most one per frame, from noisy candidates, causal.

A detector sees the ball in most frames, misses it in some (blur, occlusion) and sees balls
that are not there (the penalty spot, a head, a sock). A constant-velocity Kalman filter on
the centre, stepped by the real time between frames (live workers skip frames), says where the
ball should be; a speed limit says where it can be. The main track takes the plausible
candidate nearest its prediction; one challenger track, fed by the best candidate the main
track left, replaces it when it is clearly the better ball, so that a track started on a false
positive does not hold on for ever. A short miss is bridged by the prediction, marked as such.
A frame with a hit reports the detection itself (no lag behind a kick); a jump far outside the
filter's uncertainty (a kick, a bounce) restarts its velocity from the jump, since a constant
velocity filter would otherwise take many frames to believe it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in source pixels
Point = tuple[float, float]
FloatArray = npt.NDArray[np.float64]

REFERENCE_WIDTH_PX = 1920.0
MAX_SPEED_PER_WIDTH = 1.3  # a hard shot crosses a broadcast view in under a second: 2500 px/s
GATE_BASE_PER_WIDTH = 0.01  # 19 px at 1920: detector jitter and a few ms of timing slack
MEASUREMENT_SIGMA_PER_WIDTH = 0.001  # 2 px at 1920: a ball box's centre is this noisy
MIN_MEASUREMENT_SIGMA_PX = 1.0
ACCEL_SIGMA_PER_WIDTH = 0.35  # px/s^2 per px: about 2 g at broadcast zoom, and panning
MANOEUVRE_NIS = 16.0  # normalised innovation squared (2 dof: p = 0.0003): a kick, a bounce
HEAD_FRACTION = 0.2  # the top of a person's box: heads look like balls to a detector
HEAD_TRUST_SIZES = 2.0  # a tracked ball within 2 of its sizes of a head candidate is trusted
SCORE_WEIGHT = 0.5  # in the choice: a candidate's score against its distance / gate radius
SCORE_EMA = 0.3  # weight of the newest score in a track's running score
SWAP_SCORE_MARGIN = 0.15  # a challenger must score this much better to replace a live track
SWAP_MIN_HITS = 3


@dataclass(frozen=True, slots=True)
class BallState:
    """The ball in one frame.

    Attributes:
        box: ``(x1, y1, x2, y2)`` in source pixels: the detection itself in a frame that has
            one, else the last measured size around the predicted centre.
        predicted: True when the detector missed it and this is the filter's prediction.
        trail: the last centres (measured or predicted), oldest first, newest last.
    """

    box: Box
    predicted: bool
    trail: tuple[Point, ...]


class _Track:
    """A constant-velocity Kalman filter on the centre, state ``(x, y, vx, vy)`` in px, px/s."""

    def __init__(
        self, box: Box, score: float, t_s: float, sigma_px: float, v_sigma: float, trail: int
    ) -> None:
        cx, cy = _centre(box)
        self.x: FloatArray = np.array([cx, cy, 0.0, 0.0])
        self.p: FloatArray = np.diag([sigma_px**2, sigma_px**2, v_sigma**2, v_sigma**2])
        self.t_s = t_s  # time of the state
        self.hit_s = t_s  # time of the last measurement
        self.hit_xy: Point = (cx, cy)  # the filtered centre then: the speed gate's anchor
        self.hits = 1
        self.measured_box = box
        self.size = (box[2] - box[0], box[3] - box[1])
        self.score = score
        self.measured = True  # this frame
        self.trail: deque[Point] = deque([(cx, cy)], maxlen=trail)

    @property
    def xy(self) -> Point:
        return float(self.x[0]), float(self.x[1])

    def predict(self, t_s: float, accel_sigma: float) -> None:
        dt = t_s - self.t_s
        self.measured = False
        if dt <= 0:  # a repeated timestamp: nothing moved
            return
        f = np.eye(4)
        f[0, 2] = f[1, 3] = dt
        # white-noise acceleration, per axis [[dt^4/4, dt^3/2], [dt^3/2, dt^2]] * sigma^2
        q = np.zeros((4, 4))
        q[0, 0] = q[1, 1] = dt**4 / 4
        q[0, 2] = q[2, 0] = q[1, 3] = q[3, 1] = dt**3 / 2
        q[2, 2] = q[3, 3] = dt**2
        self.x = f @ self.x
        self.p = f @ self.p @ f.T + q * accel_sigma**2
        self.t_s = t_s

    def correct(self, box: Box, score: float, sigma_px: float) -> None:
        z = np.array(_centre(box))
        innovation = z - self.x[:2]
        s_inv = np.linalg.inv(self.p[:2, :2] + np.eye(2) * sigma_px**2)
        since_hit = self.t_s - self.hit_s
        if float(innovation @ s_inv @ innovation) > MANOEUVRE_NIS and since_hit > 0:
            # struck, bounced or deflected: the old velocity is wrong, the jump tells the new
            velocity = (z - np.array(self.hit_xy)) / since_hit
            v_var = 2 * sigma_px**2 / since_hit**2
            self.x = np.concatenate([z, velocity])
            self.p = np.diag([sigma_px**2, sigma_px**2, v_var, v_var])
        else:
            k = self.p[:, :2] @ s_inv
            self.x = self.x + k @ innovation
            self.p = self.p - k @ self.p[:2, :]
        self.hit_s = self.t_s
        self.hit_xy = self.xy
        self.hits += 1
        self.measured_box = box
        self.size = (box[2] - box[0], box[3] - box[1])
        self.score = (1 - SCORE_EMA) * self.score + SCORE_EMA * score
        self.measured = True
        self.trail.append(_centre(box))

    def box(self) -> Box:
        """The measured box in a frame with a hit (no lag, no smoothing); else the prediction."""
        if self.measured:
            return self.measured_box
        (cx, cy), (w, h) = self.xy, self.size
        return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


class BallFilter:
    """At most one ball per frame, its false positives left out and its short misses bridged.

    One object per stream; :meth:`update` once per frame, with or without ball candidates (a
    miss counts only if it is seen), in capture order.

    Args:
        frame_width_px: the source's width; the speed limit, gate and noise scale with it.
        max_speed_px_s: the fastest plausible ball; default 1.3 frame widths per second.
        max_predicted_s: how long a missed ball is reported as predicted before the track ends
            (0.25 s: 6 frames at 25 fps, 7 at 30; longer and the guess wanders off a
            deflected ball).
        confirm_hits: hits a new track needs before it is reported (a single false positive
            is never drawn).
        confirm_window_s: a new track that goes this long without a hit is dropped.
        trail_len: centres kept in :attr:`BallState.trail` (1 s at 25 fps).
    """

    def __init__(
        self,
        frame_width_px: float = REFERENCE_WIDTH_PX,
        max_speed_px_s: float | None = None,
        max_predicted_s: float = 0.25,
        confirm_hits: int = 2,
        confirm_window_s: float = 0.2,
        trail_len: int = 25,
    ) -> None:
        if frame_width_px <= 0 or trail_len < 1 or confirm_hits < 1:
            raise ValueError(
                "frame_width_px must be > 0, trail_len and confirm_hits >= 1; got "
                f"{frame_width_px}, {trail_len}, {confirm_hits}"
            )
        self._max_speed = (
            MAX_SPEED_PER_WIDTH * frame_width_px if max_speed_px_s is None else max_speed_px_s
        )
        self._gate_base = GATE_BASE_PER_WIDTH * frame_width_px
        self._sigma = max(MIN_MEASUREMENT_SIGMA_PX, MEASUREMENT_SIGMA_PER_WIDTH * frame_width_px)
        self._accel = ACCEL_SIGMA_PER_WIDTH * frame_width_px
        self._max_predicted_s = max_predicted_s
        self._confirm_hits = confirm_hits
        self._confirm_window_s = confirm_window_s
        self._trail_len = trail_len
        self._main: _Track | None = None
        self._challenger: _Track | None = None
        self._last_s = -math.inf

    def reset(self) -> None:
        """Forgets the ball (a new source, a seek, a camera cut)."""
        self._main = self._challenger = None
        self._last_s = -math.inf

    def update(
        self, candidates: Sequence[tuple[Box, float]], t_s: float, players: Sequence[Box] = ()
    ) -> BallState | None:
        """Takes this frame's ball candidates; returns the ball, or None.

        Args:
            candidates: ``(box, score)`` of every ball detection in the frame.
            t_s: the frame's capture time in seconds (gaps are fine; a time before the last
                one starts over, as after :meth:`reset`).
            players: boxes of the frame's people (players, keepers, referees): a candidate in
                the top of one is a head unless the tracked ball is right there.
        Returns:
            The ball, measured or predicted, once a track is confirmed; else None.
        """
        if t_s < self._last_s:
            self.reset()
        self._last_s = t_s
        cands = [(box, score) for box, score in candidates if box[2] > box[0] and box[3] > box[1]]
        heads = [_in_head(_centre(box), players) for box, _ in cands]
        taken: int | None = None
        main = self._main
        if main is not None:
            # "confidently there": confirmed, and seen in the frame before this one
            trusted = main.measured and main.hits >= self._confirm_hits
            main.predict(t_s, self._accel)
            taken = self._choose(main, cands, heads, trust_heads=trusted)
            if taken is not None:
                main.correct(cands[taken][0], cands[taken][1], self._sigma)
            elif t_s - main.hit_s > self._max_predicted_s:
                main = self._main = None
            else:
                main.trail.append(main.xy)
        self._feed_challenger(cands, heads, taken, t_s)
        main = self._promote(main)
        if main is None or main.hits < self._confirm_hits:
            return None
        return BallState(box=main.box(), predicted=not main.measured, trail=tuple(main.trail))

    def _choose(
        self, track: _Track, cands: list[tuple[Box, float]], heads: list[bool], trust_heads: bool
    ) -> int | None:
        """The candidate within the speed gate that is nearest the prediction, score-weighted.

        A candidate in ``heads`` is taken only if ``trust_heads`` and it lies within a couple
        of ball sizes of the prediction (a header), never as a jump.
        """
        radius = self._gate_base + self._max_speed * (track.t_s - track.hit_s)
        head_radius = max(HEAD_TRUST_SIZES * max(track.size), self._gate_base)
        px, py = track.xy
        best, best_cost = None, math.inf
        for i, (box, score) in enumerate(cands):
            cx, cy = _centre(box)
            if math.hypot(cx - track.hit_xy[0], cy - track.hit_xy[1]) > radius:
                continue  # faster than a ball: a static false positive far off, or another ball
            near = math.hypot(cx - px, cy - py)
            if heads[i] and not (trust_heads and near <= head_radius):
                continue
            cost = near / radius - SCORE_WEIGHT * score
            if cost < best_cost:
                best, best_cost = i, cost
        return best

    def _feed_challenger(
        self, cands: list[tuple[Box, float]], heads: list[bool], taken: int | None, t_s: float
    ) -> None:
        """Keeps one other track on the best candidate the main track left (never a head)."""
        free = [i for i in range(len(cands)) if i != taken and not heads[i]]
        chal = self._challenger
        if chal is not None:
            chal.predict(t_s, self._accel)
            blocked = [i not in free for i in range(len(cands))]
            pick = self._choose(chal, cands, blocked, trust_heads=False)
            if pick is not None:
                chal.correct(cands[pick][0], cands[pick][1], self._sigma)
                free.remove(pick)
            else:
                confirmed = chal.hits >= self._confirm_hits
                limit = self._max_predicted_s if confirmed else self._confirm_window_s
                if t_s - chal.hit_s > limit:
                    chal = self._challenger = None
        if not free:
            return
        best = max(free, key=lambda i: cands[i][1])
        box, score = cands[best]
        # a clearly better candidate takes the slot: a static false positive must not hold it
        if chal is None or score > chal.score + SWAP_SCORE_MARGIN:
            self._challenger = _Track(
                box, score, t_s, self._sigma, self._max_speed / 2, self._trail_len
            )

    def _promote(self, main: _Track | None) -> _Track | None:
        """Makes a confirmed challenger the main track when there is none, or it is better.

        A main track that only misses a few frames keeps its place: a second ball-like thing
        as good as the ball (a spare ball) would otherwise take over at every miss. It takes
        over when the main track ends (``max_predicted_s``), or by scoring clearly higher.
        """
        chal = self._challenger
        if chal is None or chal.hits < self._confirm_hits or not chal.measured:
            return main
        clearly_better = main is None or (
            chal.hits >= SWAP_MIN_HITS and chal.score > main.score + SWAP_SCORE_MARGIN
        )
        if not clearly_better:
            return main
        self._main, self._challenger = chal, None
        return chal


def _centre(box: Box) -> Point:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def _in_head(xy: Point, players: Sequence[Box]) -> bool:
    x, y = xy
    return any(
        b[0] <= x <= b[2] and b[1] <= y <= b[1] + HEAD_FRACTION * (b[3] - b[1]) for b in players
    )
