"""``python -m bench.trackers``: the association algorithms against each other, on the same
synthetic football scenes (:mod:`bench.scenes`).

Each row runs :class:`tracker.association.Association` (what the tracker stage runs) over
``--scenes`` scenes of ``--frames`` frames (seeds ``--seed`` on), frame times as capture
times, and scores its tracks against the ground truth (:func:`tracker.mot.score`, TrackEval's
matching): HOTA, DetA, AssA, IDF1 and MOTA are means over the scenes, ID switches their sum.
``HOTA gaps`` is the same on the scenes' ``gaps`` twins, where the live worker skipped
stretches of frames; the last row runs ByteTrack there as if the frames were consecutive
(no timestamps), the mistake the timestamps avoid. ``p50 ms`` and ``p99 ms`` are one
update's time (about 20 boxes a frame: some 18 people, 2 false positives), over every
frame of the plain scenes. The ball is left out, as the stage leaves it to its own filter.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from bench.scenes import BALL_CLASS, Scene, SceneConfig, generate
from tracker.association import Association, TrackerKind
from tracker.mot import MotRow, Scores, score


@dataclass(frozen=True, slots=True)
class Variant:
    """One row of the table: an algorithm, its arguments over ours, and whether it is told
    the frames' times."""

    name: str
    kind: TrackerKind
    overrides: tuple[tuple[str, Any], ...] = ()
    timestamps: bool = True


VARIANTS = (
    Variant("bytetrack (default)", TrackerKind.BYTETRACK),
    Variant("bytetrack act/high 0.7/0.6", TrackerKind.BYTETRACK, (
        ("track_activation_threshold", 0.7), ("high_conf_det_threshold", 0.6),
    )),  # the library's own
    Variant("bytetrack iou 0.3", TrackerKind.BYTETRACK, (("minimum_iou_threshold", 0.3),)),
    Variant("bytetrack lost 2 s", TrackerKind.BYTETRACK, (("lost_track_buffer", 60),)),
    Variant("sort", TrackerKind.SORT),
    Variant("sort act 0.5", TrackerKind.SORT, (("track_activation_threshold", 0.5),)),
    Variant("ocsort", TrackerKind.OCSORT),
    Variant("ocsort high 0.3 1 frame iou 0.1", TrackerKind.OCSORT, (
        ("high_conf_det_threshold", 0.3), ("minimum_consecutive_frames", 1),
        ("minimum_iou_threshold", 0.1),
    )),
)  # fmt: skip
NO_TIMESTAMPS = Variant("bytetrack, no timestamps", TrackerKind.BYTETRACK, timestamps=False)


@dataclass(frozen=True, slots=True)
class Run:
    """One variant over one scene."""

    scores: Scores
    update_ms: list[float]


def run_variant(variant: Variant, scene: Scene) -> Run:
    """Track ``scene`` with ``variant``; its scores and every update's time."""
    fps = scene.config.fps
    association = Association(fps, variant.kind, **dict(variant.overrides))
    pred: list[MotRow] = []
    times: list[float] = []
    for frame in scene.frames:
        people = [d for d in scene.detections.get(frame, []) if d.cls != BALL_CLASS]
        t_s = scene.time_s(frame) if variant.timestamps else None
        started = time.perf_counter()
        tracked = association.update(people, t_s)
        times.append((time.perf_counter() - started) * 1000)
        pred.extend(MotRow(frame, t.id, t.box, 1.0, 1, 1.0) for t in tracked)
    return Run(score(scene.gt, pred), times)


def table(config: SceneConfig, scenes: int) -> tuple[list[str], list[list[str]]]:
    """The header and the rows of the comparison."""
    plain = [generate(replace(config, seed=config.seed + n)) for n in range(scenes)]
    gaps = [replace(s.config, gaps=True) for s in plain]
    gapped = [generate(c) for c in gaps]
    header = ["tracker", "HOTA", "DetA", "AssA", "IDF1", "MOTA", "IDSW", "HOTA gaps", "IDSW gaps"]
    header += ["p50 ms", "p99 ms"]
    rows = []
    for variant in (*VARIANTS, NO_TIMESTAMPS):
        runs = [run_variant(variant, s) for s in plain]
        gap_runs = [run_variant(variant, s) for s in gapped]
        ms = np.array([m for r in runs for m in r.update_ms])
        rows.append([
            variant.name,
            *(f"{np.mean([getattr(r.scores, k) for r in runs]):.3f}"
              for k in ("hota", "deta", "assa", "idf1", "mota")),
            str(sum(r.scores.id_switches for r in runs)),
            f"{np.mean([r.scores.hota for r in gap_runs]):.3f}",
            str(sum(r.scores.id_switches for r in gap_runs)),
            f"{np.percentile(ms, 50):.2f}", f"{np.percentile(ms, 99):.2f}",
        ])  # fmt: skip
    return header, rows


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        cells = [c.rjust(w) for c, w in zip(row, widths, strict=True)]
        return "  ".join([row[0].ljust(widths[0]), *cells[1:]])

    lines = [line(r) for r in [header, *rows]]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.trackers", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--scenes", type=int, default=3, help="scenes (seeds) per row (3)")
    parser.add_argument("--frames", type=int, default=750, help="frames a scene (750: 30 s)")
    parser.add_argument("--seed", type=int, default=0, help="the first scene's seed (0)")
    args = parser.parse_args(argv)
    if args.scenes < 1 or args.frames < 2:
        parser.error("--scenes must be at least 1 and --frames at least 2")
    config = SceneConfig(frames=args.frames, seed=args.seed)
    started = time.monotonic()
    header, rows = table(config, args.scenes)
    sample = generate(config)
    people = [sum(d.cls != BALL_CLASS for d in sample.detections[f]) for f in sample.frames]
    boxes = np.mean(people)
    print(
        f"{args.scenes} scenes x {args.frames} frames at {config.fps:g} fps, seeds "
        f"{args.seed}-{args.seed + args.scenes - 1}; about {boxes:.0f} boxes a frame to the "
        f"association, {sample.crossings} crossings in the first scene"
    )
    print(format_table(header, rows))
    print(f"({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
