"""``pitchside models``: list registry versions, aliases and scores; promote a run's model."""

from __future__ import annotations

import argparse
from pathlib import Path

from pitchside.settings import Settings, imgsz_arg
from training.tracking import CLASSIFIER_MODEL, REGISTERED_MODEL

#: Per registered model, the two scores its version tags show: (tag, column title).
COLUMNS = {
    REGISTERED_MODEL: (("map50", "mAP50"), ("map50_95", "mAP50-95")),
    CLASSIFIER_MODEL: (("top1", "top-1"), ("top5", "top-5")),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action")
    listing = sub.add_parser("list", help="versions, aliases and test scores (the default)")
    listing.add_argument(
        "--name",
        choices=tuple(COLUMNS),
        default=REGISTERED_MODEL,
        help=f"the registered model (default {REGISTERED_MODEL})",
    )
    promote = sub.add_parser("promote", help="evaluate a run's ONNX against the champion")
    promote.add_argument("run_id")
    promote.add_argument("--data", type=Path, required=True, help="data.yaml of the data set")
    promote.add_argument("--onnx", type=Path, required=True, help="the run's exported ONNX")
    promote.add_argument("--split", default="test", choices=("val", "test"))
    promote.add_argument("--imgsz", type=imgsz_arg, default=640)
    promote.add_argument("--max-class-drop", type=float, default=0.02)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "promote":
        from training import dataset
        from training.promote import promote

        dataset.load(args.data).require_images(args.split)  # before the registry is opened
        outcome = promote(args.run_id, args.onnx, args.data, settings, split=args.split,
                          imgsz=args.imgsz, max_class_drop=args.max_class_drop)  # fmt: skip
        print("\n".join(outcome.decision.reasons))
        champion = outcome.version if outcome.decision.promote else outcome.champion_version
        print(f"registered as version {outcome.version}; champion: {champion}")
        return 0
    print(list_versions(settings, getattr(args, "name", REGISTERED_MODEL)))
    return 0


def list_versions(settings: Settings, name: str = REGISTERED_MODEL) -> str:
    """One line per registered version of ``name``: its aliases, held-out scores and run."""
    from pitchside.models import tracking_store

    mlflow = tracking_store(settings)
    client = mlflow.MlflowClient()
    versions = client.search_model_versions(f"name='{name}'")
    if not versions:
        return f"no versions of {name} in {settings.tracking_uri}"
    # search results carry no aliases: read them from the registered model
    aliases_of: dict[str, list[str]] = {}
    for alias, version in client.get_registered_model(name).aliases.items():
        aliases_of.setdefault(str(version), []).append(alias)
    (first, first_title), (second, second_title) = COLUMNS[name]
    lines = [f"{'version':>7}  {'aliases':<12}{first_title:>7}{second_title:>9}  run"]
    for v in sorted(versions, key=lambda v: int(v.version)):
        tags = v.tags or {}
        score = {
            k.split("/", 1)[1]: val for k, val in tags.items() if "/" in k and k.count("/") == 1
        }
        aliases = ",".join(sorted(aliases_of.get(str(v.version), []))) or "-"
        a, b = score.get(first, "-"), score.get(second, "-")
        lines.append(f"{v.version:>7}  {aliases:<12}{a:>7}{b:>9}  {v.run_id}")
    return "\n".join(lines)
