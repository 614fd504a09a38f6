"""MOTChallenge text files: detections in, tracks out, and the scores TrackEval gives them.

One object a line, comma-separated numbers, frames numbered from 1, boxes as left, top,
width and height in pixels. Blank lines and lines starting with ``#`` are skipped.

``detections`` (``det.txt``): ``frame, id, x, y, w, h[, score[, class, ...]]``
    The id is read and ignored (MOTChallenge writes -1). A missing score is 1. The 8th
    column, when present and not -1, is the class id of pitchside's football detector
    (:data:`CLASSES`: 0 ball, 1 goalkeeper, 2 player, 3 referee); absent or -1, as in
    MOTChallenge's own ``det.txt`` (whose columns 8 to 10 are unused), the box is a player.
    Further columns are ignored.
``ground truth`` (``gt.txt``): ``frame, id, x, y, w, h[, flag[, class[, visibility]]]``
    MOTChallenge's: a row flagged 0 is not scored, only class 1 (pedestrian: every person on
    the pitch) is scored, and a tracker's box on a distractor (classes 2, 7, 8, 12) is
    neither rewarded nor penalised. Missing columns are 1. pitchside's synthetic scenes
    (``bench.scenes``) write the ball as class 0 flagged 0: MOTChallenge has no ball class.
``tracks``: ``frame, id, x, y, w, h, 1, -1, -1, -1``, as :func:`write_tracks` writes them,
    read with :func:`read_rows` like ground truth.

:func:`score` follows TrackEval's MOTChallenge preprocessing and calls the metrics of
``trackers.eval`` (TrackEval's own matching): HOTA, DetA, AssA, IDF1, MOTA, MOTP, ID switches.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment  # type: ignore[import-untyped]
from trackers.eval import (
    box_iou,
    compute_clear_metrics,
    compute_hota_metrics,
    compute_identity_metrics,
)
from trackers.eval.constants import EPS

from pitchside.errors import DatasetError
from tracker.association import Box, Detected

CLASSES = ("ball", "goalkeeper", "player", "referee")  # the football detector's class ids
PLAYER = CLASSES.index("player")
PEDESTRIAN = 1  # the one class MOTChallenge scores
DISTRACTORS = frozenset({2, 7, 8, 12})  # person on vehicle, static person, distractor, reflection
IOU_THRESHOLD = 0.5  # CLEAR's and Identity's match threshold (HOTA integrates over 0.05-0.95)


class MotFormatError(DatasetError):
    """A MOTChallenge file is missing, unreadable, or has a line that is not a MOT row."""

    code = "bad_mot_file"


@dataclass(frozen=True, slots=True)
class MotRow:
    """One line of a ground-truth or tracks file."""

    frame: int  # from 1
    id: int
    box: Box  # x1, y1, x2, y2 in pixels
    flag: float  # 0: not scored (ground truth); a tracks file writes 1
    cls: int
    visibility: float


@dataclass(frozen=True, slots=True)
class Scores:
    """A sequence's tracking scores; the ratios in [0, 1] (MOTA may be negative)."""

    hota: float
    deta: float
    assa: float
    idf1: float
    mota: float
    motp: float
    id_switches: int
    frames: int
    gt_boxes: int  # scored ground-truth boxes
    gt_ids: int
    pred_boxes: int  # the tracks' boxes, less those on distractors
    pred_ids: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_detections(path: Path) -> dict[int, list[Detected]]:
    """The detections of a ``det.txt``, by frame (from 1); frames without any are absent.

    Raises:
        MotFormatError: the file is missing, unreadable, empty, or a line is malformed;
            the message names the file and the line.
    """
    frames: dict[int, list[Detected]] = defaultdict(list)
    for lineno, values in _numbers(path, "detections", minimum=6):
        frame = _frame(values[0], path, lineno)
        x, y, w, h = _box(values[2:6], path, lineno)
        score = values[6] if len(values) > 6 else 1.0
        if not 0.0 <= score <= 1.0:  # a NaN fails this too
            raise MotFormatError(  # the tracker's thresholds are probabilities
                f"{path}:{lineno}: a detection's score is in [0, 1], got {score:g}"
            )
        cls = PLAYER
        if len(values) > 7 and values[7] != -1:
            cls = int(values[7])
            if cls != values[7] or not 0 <= cls < len(CLASSES):
                raise MotFormatError(
                    f"{path}:{lineno}: the 8th column is a class id, -1 or one of "
                    f"{', '.join(f'{i} {name}' for i, name in enumerate(CLASSES))}; "
                    f"got {values[7]:g}"
                )
        frames[frame].append(Detected((x, y, x + w, y + h), score, cls, CLASSES[cls]))
    if not frames:
        raise MotFormatError(f"{path}: no detections in the file")
    return dict(frames)


