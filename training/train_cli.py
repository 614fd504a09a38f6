"""``pitchside train``: fine-tune a detector on a YOLO-format data set (``--task detect``) or a
classifier on ImageNet-style folders (``--task classify``), tracked in MLflow, registered and
promoted by the champion/challenger rule of its task."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pitchside.settings import Settings, imgsz_arg

if TYPE_CHECKING:
    from training.promote import PromotionOutcome


@dataclass(frozen=True, slots=True)
class TaskDefaults:
    """What ``pitchside train`` uses for a task when an option is not given."""

    imgsz: int
    batch: int
    split: str  # the held-out split of the promotion
    max_class_drop: float  # AP50 (detect) or recall (classify)


TASK_DEFAULTS = {
    "detect": TaskDefaults(imgsz=640, batch=8, split="test", max_class_drop=0.02),
    "classify": TaskDefaults(imgsz=224, batch=32, split="val", max_class_drop=0.10),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--task",
        choices=tuple(TASK_DEFAULTS),
        default="detect",
        help="detect: a YOLO detector (football-detector); classify: a YOLO -cls classifier "
        "(ball-classifier), from a -cls or a YOLOv8 detection checkpoint",
    )
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        help="detect: data.yaml of the data set; classify: the folder holding "
        "train/<class>/ and val/<class>/ images",
    )
    parser.add_argument("--base", type=Path, required=True, help="starting checkpoint (.pt)")
    parser.add_argument("--epochs", type=_at_least_one, default=50)
    parser.add_argument(
        "--hours",
        type=float,
        default=None,
        help="train for this long; Ultralytics re-plans the epochs to fit",
    )
    parser.add_argument(
        "--imgsz",
        type=imgsz_arg,
        default=None,
        help="input size (default: detect 640, classify 224)",
    )
    parser.add_argument("--batch", type=int, default=None, help="default: detect 8, classify 32")
    parser.add_argument("--patience", type=int, default=100)
    parser.add_argument("--optimizer", default="auto")
    parser.add_argument("--lr0", type=float, default=None)
    parser.add_argument("--close-mosaic", type=int, default=5)
    parser.add_argument(
        "--freeze", type=_at_least_one, default=None, help="keep the first N layers frozen"
    )
    parser.add_argument(
        "--dropout", type=_fraction, default=None, help="classify: dropout before the head"
    )
    parser.add_argument("--no-cache", action="store_true", help="do not keep images in RAM")
    parser.add_argument(
        "--limit",
        type=_at_least_one,
        default=None,
        help="images per split (classify: per class in each split); quick runs",
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
        default=None,
        choices=("val", "test"),
        help="held-out split the candidate and the champion are scored on "
        "(default: detect test, classify val)",
    )
    parser.add_argument(
        "--max-class-drop",
        type=float,
        default=None,
        help="largest fall of any class a promotion tolerates: AP50 for detect (default "
        "0.02), recall for classify (default 0.10, one image in ten)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from training.train import TrainConfig

    defaults = TASK_DEFAULTS[args.task]
    imgsz = args.imgsz or defaults.imgsz
    split = args.promote_split or defaults.split
    max_drop = defaults.max_class_drop if args.max_class_drop is None else args.max_class_drop
    cfg = TrainConfig(
        data=args.data, base=args.base, epochs=args.epochs, hours=args.hours, imgsz=imgsz,
        batch=args.batch or defaults.batch, patience=args.patience,
        optimizer=args.optimizer, lr0=args.lr0, close_mosaic=args.close_mosaic,
        cache=not args.no_cache, limit=args.limit, seed=args.seed, device=args.device,
        threads=args.threads, name=args.name, export=not args.no_export,
        extra=_extra(args),
    )  # fmt: skip
    promoting = cfg.export and not args.no_promote
    # A user's mistake fails here, not after the training: the promotion's split included.
    if args.task == "classify":
        from training.classify import check_classify_inputs, train_classifier
        from training.promote import promote_classifier

        folders = check_classify_inputs(cfg)
        if promoting:
            folders.samples(split)
        result = train_classifier(cfg, settings)

        def challenge(run_id: str, onnx: Path) -> PromotionOutcome:
            return promote_classifier(
                run_id, onnx, cfg.data, settings, split=split, max_recall_drop=max_drop
            )
    else:
        from training.promote import promote
        from training.train import check_inputs, train

        ds = check_inputs(cfg)
        if promoting:
            ds.require_images(split)
        result = train(cfg, settings)

        def challenge(run_id: str, onnx: Path) -> PromotionOutcome:
            return promote(
                run_id, onnx, cfg.data, settings, split=split, imgsz=imgsz,
                max_class_drop=max_drop,
            )  # fmt: skip

    summary: dict[str, Any] = {
        "run_id": result.run_id,
        "best_pt": str(result.best_pt),
        "onnx": str(result.onnx) if result.onnx else None,
        "metrics": result.metrics,
    }
    if result.onnx is not None and promoting:
        outcome = challenge(result.run_id, result.onnx)
        summary.update(
            version=outcome.version,
            promoted=outcome.decision.promote,
            reasons=outcome.decision.reasons,
        )
    print(json.dumps(summary, indent=2))
    return 0


def _extra(args: argparse.Namespace) -> dict[str, Any]:
    """Ultralytics train() arguments given only when asked for (its defaults otherwise)."""
    extra = {"freeze": args.freeze, "dropout": args.dropout}
    return {k: v for k, v in extra.items() if v is not None}


def _fraction(raw: str) -> float:
    """An argparse ``type=`` for a probability in [0, 1) (``--dropout``)."""
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {raw!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, got {value}")
    return value


def _at_least_one(raw: str) -> int:
    """An argparse ``type=`` for counts that must be positive (``--epochs``, ``--limit``)."""
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {raw!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
