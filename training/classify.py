"""``pitchside train --task classify``: one tracked training of a YOLO classifier.

The classification twin of :func:`training.train.train`: one MLflow run in the
``ball-classifier`` experiment with the parameters, the folders' fingerprint, the code
version, top-1, top-5 and the losses per epoch (as each ends), and at the end the best
weights, the ONNX export, and the export scored on the validation split by the serving
engine (:mod:`training.classify_eval`): top-1, top-5, recall per class and the confusion
matrix (CSV and PNG).
"""

from __future__ import annotations

import csv
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pitchside.errors import ModelError
from pitchside.models import tracking_store
from pitchside.settings import Settings
from training import classify_data
from training.classify_eval import ClassifyResult, evaluate_classifier
from training.classify_train import folder_trainer, load_classifier_base
from training.tracking import CLASSIFIER_EXPERIMENT, code_version
from training.train import TrainConfig, TrainResult, epoch_logger, export_onnx, sha256_file
from training.ultra import import_ultralytics

log = logging.getLogger(__name__)


def check_classify_inputs(cfg: TrainConfig) -> classify_data.ImageFolders:
    """The folders to train on, once they and the base checkpoint passed the quick checks.

    Raises:
        DatasetError: the folders are unusable (see :func:`training.classify_data.load`).
        ModelError: there is no base checkpoint file.
    """
    folders = classify_data.load(cfg.data)
    if not cfg.base.is_file():
        raise ModelError(f"no base checkpoint file at {cfg.base}")
    return folders


def train_classifier(cfg: TrainConfig, settings: Settings) -> TrainResult:
    """Run one tracked classifier training; returns where the weights and the export are.

    ``cfg.limit`` keeps that many images of each class in each split.

    Raises:
        DatasetError: the folders are unusable, or an image does not decode.
        ModelError: the base checkpoint is missing or cannot become a classifier.
    """
    folders = check_classify_inputs(cfg)
    ultralytics = import_ultralytics(settings, cfg.threads)
    model = load_classifier_base(ultralytics, cfg.base)  # a bad checkpoint leaves no run
    name = cfg.name or time.strftime("classify-%Y%m%d-%H%M%S")
    run_dir = (settings.data_dir / "runs" / name).resolve()
    staged = classify_data.load(classify_data.stage(folders, run_dir / "data", cfg.limit))
    fingerprint = classify_data.fingerprint(staged)

    mlflow = tracking_store(settings, CLASSIFIER_EXPERIMENT)
    with mlflow.start_run(run_name=name) as run:
        mlflow.set_tags({"pitchside.stage": "train", "pitchside.task": "classify",
                         "code_version": code_version()})  # fmt: skip
        mlflow.log_params(_params(cfg, staged, fingerprint))
        model.add_callback("on_fit_epoch_end", epoch_logger(mlflow, "classify"))
        train_args: dict[str, Any] = dict(
            data=str(staged.root), epochs=cfg.epochs, imgsz=cfg.imgsz, batch=cfg.batch,
            patience=cfg.patience, optimizer=cfg.optimizer, seed=cfg.seed, device=cfg.device,
            workers=0, project=str(run_dir), name="ultralytics", exist_ok=True, plots=False,
            verbose=True, amp=cfg.device != "cpu", trainer=folder_trainer(ultralytics),
        )  # fmt: skip
        if cfg.hours:
            train_args["time"] = cfg.hours
        if cfg.lr0 is not None:
            train_args["lr0"] = cfg.lr0
        train_args.update(cfg.extra)
        model.train(**train_args)
        best = Path(model.trainer.best)
        mlflow.log_artifact(str(best), artifact_path="weights")
        # Ultralytics' own validation of best.pt (torch), beside the served export's below
        mlflow.log_metrics({
            f"final/ultralytics/{k.split('_')[-1]}": float(v)
            for k, v in model.trainer.metrics.items() if k.startswith("metrics/accuracy_")
        })  # fmt: skip
        final: dict[str, float] = {}
        onnx_path = export_onnx(ultralytics, best, cfg.imgsz) if cfg.export else None
        if onnx_path is not None:
            mlflow.log_artifact(str(onnx_path), artifact_path="weights")
            mlflow.set_tag("onnx_sha256", sha256_file(onnx_path))
            scored = evaluate_classifier(onnx_path, staged.root, settings, split="val")
            final = scored.flat_metrics()
            mlflow.log_metrics({f"final/{k}": v for k, v in final.items()})
            _log_report(mlflow, scored, run_dir / "report")
        log.info("run %s done: best weights %s, export %s", run.info.run_id, best, onnx_path)
        return TrainResult(run.info.run_id, run_dir, best, onnx_path, final)


def _params(cfg: TrainConfig, folders: classify_data.ImageFolders, fp: str) -> dict[str, str]:
    params: dict[str, Any] = {k: v for k, v in asdict(cfg).items() if k != "extra"}
    params.update({f"extra.{k}": v for k, v in cfg.extra.items()})
    params.update(
        task="classify",
        data_fingerprint=fp,
        data_names=",".join(folders.names.values()),
        base_sha256=sha256_file(cfg.base),
        **{f"data_images_{s}": len(samples) for s, samples in folders.splits.items()},
    )
    return {k: str(v) for k, v in params.items()}


def _log_report(mlflow: Any, scored: ClassifyResult, out: Path) -> None:
    """The served model's recall per class and confusion matrix, as CSV and PNG."""
    out.mkdir(parents=True, exist_ok=True)
    names = list(scored.per_class)
    per_class = out / "per_class_val.csv"
    with per_class.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class", "images", "recall"])
        for name, score in scored.per_class.items():
            writer.writerow([name, score.images, f"{score.recall:.4f}"])
    matrix = out / "confusion_val.csv"
    with matrix.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true \\ predicted", *names])
        for name, row in zip(names, scored.confusion, strict=True):
            writer.writerow([name, *row])
    for path in (per_class, matrix, _plot_confusion(scored, out / "confusion_val.png")):
        mlflow.log_artifact(str(path), artifact_path="metrics")


def _plot_confusion(scored: ClassifyResult, png: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(scored.per_class)
    fig, ax = plt.subplots(figsize=(1 + 0.5 * len(names), 1 + 0.5 * len(names)))
    ax.imshow(scored.confusion, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i, row in enumerate(scored.confusion):
        for j, count in enumerate(row):
            if count:
                ax.text(j, i, str(count), ha="center", va="center", fontsize=6)
    ax.set_title(f"{scored.split}: top-1 {scored.top1:.3f}")
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)
    return png
