"""One stream's tracker: a frame's detections in, its tracks, teams, ball and possession out.

The same class runs in the tracker stage (one per owned stream, :mod:`tracker.service`) and
offline over MOTChallenge files (``pitchside track``), so what is measured offline is what
runs live. Everything is causal: a frame's result depends on it and the frames before it.

Which detection is what comes from its label, so that the football detector (``player``,
``goalkeeper``, ``referee``, ``ball``) and a COCO model (``person``, ``sports ball``) both work.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pitchside.schema import Track
from tracker.association import Association, Detected, Tracked, TrackerKind
from tracker.football.ball import BallFilter, BallState
from tracker.football.possession import Possession, PossessionState
from tracker.football.teams import TeamClassifier

BALL_LABELS = frozenset({"ball", "sports ball"})
PLAYER_LABELS = frozenset({"player", "person"})
GOALKEEPER_LABELS = frozenset({"goalkeeper"})
FORGET_EVERY = 50  # frames between forgetting the team samples of tracks that are gone
PIXELS_EVERY = 5  # frames at least between two looks at the pixels: crops a frame apart agree

#: Decodes the frame's JPEG when asked: the team colours need pixels only now and then.
ImageSource = Callable[[], np.ndarray | None]


@dataclass(frozen=True, slots=True)
class FrameTracks:
    """What the tracker makes of one frame."""

    tracks: list[Track]
    ball: BallState | None
    possession: PossessionState
    teams: dict[str, str]  # team -> "#rrggbb", once the colours are known

    def ball_dict(self) -> dict[str, Any] | None:
        if self.ball is None:
            return None
        return {
            "box": [round(v, 1) for v in self.ball.box],
            "predicted": self.ball.predicted,
            "trail": [[round(x, 1), round(y, 1)] for x, y in self.ball.trail],
        }

    def possession_dict(self) -> dict[str, Any]:
        return {
            "team": self.possession.team,
            "player": self.possession.player,
            "percent": {team: round(p, 1) for team, p in self.possession.percent.items()},
        }


class StreamTracker:
    """Tracks, teams, the ball and possession of one stream.

    Args:
        fps: the stream's nominal frame rate.
        width: its frame width in pixels (the ball's speed limit scales with it).
        kind: the association algorithm.
    """

    def __init__(self, fps: float, width: int, kind: TrackerKind = TrackerKind.BYTETRACK) -> None:
        self.association = Association(fps, kind)
        self.teams = TeamClassifier()
        self.ball = BallFilter(frame_width_px=width)
        self.possession = Possession()
        self._frames = 0
        self._players: list[int] = []  # the last frame's player track ids
        self._last_t_s = 0.0  # the last frame's capture time
        self._pixels_at = -PIXELS_EVERY  # the frame the pixels were last looked at

    def wants_pixels(self) -> bool:
        """Whether the next frame's pixels are worth decoding: some player of the last frame
        has no confident team yet (or a re-check is due), and not too soon after the last."""
        if self._frames - self._pixels_at < PIXELS_EVERY or not self._players:
            return False
        return self.teams.needs_pixels(self._players, self._last_t_s)

    def update(
        self, detections: Sequence[Detected], t_s: float, image: ImageSource | None = None
    ) -> FrameTracks:
        """One frame, captured at ``t_s`` seconds; ``image`` decodes its pixels if needed."""
        people = [d for d in detections if d.label not in BALL_LABELS]
        balls = [(d.box, d.score) for d in detections if d.label in BALL_LABELS]
        matched = self.association.update(people, t_s)
        players = [m for m in matched if m.label in PLAYER_LABELS]
        ids = [p.id for p in players]
        if image is not None and players and self.teams.needs_pixels(ids, t_s):
            pixels = image()
            if pixels is not None:
                self.teams.observe(pixels, [(p.id, p.box, p.score) for p in players], t_s)
                self._pixels_at = self._frames
        self._players, self._last_t_s = ids, t_s
        tracks = [self._track(m, players) for m in matched]
        # every person's head can look like a ball, not only the players'
        ball = self.ball.update(balls, t_s, [m.box for m in matched])
        holders = [(t.id, t.team, t.box) for t in tracks if t.label not in ("referee",)]
        possession = self.possession.update(_centre(ball.box) if ball else None, holders, t_s)
        self._frames += 1
        if self._frames % FORGET_EVERY == 0:
            alive = self.association.active_ids()
            self.teams.forget(t for t in self.teams.known_ids() if t not in alive)
        return FrameTracks(tracks, ball, possession, self.teams.colours() or {})

    def _track(self, m: Tracked, players: Sequence[Tracked]) -> Track:
        team: str | None = None
        if m.label in PLAYER_LABELS:
            team = self.teams.team_of(m.id)
        elif m.label in GOALKEEPER_LABELS:
            sides = [(p.box, t) for p in players if (t := self.teams.team_of(p.id)) is not None]
            team = self.teams.goalkeeper_team(m.box, sides)
        return Track(m.id, m.box, m.score, m.cls, m.label, team)


def _centre(box: tuple[float, float, float, float]) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
