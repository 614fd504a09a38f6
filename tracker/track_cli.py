"""``pitchside track``: MOTChallenge detections through the tracker stage's own tracker, offline.

It runs :class:`tracker.stream.StreamTracker`, as the stage does for a live stream, frame
by frame, at frame ``n``'s capture time ``(n - 1) / fps``, and writes the tracks (players,
goalkeepers, referees; not the ball, which has no id) as a MOTChallenge tracks file that
``pitchside track-eval`` scores. A frame without detections still steps the tracker:
its tracks age, and the next frame is predicted over the real gap. ``--missing-frames
skipped`` says instead that frames absent from the file were never detected (a live worker
skipped them): they are not stepped, and the next frame is predicted over the gap all the
same. File formats: :mod:`tracker.mot`.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from pitchside.errors import SettingsError
from pitchside.settings import Settings
from tracker.association import Box, Detected, TrackerKind
from tracker.mot import read_detections, write_tracks


def positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    """An argparse ``type=``: a number of ``kind`` (float, int) above zero."""

    def parse(raw: str) -> float:
        try:
            value = kind(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a positive number, got {raw!r}") from None
        if not value > 0:  # NaN too
            raise argparse.ArgumentTypeError(f"must be positive, got {raw!r}")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mot-dets", type=Path, required=True, metavar="FILE",
        help="detections, MOTChallenge det.txt: frame,-1,x,y,w,h,score[,class]; class ids "
        "0 ball, 1 goalkeeper, 2 player, 3 referee; absent or -1: player",
    )  # fmt: skip
    parser.add_argument("--fps", type=positive(float), required=True, help="the video's frame rate")
    parser.add_argument("--out", type=Path, required=True, metavar="FILE", help="tracks to write")
    parser.add_argument(
        "--tracker", choices=[k.value for k in TrackerKind], default=TrackerKind.BYTETRACK.value,
        help="the association algorithm (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--width", type=positive(int), default=1920,
        help="the video's width in pixels: the ball's speed limit scales with it (1920)",
    )  # fmt: skip
    parser.add_argument(
        "--missing-frames", choices=("empty", "skipped"), default="empty",
        help="frames absent from the file: empty (no detections: stepped, the default) or "
        "skipped (never detected, as a live worker skips frames: not stepped)",
    )  # fmt: skip


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Track, write, and print one line: frames, tracks, time a frame.

    Raises:
        SettingsError: ``--out`` cannot be written.
        MotFormatError: the detections file is missing or malformed.
    """
    out = args.out
    if out.is_dir() or not out.parent.is_dir():
        raise SettingsError(f"--out must be a file in an existing folder, got {str(out)!r}")
    if out.resolve() == args.mot_dets.resolve():
        raise SettingsError(f"--out would overwrite the detections {str(out)!r}")
    detections = read_detections(args.mot_dets)
    if args.missing_frames == "skipped":
        frames = sorted(detections)
    else:
        frames = list(range(1, max(detections) + 1))
    update_ms: list[float] = []
    ids: set[int] = set()
    started = time.perf_counter()
    boxes = write_tracks(out, _tracks(args, frames, detections, update_ms, ids))
    wall_s = time.perf_counter() - started
    ms = np.array(update_ms)
    print(
        f"tracked {len(frames)} frames with {args.tracker}: {len(ids)} tracks, {boxes} boxes; "
        f"{ms.mean():.2f} ms a frame (p99 {np.percentile(ms, 99):.2f} ms), {wall_s:.1f} s "
        f"in all -> {out}"
    )
    return 0


def _tracks(
    args: argparse.Namespace,
    frames: list[int],
    detections: dict[int, list[Detected]],
    update_ms: list[float],
    ids: set[int],
) -> Iterator[tuple[int, int, Box]]:
    """``(frame, id, box)`` of every track of every frame; each update's time in
    ``update_ms``, every id in ``ids``."""
    from tracker.stream import StreamTracker

    tracker = StreamTracker(args.fps, args.width, TrackerKind(args.tracker))
    for frame in frames:
        started = time.perf_counter()
        result = tracker.update(detections.get(frame, []), (frame - 1) / args.fps)
        update_ms.append((time.perf_counter() - started) * 1000)
        for track in result.tracks:
            ids.add(track.id)
            yield frame, track.id, track.box
