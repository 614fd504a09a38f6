"""``pitchside track-eval``: score MOTChallenge tracks against ground truth, as TrackEval does.

It prints HOTA, DetA, AssA, IDF1, MOTA, MOTP (in percent, as TrackEval prints them) and the
ID switches, then what was scored; ``--json`` prints one JSON object instead, ratios as
fractions (:meth:`tracker.mot.Scores.to_dict`). Matching and metrics are those of
``trackers.eval``; what counts as ground truth is MOTChallenge's (:mod:`tracker.mot`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pitchside.settings import Settings
from tracker.mot import Scores, read_rows, score

PERCENT = ("hota", "deta", "assa", "idf1", "mota", "motp")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--gt", type=Path, required=True, metavar="FILE",
        help="ground truth, MOTChallenge gt.txt: frame,id,x,y,w,h,flag,class,visibility",
    )  # fmt: skip
    parser.add_argument(
        "--pred", type=Path, required=True, metavar="FILE",
        help="tracks, MOTChallenge: frame,id,x,y,w,h,... (what pitchside track writes)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Score and print.

    Raises:
        MotFormatError: a file is missing or malformed (an empty tracks file is no tracks).
    """
    gt = read_rows(args.gt, "ground truth")
    pred = read_rows(args.pred, "tracks", allow_empty=True)
    scores = score(gt, pred)
    print(json.dumps(scores.to_dict()) if args.json else format_scores(scores))
    return 0


def format_scores(scores: Scores) -> str:
    """Two lines of figures under their names, and one of what was scored."""
    names = [*(k.upper().replace("DETA", "DetA").replace("ASSA", "AssA") for k in PERCENT)]
    values = [f"{100 * getattr(scores, k):.2f}" for k in PERCENT]
    names.append("IDSW")
    values.append(str(scores.id_switches))
    widths = [max(len(n), len(v)) for n, v in zip(names, values, strict=True)]
    return "\n".join([
        "  ".join(n.rjust(w) for n, w in zip(names, widths, strict=True)),
        "  ".join(v.rjust(w) for v, w in zip(values, widths, strict=True)),
        f"{scores.frames} frames; ground truth {scores.gt_ids} ids, {scores.gt_boxes} boxes; "
        f"tracks {scores.pred_ids} ids, {scores.pred_boxes} boxes (percent but IDSW)",
    ])  # fmt: skip
