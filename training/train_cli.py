"""``pitchside train``: fine-tune a detector on a YOLO-format data set, tracked in MLflow."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pitchside.settings import Settings, imgsz_arg


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="data.yaml of the data set")
    parser.add_argument("--base", type=Path, required=True, help="starting checkpoint (.pt)")
    parser.add_argument("--epochs", type=_at_least_one, default=50)
    parser.add_argument(
        "--hours",
        type=float,
        default=None,
        help="train for this long; Ultralytics re-plans the epochs to fit",
    )
    parser.add_argument("--imgsz", type=imgsz_arg, default=640)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--patience", type=int, default=100)
    parser.add_argument("--optimizer", default="auto")
    parser.add_argument("--lr0", type=float, default=None)
    parser.add_argument("--close-mosaic", type=int, default=5)
    parser.add_argument("--no-cache", action="store_true", help="do not keep images in RAM")
    parser.add_argument(
        "--limit", type=_at_least_one, default=None, help="images per split (quick runs)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, 0, 0,1 ...")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 = all")
    parser.add_argument("--name", default=None, help="run name (default: train-<time>)")
    parser.add_argument("--no-export", action="store_true", help="skip the ONNX export")
    parser.add_argument(
        "--no-promote",
        action="store_true",
        help="do not register the export or compare it with the champion",
    )
    parser.add_argument(
        "--promote-split",
        default="test",
        choices=("val", "test"),
        help="held-out split the candidate and the champion are scored on",
    )
    parser.add_argument(
        "--max-class-drop",
        type=float,
        default=0.02,
        help="largest AP50 fall of any class a promotion tolerates",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from training.train import TrainConfig, check_inputs, train

    cfg = TrainConfig(
        data=args.data, base=args.base, epochs=args.epochs, hours=args.hours, imgsz=args.imgsz,
        batch=args.batch, patience=args.patience, optimizer=args.optimizer, lr0=args.lr0,
        close_mosaic=args.close_mosaic, cache=not args.no_cache, limit=args.limit,
        seed=args.seed, device=args.device, threads=args.threads, name=args.name,
        export=not args.no_export,
    )  # fmt: skip
    promoting = cfg.export and not args.no_promote
    # A user's mistake fails here, not after the training: the promotion's split included.
    ds = check_inputs(cfg)
    if promoting:
        ds.require_images(args.promote_split)
    result = train(cfg, settings)
    summary: dict[str, Any] = {
        "run_id": result.run_id,
        "best_pt": str(result.best_pt),
        "onnx": str(result.onnx) if result.onnx else None,
        "metrics": result.metrics,
    }
    if result.onnx is not None and promoting:
        from training.promote import promote

        outcome = promote(
            result.run_id,
            result.onnx,
            args.data,
            settings,
            split=args.promote_split,
            imgsz=args.imgsz,
            max_class_drop=args.max_class_drop,
        )
        summary.update(
            version=outcome.version,
            promoted=outcome.decision.promote,
            reasons=outcome.decision.reasons,
        )
    print(json.dumps(summary, indent=2))
    return 0


def _at_least_one(raw: str) -> int:
    """An argparse ``type=`` for counts that must be positive (``--epochs``, ``--limit``)."""
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {raw!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
