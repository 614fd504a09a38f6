"""Score a detector on one split of a YOLO data set: mAP50, mAP50-95, P, R, AP per class.

An ONNX model is run through the very engine the workers serve with
(:func:`workers.engines.load_detector`), so serving accuracy is measured, not assumed; a ``.pt``
checkpoint is run through Ultralytics' predictor. Both paths feed the same matching code and
Ultralytics' own ``ap_per_class``, at the thresholds Ultralytics validates with (conf 0.001,
NMS IoU 0.7, 300 boxes), so their figures are comparable.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pitchside.errors import DatasetError, ModelError
from pitchside.settings import Settings
from training import dataset

log = logging.getLogger(__name__)

VAL_CONF = 0.001
VAL_IOU = 0.7
CM_CONF = 0.25  # confusion matrix counts boxes a viewer would see
CM_IOU = 0.45
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)

# images (BGR) -> per image an (N, 6) array of x1, y1, x2, y2, score, class in source pixels
Predict = Callable[[list[np.ndarray]], list[np.ndarray]]


@dataclass(frozen=True, slots=True)
class ClassScore:
    precision: float
    recall: float
    ap50: float
    ap50_95: float
    labels: int  # ground-truth boxes of this class in the split


@dataclass(frozen=True, slots=True)
class EvalResult:
    """Scores of one model on one split. ``split_sha256`` names the exact images and labels."""

    model_uri: str
    split: str
    split_sha256: str
    images: int
    map50: float
    map50_95: float
    precision: float
    recall: float
    per_class: dict[str, ClassScore]
    confusion: list[list[int]]  # (nc+1)^2, rows predicted, columns true; last = background
    ms_per_image: float  # median inference time, batch 1, pre/post-processing included

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> EvalResult:
        per_class = {k: ClassScore(**v) for k, v in doc["per_class"].items()}
        return cls(**{**doc, "per_class": per_class})

    def flat_metrics(self, prefix: str = "") -> dict[str, float]:
        """MLflow-friendly metrics: ``map50``, ``ap50/player`` ..."""
        out = {"map50": self.map50, "map50_95": self.map50_95, "precision": self.precision,
               "recall": self.recall, "ms_per_image": self.ms_per_image}  # fmt: skip
        for name, c in self.per_class.items():
            out[f"ap50/{name}"] = c.ap50
            out[f"ap50_95/{name}"] = c.ap50_95
        return {f"{prefix}{k}": v for k, v in out.items()}


def onnx_predictor(
    model_path: Path, settings: Settings, imgsz: int
) -> tuple[Predict, dict[int, str]]:
    """Predict with the serving engine at validation thresholds."""
    from workers.engines import load_detector

    detector = load_detector(
        str(model_path), settings.replace(conf=VAL_CONF, iou=VAL_IOU, imgsz=imgsz)
    )

    def predict(images: list[np.ndarray]) -> list[np.ndarray]:
        out = []
        for dets in detector.detect(images):
            rows = [[*d.box, d.score, d.cls] for d in dets]
            out.append(np.asarray(rows, dtype=np.float64).reshape(-1, 6))
        return out

    return predict, dict(detector.names)


def pt_predictor(weights: Path, settings: Settings, imgsz: int) -> tuple[Predict, dict[int, str]]:
    """Predict with Ultralytics on a ``.pt`` checkpoint at validation thresholds."""
    from training.ultra import error_text, import_ultralytics

    ultralytics = import_ultralytics(settings)
    try:
        model = ultralytics.YOLO(str(weights))
    except Exception as exc:  # torch and Ultralytics raise whatever their loaders raise
        raise ModelError(f"Ultralytics cannot load {weights}: {error_text(exc)}") from exc

    def predict(images: list[np.ndarray]) -> list[np.ndarray]:
        results = model.predict(images, conf=VAL_CONF, iou=VAL_IOU, imgsz=imgsz, max_det=300,
                                device="cpu", verbose=False)  # fmt: skip
        return [r.boxes.data.cpu().numpy().astype(np.float64).reshape(-1, 6) for r in results]

    return predict, {int(k): str(v) for k, v in model.names.items()}


def check_model_file(model: Path) -> None:
    """Fail now, before minutes of work, when ``model`` is not a file to evaluate.

    Raises:
        ModelError: nothing at ``model``, or a folder.
    """
    if not model.exists():
        raise ModelError(f"no model at {model}")
    if not model.is_file():
        raise ModelError(f"{model} is a folder, not a model file (.onnx or .pt)")


def predictor_for(model: Path, settings: Settings, imgsz: int) -> tuple[Predict, dict[int, str]]:
    """The serving engine for an ONNX file, Ultralytics for a ``.pt`` checkpoint.

    Raises:
        ModelError: the model is missing or cannot be loaded.
    """
    check_model_file(model)
    if model.suffix == ".pt":
        return pt_predictor(model, settings, imgsz)
    return onnx_predictor(model, settings, imgsz)


def load_labels(label_file: Path, width: int, height: int) -> np.ndarray:
    """YOLO label file -> (N, 5) array of class, x1, y1, x2, y2 in pixels.

    Raises:
        DatasetError: a row is not ``class cx cy w h`` (five numbers).
    """
    if not label_file.exists():
        return np.zeros((0, 5))
    rows = [line.split() for line in label_file.read_text().splitlines() if line.strip()]
    try:
        if any(len(row) != 5 for row in rows):  # polygons (segmentation labels) have more
            raise ValueError("a row has more or fewer than five values")
        data = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
    except ValueError as exc:
        raise DatasetError(
            f"{label_file} is not a YOLO detection label file (class cx cy w h per line): {exc}"
        ) from exc
    cls, cx, cy, w, h = data.T
    return np.stack(
        [
            cls,
            (cx - w / 2) * width,
            (cy - h / 2) * height,
            (cx + w / 2) * width,
            (cy + h / 2) * height,
        ],
        axis=1,
    )


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) x (M, 4) xyxy -> (N, M) IoU."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).prod(axis=1)
    iou: np.ndarray = inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9)
    return iou


def match_predictions(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """True positives per IoU threshold, matched as Ultralytics 8.4's DetectionValidator does.

    Detections are visited in descending confidence; each claims the best still-unclaimed
    label of its class at every threshold.

    Args:
        pred: (N, 6) x1, y1, x2, y2, score, class, sorted by descending score.
        gt: (M, 5) class, x1, y1, x2, y2.
    Returns:
        (N, 10) bool: prediction i is a true positive at IoU threshold j.
    """
    correct = np.zeros((len(pred), len(IOU_THRESHOLDS)), dtype=bool)
    if not len(pred) or not len(gt):
        return correct
    iou = box_iou(gt[:, 1:], pred[:, :4]) * (gt[:, :1] == pred[None, :, 5])  # same class only
    claimed = np.zeros((len(gt), len(IOU_THRESHOLDS)), dtype=bool)
    columns = np.arange(len(IOU_THRESHOLDS))
    for j in np.flatnonzero((iou >= IOU_THRESHOLDS.min()).any(0)):
        available = np.where(claimed, 0.0, iou[:, j, None])
        best = available.argmax(0)
        correct[j] = available[best, columns] >= IOU_THRESHOLDS
        claimed[best, columns] |= correct[j]
    return correct


def confusion_matrix(pred: np.ndarray, gt: np.ndarray, nc: int, cm: np.ndarray) -> None:
    """Add one image's boxes to ``cm`` ((nc+1, nc+1), rows predicted, columns true)."""
    pred = pred[pred[:, 4] >= CM_CONF]
    matched_pred: set[int] = set()
    if len(pred) and len(gt):
        iou = box_iou(gt[:, 1:], pred[:, :4])
        pairs = np.argwhere(iou > CM_IOU)
        pairs = pairs[np.argsort(-iou[pairs[:, 0], pairs[:, 1]])]
        used_gt: set[int] = set()
        for g, p in pairs:
            if g in used_gt or p in matched_pred:
                continue
            used_gt.add(int(g))
            matched_pred.add(int(p))
            cm[int(pred[p, 5]), int(gt[g, 0])] += 1
        unmatched_gt = [g for g in range(len(gt)) if g not in used_gt]
    else:
        unmatched_gt = list(range(len(gt)))
    for g in unmatched_gt:
        cm[nc, int(gt[g, 0])] += 1  # missed: predicted background
    for p in range(len(pred)):
        if p not in matched_pred:
            cm[int(pred[p, 5]), nc] += 1  # false alarm on background