def read_rows(path: Path, what: str = "ground truth", allow_empty: bool = False) -> list[MotRow]:
    """The rows of a ground-truth or tracks file, in file order.

    Args:
        what: what the file holds, for the messages ("ground truth", "tracks").
        allow_empty: an empty file is no rows (a tracker that found nothing) rather than
            an error.

    Raises:
        MotFormatError: the file is missing, unreadable, or (unless allowed) empty, or a
            line is malformed; the message names the file and the line.
    """
    rows = []
    first: dict[tuple[int, int], int] = {}  # (frame, id) -> the line it was first on
    for lineno, values in _numbers(path, what, minimum=6):
        frame = _frame(values[0], path, lineno)
        track_id = int(values[1])
        if track_id != values[1]:
            raise MotFormatError(f"{path}:{lineno}: an id is an integer, got {values[1]:g}")
        if track_id >= 0 and first.setdefault((frame, track_id), lineno) != lineno:
            raise MotFormatError(  # TrackEval refuses it too: an id is one object a frame
                f"{path}:{lineno}: id {track_id} is in frame {frame} twice "
                f"(first on line {first[frame, track_id]})"
            )
        x, y, w, h = _box(values[2:6], path, lineno)
        flag = values[6] if len(values) > 6 else 1.0
        cls = values[7] if len(values) > 7 else PEDESTRIAN
        if int(cls) != cls:
            raise MotFormatError(f"{path}:{lineno}: a class is an integer, got {cls:g}")
        visibility = values[8] if len(values) > 8 else 1.0
        rows.append(MotRow(frame, track_id, (x, y, x + w, y + h), flag, int(cls), visibility))
    if not rows and not allow_empty:
        raise MotFormatError(f"{path}: no {what} rows in the file")
    return rows


def track_line(frame: int, track_id: int, box: Box) -> str:
    """One MOTChallenge tracks line (with its newline) of a box ``x1, y1, x2, y2``."""
    x1, y1, x2, y2 = box
    return f"{frame},{track_id},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},1,-1,-1,-1\n"


def write_tracks(path: Path, tracks: Iterable[tuple[int, int, Box]]) -> int:
    """Write ``(frame, id, box)`` items as a MOTChallenge tracks file; the lines written.

    Raises:
        MotFormatError: the file cannot be written.
    """
    count = 0
    try:
        with path.open("w") as out:
            for frame, track_id, box in tracks:
                out.write(track_line(frame, track_id, box))
                count += 1
    except OSError as exc:
        raise MotFormatError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return count


