"""Fine-tune a YOLO detector with Ultralytics and track the run in MLflow.

One call of :func:`train` is one MLflow run: parameters, the data set's fingerprint, the code
version, a metric set per epoch (logged as each epoch ends, so the run's progress is visible in
the MLflow UI while it trains), and at the end the best weights, the ONNX export the workers
serve, the training curves and the final per-class table. Ultralytics' own MLflow callback is
switched off (see :mod:`training.ultra`); this module is the only writer.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pitchside.errors import ModelError
from pitchside.models import tracking_store
from pitchside.settings import Settings
from training import dataset
from training.tracking import EXPERIMENT, code_version
from training.ultra import error_text, import_ultralytics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """What to train on and how. Mirrors the ``pitchside train`` options."""

    data: Path  # data.yaml of a YOLO-format data set
    base: Path  # starting checkpoint (.pt)
    epochs: int = 50
    imgsz: int = 640
    batch: int = 8
    hours: float | None = None  # train for this long instead (Ultralytics re-plans the epochs)
    patience: int = 100
    optimizer: str = "auto"
    lr0: float | None = None
    close_mosaic: int = 5
    cache: bool = True  # decoded images in RAM
    limit: int | None = None  # images per split (quick runs, tests)
    seed: int = 0
    device: str = "cpu"
    threads: int = 0  # torch threads on CPU; 0 = every core
    name: str | None = None
    export: bool = True  # export the best weights to ONNX (dynamic image size)
    extra: dict[str, Any] = field(default_factory=dict)  # further Ultralytics train() arguments


@dataclass(frozen=True, slots=True)
class TrainResult:
    run_id: str
    run_dir: Path
    best_pt: Path
    onnx: Path | None
    metrics: dict[str, float]  # final validation of the best weights


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_inputs(cfg: TrainConfig) -> dataset.DataSet:
    """The data set to train on, once it and the base checkpoint have passed the checks a
    user's mistake fails; nothing slow is imported.

    Raises:
        DatasetError: the data set is unusable, or its train or val split has no images.
        ModelError: there is no base checkpoint file.
    """
    ds = dataset.load(cfg.data)
    for split in ("train", "val"):
        ds.require_images(split)
    if not cfg.base.exists():
        raise ModelError(f"no base checkpoint at {cfg.base}")
    if not cfg.base.is_file():
        raise ModelError(f"base checkpoint {cfg.base} is a folder, not a .pt file")
    return ds


def train(cfg: TrainConfig, settings: Settings) -> TrainResult:
    """Run one tracked training; returns where the weights and the export are.

    Raises:
        DatasetError: the data set is unusable (see :func:`check_inputs`).
        ModelError: the base checkpoint is missing, cannot be loaded, or is not a detector.
    """
    ds = check_inputs(cfg)
    ultralytics = import_ultralytics(settings, cfg.threads)
    model = load_base(ultralytics, cfg.base)  # first: a bad checkpoint leaves no run behind
    name = cfg.name or time.strftime("train-%Y%m%d-%H%M%S")
    run_dir = (settings.data_dir / "runs" / name).resolve()
    staged = dataset.stage(ds, run_dir / "data", limit=cfg.limit)
    fingerprint = dataset.fingerprint(dataset.load(staged))

    mlflow = tracking_store(settings, EXPERIMENT)
    with mlflow.start_run(run_name=name) as run:
        mlflow.set_tags({"pitchside.stage": "train", "code_version": code_version()})
        mlflow.log_params(_params(cfg, ds, fingerprint))
        model.add_callback("on_fit_epoch_end", epoch_logger(mlflow))
        train_args: dict[str, Any] = dict(
            data=str(staged), epochs=cfg.epochs, imgsz=cfg.imgsz, batch=cfg.batch,
            patience=cfg.patience, optimizer=cfg.optimizer, close_mosaic=cfg.close_mosaic,
            cache="ram" if cfg.cache else False, seed=cfg.seed, device=cfg.device,
            workers=0, project=str(run_dir), name="ultralytics", exist_ok=True,
            plots=False, verbose=True, amp=cfg.device != "cpu",
        )  # fmt: skip
        if cfg.hours:
            train_args["time"] = cfg.hours
        if cfg.lr0 is not None:
            train_args["lr0"] = cfg.lr0
        train_args.update(cfg.extra)
        model.train(**train_args)
        trainer = model.trainer
        best = Path(trainer.best)
        final = _final_metrics(trainer)
        mlflow.log_metrics({f"final/{k}": v for k, v in final.items()})
        _log_artifacts(mlflow, trainer, run_dir, ds.names)
        onnx_path = export_onnx(ultralytics, best, cfg.imgsz) if cfg.export else None
        if onnx_path is not None:
            mlflow.log_artifact(str(onnx_path), artifact_path="weights")
            mlflow.set_tag("onnx_sha256", sha256_file(onnx_path))
        log.info("run %s done: best weights %s, export %s", run.info.run_id, best, onnx_path)
        return TrainResult(run.info.run_id, run_dir, best, onnx_path, final)


def load_base(ultralytics: Any, base: Path) -> Any:
    """The Ultralytics model of checkpoint ``base``, which must be a detector.

    Raises:
        ModelError: Ultralytics cannot load it, or it was trained for another task.
    """
    try:
        model = ultralytics.YOLO(str(base))
    except Exception as exc:  # torch and Ultralytics raise whatever their loaders raise
        raise ModelError(
            f"Ultralytics cannot load the base checkpoint {base}: {error_text(exc)}"
        ) from exc
    if model.task != "detect":
        raise ModelError(f"base checkpoint {base} is a {model.task!r} model, not a detector")
    return model


def export_onnx(ultralytics: Any, weights: Path, imgsz: int) -> Path:
    """Export ``weights`` to ONNX with dynamic batch and image size; class names in metadata.

    Dynamic axes let workers infer on rectangular letterboxed input (640x384 for 16:9 video)
    instead of a padded square.
    """
    out = ultralytics.YOLO(str(weights)).export(
        format="onnx", dynamic=True, imgsz=imgsz, simplify=False, nms=False,
        device="cpu",
    )  # fmt: skip
    return Path(out)


def _params(cfg: TrainConfig, ds: dataset.DataSet, fingerprint: str) -> dict[str, Any]:
    params = {k: v for k, v in asdict(cfg).items() if k != "extra"}
    params.update({f"extra.{k}": v for k, v in cfg.extra.items()})
    params.update(
        data_fingerprint=fingerprint,
        data_names=json.dumps(ds.names),
        base_sha256=sha256_file(cfg.base),
        **{f"data_images_{s}": len(ds.images(s)[: cfg.limit]) for s in ds.splits},
    )
    return {k: str(v) for k, v in params.items()}


def _metric_name(key: str) -> str:
    return key.replace("(B)", "").replace("(", "").replace(")", "")


#: The two figures an epoch's log line shows, per task: (metric key, label).
HEADLINES = {
    "detect": (("metrics/mAP50", "mAP50"), ("metrics/mAP50-95", "mAP50-95")),
    "classify": (("metrics/top1", "top-1"), ("metrics/top5", "top-5")),
}


def epoch_logger(mlflow: Any, task: str = "detect") -> Any:
    """An Ultralytics ``on_fit_epoch_end`` callback logging each epoch's losses, metrics and
    learning rates to MLflow at its step, and one line with the task's two headline figures.
    Classification's ``metrics/accuracy_top1`` is logged as ``metrics/top1``."""
    (first, first_label), (second, second_label) = HEADLINES[task]

    def on_fit_epoch_end(trainer: Any) -> None:
        epoch = trainer.epoch + 1
        if epoch > trainer.epochs:  # Ultralytics' final validation of best.pt calls this too
            return
        values = {**trainer.label_loss_items(trainer.tloss, prefix="train"), **trainer.metrics}
        values.update({f"lr/{k}": v for k, v in trainer.lr.items()})
        metrics = {_metric_name(k).replace("accuracy_", ""): float(v) for k, v in values.items()}
        metrics["epoch_time_s"] = float(trainer.epoch_time or 0.0)
        mlflow.log_metrics(metrics, step=epoch)
        log.info(
            "epoch %d/%d: %s %.3f %s %.3f (%.0f s)",
            epoch, trainer.epochs, first_label, metrics.get(first, 0.0),
            second_label, metrics.get(second, 0.0), metrics["epoch_time_s"],
        )  # fmt: skip

    return on_fit_epoch_end