def evaluate(
    model: Path,
    data_yaml: Path,
    settings: Settings,
    split: str = "test",
    imgsz: int = 640,
    predictor: tuple[Predict, dict[int, str]] | None = None,
) -> EvalResult:
    """Score ``model`` on ``split`` of ``data_yaml``.

    Raises:
        ModelError: the model is missing or its classes differ from the data set's.
        DatasetError: the data set is unusable, its split is missing or empty, or an image
            cannot be read.
    """
    from ultralytics.utils.metrics import ap_per_class

    ds = dataset.load(data_yaml)
    images = ds.require_images(split)
    predict, names = predictor or predictor_for(model, settings, imgsz)
    if sorted(names.values()) != sorted(ds.names.values()) or names != ds.names:
        raise ModelError(
            f"model classes {names} differ from the data set's {ds.names}; "
            "evaluate a model trained on this data set"
        )
    nc = len(names)
    stats: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    cm = np.zeros((nc + 1, nc + 1), dtype=np.int64)
    times: list[float] = []
    for image_path in images:
        image = cv2.imread(str(image_path))
        if image is None:
            raise DatasetError(f"{image_path} is not a readable image")
        gt = load_labels(ds.label_for(image_path), image.shape[1], image.shape[0])
        start = time.perf_counter()
        pred = predict([image])[0]
        pred = pred[np.argsort(-pred[:, 4], kind="stable")]
        times.append((time.perf_counter() - start) * 1000)
        stats.append((match_predictions(pred, gt), pred[:, 4], pred[:, 5], gt[:, 0]))
        confusion_matrix(pred, gt, nc, cm)
    tp, conf, pred_cls, target_cls = (np.concatenate(x, 0) for x in zip(*stats, strict=True))
    result = ap_per_class(tp, conf, pred_cls, target_cls, names=names)
    p, r, ap, classes = result[2], result[3], result[5], result[6]
    per_class = {}
    for i, c in enumerate(classes):
        per_class[names[int(c)]] = ClassScore(
            precision=float(p[i]), recall=float(r[i]), ap50=float(ap[i, 0]),
            ap50_95=float(ap[i].mean()), labels=int((target_cls == c).sum()),
        )  # fmt: skip
    for c, name in names.items():  # a class absent from the split still gets a row
        per_class.setdefault(name, ClassScore(0.0, 0.0, 0.0, 0.0, int((target_cls == c).sum())))
    return EvalResult(
        model_uri=str(model),
        split=split,
        split_sha256=dataset.fingerprint(ds, splits=(split,)),
        images=len(images),
        map50=float(ap[:, 0].mean()) if len(ap) else 0.0,
        map50_95=float(ap.mean()) if len(ap) else 0.0,
        precision=float(p.mean()) if len(p) else 0.0,
        recall=float(r.mean()) if len(r) else 0.0,
        per_class=dict(sorted(per_class.items())),
        confusion=cm.tolist(),
        ms_per_image=statistics.median(times),
    )


def format_table(results: Sequence[EvalResult]) -> str:
    """A plain-text table of one or more results side by side."""
    lines = []
    for res in results:
        lines.append(f"{res.model_uri}  ({res.split}, {res.images} images, "
                     f"{res.ms_per_image:.0f} ms/image)")  # fmt: skip
        lines.append(f"  {'class':<12}{'labels':>7}{'P':>8}{'R':>8}{'AP50':>8}{'AP50-95':>9}")
        for name, c in res.per_class.items():
            lines.append(f"  {name:<12}{c.labels:>7}{c.precision:>8.3f}{c.recall:>8.3f}"
                         f"{c.ap50:>8.3f}{c.ap50_95:>9.3f}")  # fmt: skip
        lines.append(f"  {'all':<12}{'':>7}{res.precision:>8.3f}{res.recall:>8.3f}"
                     f"{res.map50:>8.3f}{res.map50_95:>9.3f}")  # fmt: skip
    return "\n".join(lines)
