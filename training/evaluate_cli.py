"""``pitchside evaluate``: mAP50, mAP50-95, P, R and AP per class of a model on a split."""

from __future__ import annotations

import argparse
from pathlib import Path

from pitchside.logs import setup_logging
from pitchside.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", type=Path, nargs="+", help=".onnx (served engine) or .pt files")
    parser.add_argument("--data", type=Path, required=True, help="data.yaml of the data set")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--json", type=Path, default=None, help="write the results here (JSON)")


def run(args: argparse.Namespace) -> int:
    import json

    from training.evaluate import evaluate, format_table

    settings = Settings.from_env()
    setup_logging(settings, "evaluate")
    results = [
        evaluate(m, args.data, settings, split=args.split, imgsz=args.imgsz) for m in args.models
    ]
    print(format_table(results))
    if args.json:
        args.json.write_text(json.dumps([r.to_dict() for r in results], indent=2))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="pitchside evaluate", description=__doc__)
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args()))