def _final_metrics(trainer: Any) -> dict[str, float]:
    return {_metric_name(k): float(v) for k, v in trainer.metrics.items()}


def _log_artifacts(mlflow: Any, trainer: Any, run_dir: Path, names: dict[int, str]) -> None:
    out = run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    mlflow.log_artifact(str(trainer.best), artifact_path="weights")
    results_csv = Path(trainer.save_dir) / "results.csv"
    if results_csv.exists():
        mlflow.log_artifact(str(results_csv), artifact_path="curves")
        mlflow.log_artifact(str(_plot_curves(results_csv, out / "curves.png")), "curves")
    table = _per_class_table(trainer, names, out / "per_class_val.csv")
    if table is not None:
        mlflow.log_artifact(str(table), artifact_path="metrics")


def _plot_curves(results_csv: Path, png: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with results_csv.open() as f:
        rows = [{k.strip(): float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    keys = [k for k in rows[0] if k not in ("epoch", "time") and not k.startswith("lr/")]
    fig, axes = plt.subplots(2, (len(keys) + 1) // 2, figsize=(4 * ((len(keys) + 1) // 2), 6))
    for ax, key in zip(axes.flat, keys, strict=False):
        ax.plot([r["epoch"] for r in rows], [r[key] for r in rows], marker=".")
        ax.set_title(key, fontsize=9)
    fig.tight_layout()
    fig.savefig(png, dpi=80)
    plt.close(fig)
    return png


def _per_class_table(trainer: Any, names: dict[int, str], path: Path) -> Path | None:
    """AP50 and AP50-95 per class from Ultralytics' last validation of the best weights."""
    validator = getattr(trainer, "validator", None)
    box = getattr(getattr(validator, "metrics", None), "box", None)
    if box is None or not len(getattr(box, "ap_class_index", [])):
        return None
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class", "precision", "recall", "ap50", "ap50_95"])
        for i, cls in enumerate(box.ap_class_index):
            p, r, ap50, ap = box.class_result(i)
            writer.writerow([names[int(cls)], f"{p:.4f}", f"{r:.4f}", f"{ap50:.4f}", f"{ap:.4f}"])
    return path