def score(gt: Sequence[MotRow], pred: Sequence[MotRow], threshold: float = IOU_THRESHOLD) -> Scores:
    """HOTA, IDF1, MOTA and the rest of ``pred`` against ``gt``, as TrackEval scores a
    MOTChallenge sequence (its frames: 1 to the last frame of either)."""
    gt_frames, pred_frames = _by_frame(gt), _by_frame([r for r in pred if r.id >= 0])
    frames = max([*gt_frames, *pred_frames], default=0)
    scored = [r for r in gt if r.flag != 0 and r.cls == PEDESTRIAN]
    gt_index = {i: n for n, i in enumerate(sorted({r.id for r in scored}))}
    pred_index = {i: n for n, i in enumerate(sorted({r.id for r in pred if r.id >= 0}))}
    gt_ids, pred_ids, similarity = [], [], []
    for frame in range(1, frames + 1):
        truth, tracks = gt_frames.get(frame, []), pred_frames.get(frame, [])
        tracks = _off_distractors(truth, tracks)
        truth = [r for r in truth if r.flag != 0 and r.cls == PEDESTRIAN]
        gt_ids.append(np.array([gt_index[r.id] for r in truth], dtype=np.intp))
        pred_ids.append(np.array([pred_index[r.id] for r in tracks], dtype=np.intp))
        similarity.append(box_iou(_xyxy(truth), _xyxy(tracks)))
    hota = compute_hota_metrics(gt_ids, pred_ids, similarity)
    clear = compute_clear_metrics(gt_ids, pred_ids, similarity, threshold=threshold)
    identity = compute_identity_metrics(gt_ids, pred_ids, similarity, threshold=threshold)
    return Scores(
        hota=float(hota["HOTA"]), deta=float(hota["DetA"]), assa=float(hota["AssA"]),
        idf1=float(identity["IDF1"]), mota=float(clear["MOTA"]), motp=float(clear["MOTP"]),
        id_switches=int(clear["IDSW"]), frames=frames, gt_boxes=sum(map(len, gt_ids)),
        gt_ids=len(gt_index), pred_boxes=sum(map(len, pred_ids)), pred_ids=len(pred_index),
    )  # fmt: skip


def _numbers(path: Path, what: str, minimum: int) -> Iterable[tuple[int, list[float]]]:
    """(line number, the line's numbers) of every row of ``path``."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise MotFormatError(f"no {what} file {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not a text file"
        raise MotFormatError(f"cannot read the {what} file {path}: {reason or exc}") from exc
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.rstrip(",").split(",")]
        try:
            values = [float(f) for f in fields]
        except ValueError:
            values = []
        if len(values) < minimum or not all(math.isfinite(v) for v in values):
            shown = line if len(line) <= 80 else line[:77] + "..."
            raise MotFormatError(
                f"{path}:{lineno}: a {what} row is 'frame,id,x,y,w,h,...' (at least {minimum} "
                f"comma-separated finite numbers), got {shown!r}"
            )
        yield lineno, values


def _frame(value: float, path: Path, lineno: int) -> int:
    if value != int(value) or value < 1:
        raise MotFormatError(f"{path}:{lineno}: frames are integers from 1, got {value:g}")
    return int(value)


def _box(values: Sequence[float], path: Path, lineno: int) -> tuple[float, float, float, float]:
    x, y, w, h = values
    if w <= 0 or h <= 0:
        raise MotFormatError(
            f"{path}:{lineno}: a box's width and height are positive, got {w:g} x {h:g}"
        )
    return x, y, w, h


def _by_frame(rows: Iterable[MotRow]) -> dict[int, list[MotRow]]:
    frames: dict[int, list[MotRow]] = defaultdict(list)
    for row in rows:
        frames[row.frame].append(row)
    return frames


def _xyxy(rows: Sequence[MotRow]) -> np.ndarray:
    return np.array([r.box for r in rows], dtype=np.float64).reshape(-1, 4)


def _off_distractors(truth: Sequence[MotRow], tracks: list[MotRow]) -> list[MotRow]:
    """The tracks less those matched (IoU >= 0.5, one to one) to a distractor's box: as
    TrackEval, they are neither rewarded nor penalised."""
    if not tracks or not any(r.cls in DISTRACTORS for r in truth):
        return tracks
    iou = box_iou(_xyxy(truth), _xyxy(tracks))
    iou[iou < 0.5 - EPS] = 0
    rows, cols = linear_sum_assignment(-iou)
    drop = {
        int(c) for r, c in zip(rows, cols, strict=True)
        if iou[r, c] > EPS and truth[r].cls in DISTRACTORS
    }  # fmt: skip
    return [t for n, t in enumerate(tracks) if n not in drop]
