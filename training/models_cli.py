"""``pitchside models``: list registry versions, aliases and scores; promote a run's model."""

from __future__ import annotations

import argparse
from pathlib import Path

from pitchside.settings import Settings, imgsz_arg


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action")
    sub.add_parser("list", help="versions, aliases and test scores (the default)")
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
    print(list_versions(settings))
    return 0


def list_versions(settings: Settings) -> str:
    """One line per registered version: its aliases, test scores and run."""
    from pitchside.models import tracking_store
    from training.tracking import EXPERIMENT, REGISTERED_MODEL

    mlflow = tracking_store(settings, EXPERIMENT)
    client = mlflow.MlflowClient()
    versions = client.search_model_versions(f"name='{REGISTERED_MODEL}'")
    if not versions:
        return f"no versions of {REGISTERED_MODEL} in {settings.tracking_uri}"
    # search results carry no aliases: read them from the registered model
    aliases_of: dict[str, list[str]] = {}
    for alias, version in client.get_registered_model(REGISTERED_MODEL).aliases.items():
        aliases_of.setdefault(str(version), []).append(alias)
    lines = [f"{'version':>7}  {'aliases':<12}{'mAP50':>7}{'mAP50-95':>9}  run"]
    for v in sorted(versions, key=lambda v: int(v.version)):
        tags = v.tags or {}
        score = {
            k.split("/", 1)[1]: val for k, val in tags.items() if "/" in k and k.count("/") == 1
        }
        aliases = ",".join(sorted(aliases_of.get(str(v.version), []))) or "-"
        map50, map50_95 = score.get("map50", "-"), score.get("map50_95", "-")
        lines.append(f"{v.version:>7}  {aliases:<12}{map50:>7}{map50_95:>9}  {v.run_id}")
    return "\n".join(lines)
