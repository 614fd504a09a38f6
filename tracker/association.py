"""Detections to tracks: the ``trackers`` package's multi-object trackers behind one small API.

Every object but the ball (players, goalkeepers, referees) goes through one tracker, so that
a player the detector calls a goalkeeper for a frame keeps his id; a track's class is the
vote of its last :data:`CLASS_VOTES` detections. The ball is not tracked here: one small,
fast object is better followed by :class:`tracker.football.ball.BallFilter`.

Times are the frames' capture times in seconds: the trackers predict over the real gap when
a live worker skipped frames, rather than pretending the frames were consecutive.
"""

from __future__ import annotations

import warnings
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker, OCSORTTracker, SORTTracker

Box = tuple[float, float, float, float]

CLASS_VOTES = 15  # detections a track's class is voted over
#: Seconds a lost track is kept for a detection to come back to it (the trackers count this
#: in 30 fps frames; see :func:`make_tracker`).
LOST_S = 2.0


class TrackerKind(StrEnum):
    """The association algorithms measured against each other (README, "Tracking")."""

    BYTETRACK = "bytetrack"
    SORT = "sort"
    OCSORT = "ocsort"


@dataclass(frozen=True, slots=True)
class Detected:
    """One detection of a frame, as the association takes it."""

    box: Box
    score: float
    cls: int
    label: str


@dataclass(frozen=True, slots=True)
class Tracked:
    """A detection matched to a track: the track's id and voted class, the detection's box."""

    id: int
    box: Box
    score: float
    cls: int
    label: str
    index: int  # of the detection in the frame's list


def make_tracker(kind: TrackerKind, fps: float, **overrides: Any) -> Any:
    """A new tracker of ``kind`` for a stream of about ``fps`` frames a second."""
    lost_frames = round(LOST_S * 30)  # the trackers scale this by 30 / frame_rate
    if kind is TrackerKind.BYTETRACK:
        options: dict[str, Any] = {
            "lost_track_buffer": lost_frames, "frame_rate": fps,
            # our workers report boxes from 0.25 up (PITCHSIDE_CONF), and small players score
            # 0.3-0.6: ByteTrack's bar of 0.7 left a third of them untracked on the clip
            "track_activation_threshold": 0.25, "high_conf_det_threshold": 0.4,
            "minimum_consecutive_frames": 2, "minimum_iou_threshold": 0.1,
        }  # fmt: skip
        return ByteTrackTracker(**(options | overrides))
    if kind is TrackerKind.SORT:
        options = {"lost_track_buffer": lost_frames, "frame_rate": fps}
        return SORTTracker(**(options | overrides))
    if kind is TrackerKind.OCSORT:
        options = {"lost_track_buffer": lost_frames, "frame_rate": fps}
        return OCSORTTracker(**(options | overrides))
    raise ValueError(f"unknown tracker {kind!r}")


class Association:
    """One stream's tracks of everything but the ball.

    Args:
        fps: the stream's nominal frame rate (the trackers' reference for their buffers).
        kind: which algorithm of the ``trackers`` package.
        overrides: the tracker's own arguments, over ours (for the measurements).
    """

    def __init__(
        self, fps: float, kind: TrackerKind = TrackerKind.BYTETRACK, **overrides: Any
    ) -> None:
        self.kind = kind
        self._tracker = make_tracker(kind, fps, **overrides)
        self._votes: dict[int, deque[tuple[int, str]]] = {}

    def update(self, detections: Sequence[Detected], t_s: float | None) -> list[Tracked]:
        """Match this frame's ``detections`` to the tracks; the confirmed ones come back
        (a detection that starts a track shows once the track is confirmed).

        Args:
            t_s: the frame's capture time in seconds; None for consecutive frames.
        """
        frame = _to_supervision(detections)
        with warnings.catch_warnings():  # a backwards timestamp is skipped and warned of
            warnings.simplefilter("ignore", UserWarning)
            out = self._tracker.update(frame, timestamp=t_s)
        matched: list[Tracked] = []
        indices = out.data.get("index", ())  # a frame with no boxes comes back without data
        for track_id, index in zip(out.tracker_id, indices, strict=True):
            if track_id < 0:
                continue
            det = detections[int(index)]
            cls, label = self._vote(int(track_id), det)
            matched.append(Tracked(int(track_id), det.box, det.score, cls, label, int(index)))
        self._forget_gone()
        return matched

    def active_ids(self) -> set[int]:
        """The ids of the tracks the tracker still keeps (matched now, or lost for a while)."""
        return {int(t.tracker_id) for t in self._tracker.tracks if t.tracker_id >= 0}

    def _vote(self, track_id: int, det: Detected) -> tuple[int, str]:
        votes = self._votes.setdefault(track_id, deque(maxlen=CLASS_VOTES))
        votes.append((det.cls, det.label))
        ((winner, _),) = Counter(votes).most_common(1)
        return winner

    def _forget_gone(self) -> None:
        """Drop the votes of tracks the tracker has let go: memory stays bounded."""
        if len(self._votes) > 2 * len(self._tracker.tracks) + 64:
            alive = self.active_ids()
            for track_id in [t for t in self._votes if t not in alive]:
                del self._votes[track_id]


def _to_supervision(detections: Sequence[Detected]) -> sv.Detections:
    if not detections:
        empty = sv.Detections.empty()
        empty.data["index"] = np.zeros(0, dtype=int)
        return empty
    return sv.Detections(
        xyxy=np.array([d.box for d in detections], dtype=np.float32),
        confidence=np.array([d.score for d in detections], dtype=np.float32),
        class_id=np.array([d.cls for d in detections], dtype=int),
        data={"index": np.arange(len(detections))},
    )
