"""``pitchside evaluate``: mAP50, mAP50-95, P, R and AP per class of a model on a split."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pitchside.settings import Settings, imgsz_arg


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", type=Path, nargs="+", help=".onnx (served engine) or .pt files")
    parser.add_argument("--data", type=Path, required=True, help="data.yaml of the data set")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--imgsz", type=imgsz_arg, default=640)
    parser.add_argument("--json", type=Path, default=None, help="write the results here (JSON)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from training import dataset
    from training.evaluate import check_model_file, evaluate, format_table
    from training.options import check_output_file

    # Every model, the data set and the output folder are checked before the first model
    # is scored: a typo in the last argument should not cost the minutes of the first.
    for model in args.models:
        check_model_file(model)
    dataset.load(args.data).require_images(args.split)
    check_output_file(args.json, "--json")
    results = [
        evaluate(m, args.data, settings, split=args.split, imgsz=args.imgsz) for m in args.models
    ]
    print(format_table(results))
    if args.json:
        args.json.write_text(json.dumps([r.to_dict() for r in results], indent=2))
    return 0
