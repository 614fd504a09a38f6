"""``pitchside evaluate``: a model's figures on one split, through the serving engine.

A detector (``--data`` a data.yaml): mAP50, mAP50-95, P, R and AP per class. A classifier
(``--data`` a folder of ``train/<class>/``, ``val/<class>/`` ...): top-1, top-5 and recall
per class.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pitchside.settings import Settings, imgsz_arg


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "models", type=Path, nargs="+",
        help=".onnx (served engine) or .pt files; classifiers: .onnx",
    )  # fmt: skip
    parser.add_argument(
        "--data", type=Path, required=True,
        help="data.yaml of a detection data set, or the image folders of a classification one",
    )  # fmt: skip
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--imgsz", type=imgsz_arg, default=640)
    parser.add_argument("--json", type=Path, default=None, help="write the results here (JSON)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from training.classify_data import is_image_folders

    if is_image_folders(args.data):
        return _run_classify(args, settings)
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


def _run_classify(args: argparse.Namespace, settings: Settings) -> int:
    from training import classify_data
    from training.classify_eval import (
        check_classifier_file,
        evaluate_classifier,
        format_classify_table,
    )
    from training.options import check_output_file

    for model in args.models:
        check_classifier_file(model)
    classify_data.load(args.data).samples(args.split)
    check_output_file(args.json, "--json")
    results = [evaluate_classifier(m, args.data, settings, split=args.split) for m in args.models]
    print(format_classify_table(results))
    if args.json:
        args.json.write_text(json.dumps([r.to_dict() for r in results], indent=2))
    return 0
