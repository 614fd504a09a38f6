"""Who has the ball: the player nearest to it, feet first, held against flicker, causal.

The holder is the player whose feet (the bottom centre of the box) are nearest the ball,
within a reach proportional to the box's height, so that it holds at any zoom. A new holder
takes over only after being the nearest for a short while, so two players at a duel do not
swap it every frame. Players without a team (referees, or players whose team is not known
yet) never hold it.

Possession percentages are time-weighted by the real time between updates (live workers skip
frames): the interval up to an update is credited to the team that held the ball when it
began. Only held time counts, so the two figures sum to 100 once any was seen, as a broadcast
figure does. A pass belongs to the passer's team: while the ball is seen loose (nobody in
reach) the team keeps it for up to ``loose_team_s`` after the last touch; with no ball in
sight, holder and team are dropped after ``grace_s``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in source pixels
Point = tuple[float, float]

TEAMS = ("A", "B")
MAX_REACH_HEIGHTS = 1.0  # ball within one box height of the feet: at the feet, or a header
SWITCH_AFTER_S = 0.2  # the new nearest player must stay nearest this long (5 frames at 25 fps)
SWITCH_MIN_UPDATES = 2  # and for this many updates: one frame after a gap proves nothing
GRACE_S = 0.5  # a holder out of reach (or the ball out of sight) keeps it this long
LOOSE_TEAM_S = 3.0  # a seen, loose ball stays with the last holder's team this long (a pass)


@dataclass(frozen=True, slots=True)
class PossessionState:
    """Possession at one update.

    Attributes:
        team: the team in possession, or None.
        player: the track id holding the ball, or None (loose, out of sight, nobody).
        percent: ``{"A": %, "B": %}`` of the possessed time since the start (or the last
            :meth:`Possession.reset`); both 0.0 until any possession was seen, else they sum
            to 100.
    """

    team: str | None
    player: int | None
    percent: dict[str, float]


class Possession:
    """Ball possession of one stream, updated once per frame.

    Args:
        max_reach_heights: the farthest the ball may be from a player's feet, in heights of
            that player's box.
        switch_after_s: how long a new player must be the nearest before taking the ball.
        grace_s: how long a holder keeps the ball out of reach or out of sight.
        loose_team_s: how long a loose ball that is seen stays with the holder's team.
    """

    def __init__(
        self,
        max_reach_heights: float = MAX_REACH_HEIGHTS,
        switch_after_s: float = SWITCH_AFTER_S,
        grace_s: float = GRACE_S,
        loose_team_s: float = LOOSE_TEAM_S,
    ) -> None:
        self._reach = max_reach_heights
        self._switch_s = switch_after_s
        self._grace_s = grace_s
        self._loose_s = max(loose_team_s, grace_s)
        self._held_s: dict[str, float] = dict.fromkeys(TEAMS, 0.0)
        self._last_s: float | None = None
        self._holder: int | None = None
        self._team: str | None = None
        self._touch_s = -math.inf  # the holder's last time within reach
        self._challenger: tuple[int, float, int] | None = None  # id, nearest since, updates

    def reset(self) -> None:
        """Starts over: no holder, and the percentages from zero (a new match or source)."""
        self._held_s = dict.fromkeys(TEAMS, 0.0)
        self._last_s = None
        self._forget_holder()

    def update(
        self,
        ball_xy: Point | None,
        players: Sequence[tuple[int, str | None, Box]],
        t_s: float,
    ) -> PossessionState:
        """One frame.

        Args:
            ball_xy: the ball's centre in source pixels, or None when there is no ball.
            players: ``(track id, team or None, box)`` of the frame's players and keepers
                (referees may be included: with team None they never hold the ball).
            t_s: the frame's capture time in seconds. Earlier than the last one: the holder
                is forgotten (the percentages stay).
        Returns:
            The possession now.
        """
        if self._last_s is not None and t_s < self._last_s:
            self._forget_holder()
        elif self._last_s is not None and self._team is not None:
            self._held_s[self._team] = self._held_s.get(self._team, 0.0) + (t_s - self._last_s)
        self._last_s = t_s
        if ball_xy is None:
            self._challenger = None
            if t_s - self._touch_s > self._grace_s:
                self._holder = self._team = None
        else:
            self._follow(_nearest(ball_xy, players, self._reach), t_s)
        return PossessionState(self._team, self._holder, self._percent())

    def _follow(self, nearest: tuple[int, str] | None, t_s: float) -> None:
        if nearest is not None and nearest[0] == self._holder:
            self._team, self._touch_s, self._challenger = nearest[1], t_s, None
            return
        if nearest is None:
            self._challenger = None
        elif self._challenger is None or self._challenger[0] != nearest[0]:
            self._challenger = (nearest[0], t_s, 1)
        else:
            tid, since_s, updates = self._challenger
            self._challenger = (tid, since_s, updates + 1)
            if updates + 1 >= SWITCH_MIN_UPDATES and t_s - since_s >= self._switch_s:
                self._holder, self._team, self._touch_s = tid, nearest[1], t_s
                self._challenger = None
                return
        if t_s - self._touch_s > self._grace_s:
            self._holder = None
        if t_s - self._touch_s > self._loose_s:
            self._team = None

    def _forget_holder(self) -> None:
        self._holder = self._team = self._challenger = None
        self._touch_s = -math.inf

    def _percent(self) -> dict[str, float]:
        total = sum(self._held_s.values())
        if total <= 0:
            return dict.fromkeys(self._held_s, 0.0)
        return {team: 100.0 * held / total for team, held in self._held_s.items()}


def _nearest(
    ball: Point, players: Sequence[tuple[int, str | None, Box]], reach: float
) -> tuple[int, str] | None:
    """The player with a team whose feet are nearest the ball, in heights of their box."""
    best: tuple[int, str] | None = None
    best_rel = reach
    for tid, team, (x1, y1, x2, y2) in players:
        height = y2 - y1
        if team is None or height <= 0:
            continue
        rel = math.hypot(ball[0] - (x1 + x2) / 2, ball[1] - y2) / height
        if rel <= best_rel:
            best, best_rel = (tid, team), rel
    return best
