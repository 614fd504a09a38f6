"""Team per player track, from shirt colour, causal and cached per track.

Decoding a frame's JPEG costs more than everything else in the tracker, so pixels are asked
for only while some track lacks a confident team (:meth:`TeamClassifier.needs_pixels`), and
each track is sampled a few times, a few frames apart, then fixed. The two teams are found by
2-means over one colour feature per track; each track takes the nearest centre once its
samples agree. A rare re-check re-samples a few fixed tracks so that a wrong early call heals,
and the letters stay with their colours across re-fits.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in source pixels
FloatArray = npt.NDArray[np.float64]

TEAMS = ("A", "B")

# The torso, as fractions of the player box: the middle of its upper half, below the head and
# above the shorts, narrow enough to leave out the arms and most of the grass beside the body.
TORSO_X = (0.3, 0.7)
TORSO_Y = (0.18, 0.45)
MIN_TORSO_SIDE_PX = 3  # smaller crops are a few blurred pixels: no colour worth keeping
MAX_TORSO_OVERLAP = 0.1  # share of the torso another player's box may cover (no mixed shirts)

# Grass, by HSV hue in OpenCV's 0..179 scale, saturated and not black; masked out of a crop.
GRASS_HUE = (35, 85)
GRASS_MIN_SAT = 60
GRASS_MIN_VAL = 40
GRASS_LOW = np.array([GRASS_HUE[0], GRASS_MIN_SAT, GRASS_MIN_VAL], np.uint8)
GRASS_HIGH = np.array([GRASS_HUE[1], 255, 255], np.uint8)
MIN_KEPT_PIXELS = 6
MIN_KEPT_FRACTION = 0.2  # a crop nearly all "grass" is a green shirt: keep all of its pixels

# Feature: the mean chroma vector (S cos H, S sin H), which a brighter or darker light leaves
# alone, and brightness V weighted down, which separates white from black kits (no hue).
VALUE_WEIGHT = 0.35

_HUE_RAD = np.arange(256) * (math.pi / 90.0)  # OpenCV's hue is degrees / 2 (0..179)
_COS_LUT = np.cos(_HUE_RAD).astype(np.float32)
_SIN_LUT = np.sin(_HUE_RAD).astype(np.float32)

SAMPLES_KEPT = 5  # per track, the newest
CONFIDENT_SAMPLES = 3  # the newest this many agree: the team is fixed
MAX_SAMPLES = 8  # after this many without agreement, the majority is fixed (bounds decoding)
MARGIN_RATIO = 0.6  # a sample counts only if nearer its centre than 0.6 x the other's distance
SAMPLE_EVERY_S = 0.12  # 3 frames at 25 fps: consecutive frames give the same crop
MAX_BACKOFF_EXP = 5  # a track that cannot be sampled (crowded) is retried 0.24 s ... 3.84 s on

MIN_TRACKS_TO_FIT = 6
MIN_SAMPLES_TO_FIT = 2
MIN_CLUSTER_TRACKS = 2
MIN_CENTRE_DISTANCE = 0.15  # in feature units: a split of one kit (light and shade) is smaller
MIN_SEPARATION = 3.0  # centre distance over the RMS distance of tracks to their centre
KMEANS_RESTARTS = 5  # k-means++ starts besides the farthest pair; the least inertia wins
KMEANS_ITERATIONS = 20
KMEANS_SEED = 0

RECHECK_EVERY_S = 12.0  # 300 frames at 25 fps
RECHECK_TRACKS = 2
MAX_TRACKS = 256  # a caller that never forgets still holds at most this many tracks
MIN_SIDE_PLAYERS = 2  # per team, to place its side of the pitch for a goalkeeper


@dataclass(slots=True)
class _Sample:
    feature: FloatArray  # (3,)
    bgr: FloatArray  # (3,) mean colour of the kept pixels


@dataclass(slots=True)
class _Track:
    samples: deque[_Sample] = field(default_factory=lambda: deque(maxlen=SAMPLES_KEPT))
    summary: _Sample | None = None  # the samples' median, kept so that a re-fit is cheap
    team: str | None = None
    confident: bool = False
    rechecking: bool = False  # the team stays as it was until new samples agree
    taken: int = 0  # samples since the decision was (re)opened
    failures: int = 0  # attempts in a row without a usable crop
    due_s: float = -math.inf  # the next sample is wanted from then on
    seen_s: float = -math.inf
    decided_s: float = -math.inf


class TeamClassifier:
    """Assigns each player track team ``"A"`` or ``"B"`` from its shirt colour.

    One object per stream. Per frame, ask :meth:`needs_pixels` with the frame's player track
    ids and capture time (as often as you like: it is idempotent for one time); only when it
    says True, decode the frame and call :meth:`observe` with every player track of that frame.
    The clock is the frames' capture time, so skipped frames and repeated questions change
    nothing; time that goes back (a new source) moves every deadline back with it.

    Args:
        min_score: detections below this score are never sampled (their box may be wrong).
        recheck_every_s: this often, :data:`RECHECK_TRACKS` fixed tracks of the frame are
            sampled again, so that a wrong early call heals.
    """

    def __init__(self, min_score: float = 0.5, recheck_every_s: float = RECHECK_EVERY_S) -> None:
        if recheck_every_s <= 0:
            raise ValueError(f"recheck_every_s must be > 0, got {recheck_every_s}")
        self._min_score = min_score
        self._recheck_every_s = recheck_every_s
        self._tracks: dict[int, _Track] = {}
        self._now_s = -math.inf
        self._recheck_s = math.inf  # the next re-check round, set by the first frame
        self._centres: FloatArray | None = None  # (2, 3), row i is TEAMS[i]
        self._colours: dict[str, str] | None = None

    @property
    def track_count(self) -> int:
        """Tracks held now (bounded by :data:`MAX_TRACKS`, smaller when the caller forgets)."""
        return len(self._tracks)

    def known_ids(self) -> list[int]:
        """The track ids held (to forget those the tracker no longer has)."""
        return list(self._tracks)

    def needs_pixels(self, track_ids: Collection[int], t_s: float) -> bool:
        """Whether the pixels of the frame at ``t_s`` are wanted (decode only then).

        Side effects: marks the tracks as seen, and every ``recheck_every_s`` opens a
        re-check of a few of them.

        Args:
            track_ids: the frame's player tracks.
            t_s: the frame's capture time in seconds.
        Returns:
            True when a given track has no confident team and its next sample is due.
        """
        self._advance(t_s)
        if self._now_s >= self._recheck_s:
            self._open_rechecks(track_ids)
            self._recheck_s = self._now_s + self._recheck_every_s
        wanted = False
        for tid in track_ids:
            track = self._tracks.get(tid)
            if track is None:
                wanted = True
                continue
            track.seen_s = self._now_s
            wanted = wanted or self._wants_sample(track)
        return wanted

    def observe(
        self, image_bgr: np.ndarray, players: Sequence[tuple[int, Box, float]], t_s: float
    ) -> None:
        """Samples the torso colour of the tracks that want one, and re-fits the teams.

        Args:
            image_bgr: ``(H, W, 3)`` uint8, the decoded frame.
            players: ``(track id, box, detection score)`` of every player track in the frame
                (all of them: the others' boxes tell which torsos are covered).
            t_s: the frame's capture time in seconds.
        """
        self._advance(t_s)
        if not players:
            return
        covered = _covered_shares(
            np.array([_torso(box) for _, box, _ in players], dtype=np.float64).reshape(-1, 4),
            np.array([box for _, box, _ in players], dtype=np.float64).reshape(-1, 4),
        )
        added = False
        for i, (tid, box, score) in enumerate(players):
            track = self._tracks.get(tid)
            if track is None:
                track = self._tracks[tid] = _Track(seen_s=self._now_s)
            if not self._wants_sample(track):
                continue
            sample = None
            if score >= self._min_score and covered[i] <= MAX_TORSO_OVERLAP:
                sample = _sample(image_bgr, _torso(box))
            if sample is None:
                track.failures += 1
                backoff = 2 ** min(track.failures, MAX_BACKOFF_EXP)
                track.due_s = self._now_s + SAMPLE_EVERY_S * backoff
                continue
            track.samples.append(sample)
            track.summary = _median(list(track.samples))
            track.taken += 1
            track.failures = 0
            track.due_s = self._now_s + SAMPLE_EVERY_S
            added = True
        if added:
            self._fit()
            for track in self._tracks.values():
                self._decide(track)
        self._bound()

    def team_of(self, track_id: int) -> str | None:
        """The track's team: fixed once confident, provisional before, None until the first fit."""
        track = self._tracks.get(track_id)
        return None if track is None else track.team

    def colours(self) -> dict[str, str] | None:
        """``{"A": "#rrggbb", "B": "#rrggbb"}``, the teams' mean shirt colours, once fitted."""
        return None if self._colours is None else dict(self._colours)

    def forget(self, track_ids: Iterable[int]) -> None:
        """Drops tracks that are gone (the tracker's removed ids)."""
        for tid in track_ids:
            self._tracks.pop(tid, None)

    @staticmethod
    def goalkeeper_team(gk_box: Box, players: Sequence[tuple[Box, str]]) -> str | None:
        """The team of a goalkeeper: the one whose players' mean x is nearest to the keeper.

        Keepers wear their own colours, so colour says nothing; their side of the pitch does.

        Args:
            gk_box: the goalkeeper's box.
            players: ``(box, team)`` of the frame's players with a team.
        Returns:
            The team, or None while either team has fewer than :data:`MIN_SIDE_PLAYERS` players.
        """
        xs: dict[str, list[float]] = {team: [] for team in TEAMS}
        for box, team in players:
            if team in xs:
                xs[team].append((box[0] + box[2]) / 2)
        if any(len(v) < MIN_SIDE_PLAYERS for v in xs.values()):
            return None
        gk_x = (gk_box[0] + gk_box[2]) / 2
        return min(TEAMS, key=lambda team: abs(sum(xs[team]) / len(xs[team]) - gk_x))

    def _advance(self, t_s: float) -> None:
        if t_s < self._now_s:  # the clock went back: so do the deadlines
            shift = t_s - self._now_s
            for track in self._tracks.values():
                track.due_s += shift
                track.seen_s += shift
                track.decided_s += shift
            self._recheck_s += shift
        elif self._now_s == -math.inf:
            self._recheck_s = t_s + self._recheck_every_s
        self._now_s = t_s

    def _wants_sample(self, track: _Track) -> bool:
        if track.confident or self._now_s < track.due_s:
            return False
        # before the first fit a few samples are enough: the rest would wait for nothing
        return self._centres is not None or len(track.samples) < CONFIDENT_SAMPLES

    def _open_rechecks(self, track_ids: Collection[int]) -> None:
        fixed = [t for tid in track_ids if (t := self._tracks.get(tid)) is not None and t.confident]
        for track in sorted(fixed, key=lambda t: t.decided_s)[:RECHECK_TRACKS]:
            track.confident = False
            track.rechecking = True
            track.samples.clear()
            track.summary = None
            track.taken = 0
            track.failures = 0
            track.due_s = self._now_s

    def _fit(self) -> None:
        fitted = [
            t.summary
            for t in self._tracks.values()
            if t.summary is not None and len(t.samples) >= MIN_SAMPLES_TO_FIT
        ]
        if len(fitted) < MIN_TRACKS_TO_FIT:
            return
        points = np.stack([s.feature for s in fitted])
        result = _two_means(points)
        if result is None:
            return
        centres, labels = result
        if self._centres is not None and _swap_is_closer(centres, self._centres):
            centres, labels = centres[::-1].copy(), 1 - labels
        self._centres = centres
        bgr = np.stack([s.bgr for s in fitted])
        self._colours = {team: _hex(bgr[labels == k].mean(axis=0)) for k, team in enumerate(TEAMS)}

    def _decide(self, track: _Track) -> None:
        if self._centres is None or track.confident or not track.samples:
            return
        features = np.stack([s.feature for s in track.samples])
        dist = np.linalg.norm(features[:, None, :] - self._centres[None, :, :], axis=2)
        labels = dist.argmin(axis=1)
        clear = dist.min(axis=1) <= MARGIN_RATIO * dist.max(axis=1)
        recent = labels[-CONFIDENT_SAMPLES:]
        if (
            track.taken >= CONFIDENT_SAMPLES
            and bool(clear[-CONFIDENT_SAMPLES:].all())
            and bool((recent == recent[0]).all())
        ):
            self._fix(track, int(recent[0]))
        elif track.taken >= MAX_SAMPLES:
            self._fix(track, int(np.bincount(labels, minlength=2).argmax()))
        elif not track.rechecking and track.summary is not None:
            dist_summary = np.linalg.norm(self._centres - track.summary.feature, axis=1)
            track.team = TEAMS[int(dist_summary.argmin())]

    def _fix(self, track: _Track, label: int) -> None:
        track.team = TEAMS[label]
        track.confident = True
        track.rechecking = False
        track.decided_s = self._now_s

    def _bound(self) -> None:
        if len(self._tracks) <= MAX_TRACKS:
            return
        # drop the least recently seen quarter at once, so that this runs rarely
        by_age = sorted(self._tracks, key=lambda tid: self._tracks[tid].seen_s)
        for tid in by_age[: len(self._tracks) - MAX_TRACKS * 3 // 4]:
            del self._tracks[tid]


def _torso(box: Box) -> Box:
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    return (x1 + TORSO_X[0] * w, y1 + TORSO_Y[0] * h, x1 + TORSO_X[1] * w, y1 + TORSO_Y[1] * h)


def _covered_shares(torsos: FloatArray, boxes: FloatArray) -> list[float]:
    """Per player, the largest share of its torso that another player's box covers.

    Args:
        torsos: ``(N, 4)`` the players' torso boxes.
        boxes: ``(N, 4)`` their boxes, in the same order.
    """
    t, b = torsos[:, None, :], boxes[None, :, :]
    iw = np.clip(np.minimum(t[..., 2], b[..., 2]) - np.maximum(t[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(t[..., 3], b[..., 3]) - np.maximum(t[..., 1], b[..., 1]), 0, None)
    area = np.maximum((torsos[:, 2] - torsos[:, 0]) * (torsos[:, 3] - torsos[:, 1]), 1e-9)
    share = iw * ih / area[:, None]
    np.fill_diagonal(share, 0.0)
    return [float(v) for v in share.max(axis=1)]


def _sample(image_bgr: np.ndarray, torso: Box) -> _Sample | None:
    h, w = image_bgr.shape[:2]
    x1, y1 = max(int(torso[0]), 0), max(int(torso[1]), 0)
    x2, y2 = min(int(math.ceil(torso[2])), w), min(int(math.ceil(torso[3])), h)
    if x2 - x1 < MIN_TORSO_SIDE_PX or y2 - y1 < MIN_TORSO_SIDE_PX:
        return None
    crop = np.ascontiguousarray(image_bgr[y1:y2, x1:x2])
    hsv = cv2.cvtColor(crop, cv2.COLOR_BGR2HSV)
    keep = cv2.bitwise_not(cv2.inRange(hsv, GRASS_LOW, GRASS_HIGH))
    kept = cv2.countNonZero(keep)
    if kept < MIN_KEPT_FRACTION * keep.size:
        keep[:] = 255
        kept = keep.size
    if kept < MIN_KEPT_PIXELS:
        return None
    # per pixel (S cos H, S sin H, V) in [0, 1], then their means over the kept pixels
    hue, sat = hsv[:, :, 0], hsv[:, :, 1] * np.float32(1 / 255)
    chroma = np.empty(hsv.shape, np.float32)
    np.multiply(_COS_LUT[hue], sat, out=chroma[:, :, 0])
    np.multiply(_SIN_LUT[hue], sat, out=chroma[:, :, 1])
    np.multiply(hsv[:, :, 2], np.float32(VALUE_WEIGHT / 255), out=chroma[:, :, 2])
    feature = np.array(cv2.mean(chroma, mask=keep)[:3])
    bgr = np.array(cv2.mean(crop, mask=keep)[:3])
    return _Sample(feature=feature, bgr=bgr)


def _median(samples: Sequence[_Sample]) -> _Sample:
    """Per channel, so that one bad crop (a passing arm) does not move the track's colour."""
    rows = np.sort(np.array([(*s.feature, *s.bgr) for s in samples]), axis=0)
    median = (rows[(len(rows) - 1) // 2] + rows[len(rows) // 2]) / 2  # np.median, cheaper
    return _Sample(feature=median[:3], bgr=median[3:])


def _two_means(points: FloatArray) -> tuple[FloatArray, npt.NDArray[np.intp]] | None:
    """Deterministic 2-means: the least-inertia run of a few starts, if well separated.

    Several starts, because one outlier (a referee detected as a player) can take a cluster
    of its own from the farthest-pair start; the least inertia then splits the two kits.
    Returns None when the split looks like one kit cut in two, or a cluster is too small.
    """
    rng = np.random.default_rng(KMEANS_SEED)
    starts = [_farthest_pair(points)] + [_plus_plus(points, rng) for _ in range(KMEANS_RESTARTS)]
    best: tuple[float, FloatArray, npt.NDArray[np.intp]] | None = None
    for start in starts:
        run = _lloyd(points, start)
        if run is not None and (best is None or run[0] < best[0]):
            best = run
    if best is None:
        return None
    inertia, centres, labels = best
    counts = np.bincount(labels, minlength=2)
    between = float(np.linalg.norm(centres[0] - centres[1]))
    within = math.sqrt(inertia / len(points))
    if (
        counts.min() < MIN_CLUSTER_TRACKS
        or between < MIN_CENTRE_DISTANCE
        or between < MIN_SEPARATION * within
    ):
        return None
    return centres, labels


def _lloyd(
    points: FloatArray, centres: FloatArray
) -> tuple[float, FloatArray, npt.NDArray[np.intp]] | None:
    """Lloyd's iterations until no point changes cluster; None if a cluster empties."""
    labels = _nearest(points, centres)
    for _ in range(KMEANS_ITERATIONS):
        ones = labels.astype(bool)
        if ones.all() or not ones.any():
            return None
        centres = np.stack([points[~ones].mean(axis=0), points[ones].mean(axis=0)])
        moved = _nearest(points, centres)
        if np.array_equal(moved, labels):
            break
        labels = moved
    inertia = float(((points - centres[labels]) ** 2).sum())
    return inertia, centres, labels


def _nearest(points: FloatArray, centres: FloatArray) -> npt.NDArray[np.intp]:
    labels: npt.NDArray[np.intp] = (
        ((points[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
    )
    return labels


def _farthest_pair(points: FloatArray) -> FloatArray:
    first = points[np.linalg.norm(points - points.mean(axis=0), axis=1).argmax()]
    second = points[np.linalg.norm(points - first, axis=1).argmax()]
    return np.stack([first, second])


def _plus_plus(points: FloatArray, rng: np.random.Generator) -> FloatArray:
    first = points[rng.integers(len(points))]
    d2 = ((points - first) ** 2).sum(axis=1)
    if d2.sum() <= 0:
        return np.stack([first, first])
    second = points[rng.choice(len(points), p=d2 / d2.sum())]
    return np.stack([first, second])


def _swap_is_closer(new: FloatArray, old: FloatArray) -> bool:
    same = np.linalg.norm(new - old, axis=1).sum()
    swapped = np.linalg.norm(new[::-1] - old, axis=1).sum()
    return bool(swapped < same)


def _hex(bgr: FloatArray) -> str:
    b, g, r = (int(round(float(np.clip(c, 0, 255)))) for c in bgr)
    return f"#{r:02x}{g:02x}{b:02x}"
