"""Score a classifier on one split of ImageNet-style folders: top-1, top-5, recall per class.

The ONNX export runs through the very engine ``POST /api/classify`` serves with
(:class:`workers.engines.Classifier`, its preprocessing included), so the figures are the
served model's. ``ms_per_image`` is the median of the per-image times at batch 1 (crop and
model), with the threads of ``PITCHSIDE_THREADS``.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pitchside.errors import EvaluationError, ModelError
from pitchside.settings import Settings
from training import classify_data
from training.classify_data import read_image


@dataclass(frozen=True, slots=True)
class ClassRecall:
    recall: float  # images of the class whose top-1 is the class / images of the class
    images: int


@dataclass(frozen=True, slots=True)
class ClassifyResult:
    """Scores of one classifier on one split. ``split_sha256`` names the exact images."""

    model_uri: str
    split: str
    split_sha256: str
    images: int
    top1: float
    top5: float
    per_class: dict[str, ClassRecall]
    confusion: list[list[int]]  # rows true class, columns predicted (top-1)
    ms_per_image: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ClassifyResult:
        per_class = {k: ClassRecall(**v) for k, v in doc["per_class"].items()}
        return cls(**{**doc, "per_class": per_class})

    def flat_metrics(self, prefix: str = "") -> dict[str, float]:
        """MLflow-friendly metrics: ``top1``, ``top5``, ``recall/football`` ..."""
        out = {"top1": self.top1, "top5": self.top5, "ms_per_image": self.ms_per_image}
        out.update({f"recall/{name}": c.recall for name, c in self.per_class.items()})
        return {f"{prefix}{k}": v for k, v in out.items()}


def check_classifier_file(model: Path) -> None:
    """Fail before any scoring when ``model`` cannot be a served classifier.

    Raises:
        ModelError: not an existing ``.onnx`` file.
    """
    if model.suffix != ".onnx":
        raise ModelError(
            f"{model}: classifiers are scored as they are served, from their ONNX export "
            "(yolo export format=onnx)"
        )
    if not model.is_file():
        raise ModelError(f"no model file at {model}")


def evaluate_classifier(
    model: Path, root: Path, settings: Settings, split: str = "val"
) -> ClassifyResult:
    """Score ``model`` (a classification ``.onnx``) on ``split`` of the folders at ``root``.

    Raises:
        ModelError: the model is missing or not a classification export.
        DatasetError: the folders or the split are unusable, or an image does not decode.
        EvaluationError: the model's classes are not the data set's.
    """
    from workers.engines import load_classifier

    check_classifier_file(model)
    folders = classify_data.load(root)
    samples = folders.samples(split)
    classifier = load_classifier(str(model), settings)  # warmed up
    names = list(folders.names.values())
    if list(classifier.names.values()) != names:
        raise EvaluationError(
            f"{model.name} knows the classes {list(classifier.names.values())}, the data set "
            f"{names}: score a classifier on the folders it was trained for"
        )
    nc = len(names)
    confusion = np.zeros((nc, nc), dtype=np.int64)
    in_top5 = 0
    times = []
    for image_path, true in samples:
        image = read_image(image_path)
        started = time.perf_counter()
        probabilities = classifier.probabilities(classifier.prepare([image]))[0]
        times.append((time.perf_counter() - started) * 1000)
        ranked = np.argsort(-probabilities, kind="stable")
        confusion[true, int(ranked[0])] += 1
        in_top5 += int(true in ranked[:5])
    per_class = {
        name: ClassRecall(
            recall=float(confusion[i, i] / row) if (row := int(confusion[i].sum())) else 0.0,
            images=int(confusion[i].sum()),
        )
        for i, name in enumerate(names)
    }
    return ClassifyResult(
        model_uri=str(model), split=split,
        split_sha256=_split_fingerprint(folders, split), images=len(samples),
        top1=float(np.trace(confusion) / len(samples)), top5=in_top5 / len(samples),
        per_class=per_class, confusion=confusion.tolist(),
        ms_per_image=round(statistics.median(times), 3),
    )  # fmt: skip


def _split_fingerprint(folders: classify_data.ImageFolders, split: str) -> str:
    return classify_data.fingerprint(folders, (split,))


def format_classify_table(results: list[ClassifyResult]) -> str:
    """One row per model: top-1, top-5, ms per image; then recall per class side by side."""
    if not results:
        return ""
    lines = [f"{'model':<40}{'split':>6}{'images':>8}{'top-1':>8}{'top-5':>8}{'ms/img':>8}"]
    for r in results:
        name = Path(r.model_uri).name[:39]
        lines.append(
            f"{name:<40}{r.split:>6}{r.images:>8}{r.top1:>8.3f}{r.top5:>8.3f}{r.ms_per_image:>8.2f}"
        )
    lines.append("")
    header = f"{'recall':<20}" + "".join(f"{Path(r.model_uri).name[:14]:>16}" for r in results)
    lines.append(header)
    for name in results[0].per_class:
        row = f"{name:<20}"
        for r in results:
            c = r.per_class.get(name)
            row += f"{(f'{c.recall:.2f} ({c.images})' if c else '-'):>16}"
        lines.append(row)
    return "\n".join(lines)
