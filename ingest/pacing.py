"""Live pacing: map a frame's media time to the wall-clock time it is due.

Pure arithmetic on nanosecond integers, no clock of its own: the caller passes ``now_ns``
from a monotonic clock and sleeps until the returned due time. Pacing follows the frames'
own timestamps, so variable frame rate video and looped files (whose timestamps the source
keeps increasing) play at their real speed.
"""

from __future__ import annotations

NS_PER_S = 1_000_000_000


class Pacer:
    """Schedules frames at the rate their timestamps say, anchored to the first frame.

    The schedule is ``anchor_wall + (pts - anchor_pts)``. It is re-anchored to ``now`` (the
    late frame plays at once and the following frames keep their spacing from it) when:

    * a frame is later than ``max_late_ns``: a slow decoder never sleeps, and it never
      bursts out more than ``max_late_ns`` of video to catch up on time it lost;
    * the timestamps go backwards (a source that restarted its clock);
    * the timestamps jump forward by more than ``max_gap_ns`` (a discontinuity, not a
      held frame), which would otherwise stall the stream.

    Lateness up to ``max_late_ns`` is absorbed, not re-anchored, so scheduling jitter does not
    accumulate: over a long run the stream plays exactly at the source's rate.
    """

    def __init__(self, max_late_ns: int = NS_PER_S // 10, max_gap_ns: int = 5 * NS_PER_S) -> None:
        """Create a pacer.

        Args:
            max_late_ns: lateness (ns) beyond which the schedule restarts at the late frame.
            max_gap_ns: forward jump in timestamps (ns) beyond which the next frame is due
                right away instead of after the gap.

        Raises:
            ValueError: a bound is negative.
        """
        if max_late_ns < 0 or max_gap_ns < 0:
            raise ValueError(
                f"pacer bounds must be >= 0 ns, got max_late_ns={max_late_ns}, "
                f"max_gap_ns={max_gap_ns}"
            )
        self._max_late_ns = max_late_ns
        self._max_gap_ns = max_gap_ns
        self._anchor_wall_ns: int | None = None
        self._anchor_pts_ns = 0
        self._last_pts_ns = 0
        self.reanchors = 0  # how often the schedule restarted (late decoder, discontinuity)

    def due(self, pts_ns: int, now_ns: int) -> int:
        """The wall-clock time (same clock as ``now_ns``) at which frame ``pts_ns`` is due.

        A result at or before ``now_ns`` means "publish now, do not sleep".

        Args:
            pts_ns: the frame's media timestamp in nanoseconds.
            now_ns: the current time of the caller's monotonic clock, in nanoseconds.
        """
        if self._anchor_wall_ns is None:
            return self._anchor(pts_ns, now_ns, count=False)
        step_ns = pts_ns - self._last_pts_ns
        if step_ns < 0 or step_ns > self._max_gap_ns:
            return self._anchor(pts_ns, now_ns)
        due_ns = self._anchor_wall_ns + (pts_ns - self._anchor_pts_ns)
        if now_ns - due_ns > self._max_late_ns:
            return self._anchor(pts_ns, now_ns)
        self._last_pts_ns = pts_ns
        return due_ns

    def _anchor(self, pts_ns: int, now_ns: int, count: bool = True) -> int:
        self.reanchors += count
        self._anchor_wall_ns = now_ns
        self._anchor_pts_ns = pts_ns
        self._last_pts_ns = pts_ns
        return now_ns
