"""The Classifier: an Ultralytics YOLO classification export on ONNX Runtime, images in, labels out.

It runs on the same session code as the detectors (:func:`workers.engines.ort.open_session`:
the providers of ``PITCHSIDE_PROVIDERS``, the threads, no spinning) and is refused by the
detector's loader, as a detector is refused here: the export's ``task`` metadata says which.

Preprocessing is Ultralytics' ``classify_transforms`` (the predictor's and the validator's):
the shortest side resized to the model's input size, a centred square crop, RGB in [0, 1],
no mean or standard deviation. Ultralytics resizes with PIL's bilinear filter, which
antialiases when it shrinks; OpenCV's ``INTER_AREA`` (shrinking) and ``INTER_LINEAR``
(enlarging) give the same pixels within a few levels without PIL in the serving image
(``tests/unit/test_classifier.py`` measures the difference). Training validates with
:func:`center_crop` too, so what it reports is what this serves.
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pitchside.errors import ModelError
from pitchside.models import ResolvedModel, resolve
from pitchside.settings import Settings
from workers.engines.base import dim
from workers.engines.checks import parse_names

log = logging.getLogger(__name__)

TASK = "classify"
DEFAULT_TOP = 5


@dataclass(frozen=True, slots=True)
class Label:
    """One class of an image and the classifier's probability for it."""

    cls: int
    name: str
    score: float

    def to_dict(self) -> dict[str, object]:
        return {"cls": self.cls, "label": self.name, "score": self.score}


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """``(size, size, 3)`` uint8 BGR: ``image`` with its shortest side resized to ``size``,
    then cropped around its centre (torchvision's ``Resize(size)`` + ``CenterCrop(size)``).

    Args:
        image: ``(H, W, 3)`` uint8 BGR.
        size: the model's square input side.
    """
    h, w = image.shape[:2]
    short = min(h, w)
    # torchvision keeps the aspect and truncates the long side: int(size * long / short)
    new_h, new_w = (size, int(size * w / h)) if h == short else (int(size * h / w), size)
    interpolation = cv2.INTER_AREA if short > size else cv2.INTER_LINEAR
    resized = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    top = int(round((new_h - size) / 2.0))
    left = int(round((new_w - size) / 2.0))
    return resized[top : top + size, left : left + size]


def to_batch(crops: Sequence[np.ndarray]) -> np.ndarray:
    """``(N, 3, S, S)`` float32 RGB in [0, 1] from ``N`` square BGR uint8 crops."""
    stacked = np.stack(crops)[..., ::-1]  # BGR -> RGB
    return np.ascontiguousarray(stacked.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0


class Classifier:
    """One ONNX Runtime session of a YOLO classification export; thread-safe.

    Args:
        path: the ``.onnx`` file (``yolo export format=onnx`` of a ``-cls`` model).
        providers: execution providers, best first.
        threads: intra-op threads; 0 lets onnxruntime choose.
        model_id: what results are stamped with; default the file name.

    Raises:
        ModelError: not an ONNX model, not a classification export, or shapes that are not
            one image batch in and one probability per class out.
    """

    def __init__(
        self,
        path: Path,
        providers: Sequence[str],
        threads: int = 0,
        model_id: str | None = None,
    ) -> None:
        from workers.engines.ort import open_session  # onnxruntime: only with a model to open

        self.model_id = model_id or path.name
        self._session = open_session(path, providers, threads)
        metadata = self._session.get_modelmeta().custom_metadata_map
        task = metadata.get("task", "detect")
        if task != TASK:
            raise ModelError(
                f"model {self.model_id!r} is a {task!r} model; the classifier needs a "
                f"classification model (task {TASK!r}, a YOLO -cls export)"
            )
        self.names = parse_names(self.model_id, metadata)
        self.providers = list(self._session.get_providers())
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].type != "tensor(float)":
            raise ModelError(
                f"model {self.model_id!r} takes {[(i.name, i.shape, i.type) for i in inputs]}, "
                "expected one float32 image batch (batch, 3, height, width)"
            )
        _, channels, height, width = (dim(d) for d in inputs[0].shape)
        self.imgsz = _input_size(self.model_id, metadata, height, width)
        if channels not in (None, 3):
            raise ModelError(f"model {self.model_id!r} takes {channels} channels, expected 3")
        out_shape = outputs[0].shape
        classes = dim(out_shape[1]) if len(out_shape) == 2 else -1
        if classes not in (None, len(self.names)):
            raise ModelError(
                f"model {self.model_id!r} outputs {tuple(out_shape)}, expected (batch, "
                f"{len(self.names)}): one probability per class"
            )
        self._fixed_batch = dim(inputs[0].shape[0])
        self._input_name = inputs[0].name
        self._output_name = outputs[0].name

    def prepare(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """``(N, 3, S, S)`` float32 input for ``N >= 1`` ``(H, W, 3)`` uint8 BGR images."""
        if not images:
            raise ValueError("prepare needs at least one image")
        return to_batch([center_crop(image, self.imgsz) for image in images])

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """``(N, classes)`` float32 probabilities (the export ends in a softmax)."""
        if self._fixed_batch is None or self._fixed_batch == len(batch):
            (out,) = self._session.run([self._output_name], {self._input_name: batch})
            return np.asarray(out, dtype=np.float32)
        return np.concatenate([self.probabilities(b[None]) for b in batch])

    def top(self, probabilities: np.ndarray, k: int = DEFAULT_TOP) -> list[list[Label]]:
        """The ``k`` most probable labels of each row, most probable first."""
        k = max(1, min(k, probabilities.shape[1]))
        order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
        return [
            [Label(int(c), self.names[int(c)], float(row[c])) for c in ranked]
            for row, ranked in zip(probabilities, order, strict=True)
        ]

    def classify(self, images: Sequence[np.ndarray], k: int = DEFAULT_TOP) -> list[list[Label]]:
        """The ``k`` most probable labels of each ``(H, W, 3)`` uint8 BGR image."""
        return self.top(self.probabilities(self.prepare(images)), k)

    def warmup(self) -> None:
        """One inference on a grey image, so that the first request pays no set-up."""
        self.probabilities(np.full((1, 3, self.imgsz, self.imgsz), 114 / 255, np.float32))


def _input_size(
    model_id: str, metadata: dict[str, str], height: int | None, width: int | None
) -> int:
    """The square input side: the graph's fixed one, else the export's ``imgsz`` metadata."""
    if height is not None and width is not None:
        if height != width:
            raise ModelError(f"model {model_id!r} takes {height}x{width}; expected a square input")
        return height
    try:
        raw = ast.literal_eval(metadata.get("imgsz", ""))
        sizes = [int(v) for v in (raw if isinstance(raw, list | tuple) else [raw])]
    except (ValueError, SyntaxError, TypeError):
        sizes = []
    if not sizes or sizes[0] < 1 or any(s != sizes[0] for s in sizes):
        raise ModelError(
            f"model {model_id!r} has a dynamic input and no square imgsz in its metadata "
            f"(found {metadata.get('imgsz')!r}); export it with Ultralytics at one imgsz"
        )
    return sizes[0]


def load_classifier(model_uri: str, settings: Settings) -> Classifier:
    """Load and warm up the classifier ``model_uri`` names (an ``.onnx`` path or
    ``models:/ball-classifier@champion``), with ``settings.providers`` and ``threads``.

    Raises:
        ModelError: the model is missing, not ONNX, or not a classification export.
        SettingsError: ``settings.providers`` names a provider this onnxruntime lacks.
    """
    return load_resolved_classifier(resolve(model_uri, settings), settings)


def load_resolved_classifier(model: ResolvedModel, settings: Settings) -> Classifier:
    """As :func:`load_classifier`, for a model already resolved to a local file."""
    from workers.engines.ort import resolve_providers

    path = model.path
    if path.suffix != ".onnx":
        raise ModelError(
            f"classifier {str(path)!r} is not an .onnx file; export the -cls model with "
            "Ultralytics (yolo export format=onnx)"
        )
    if not path.is_file():
        raise ModelError(f"classifier file {str(path)!r} does not exist")
    providers = resolve_providers(settings.providers)
    classifier = Classifier(path, providers, settings.threads_per_session(), model.model_id)
    classifier.warmup()
    log.info(
        "loaded classifier %s: %d classes, input %d, providers %s",
        classifier.model_id, len(classifier.names), classifier.imgsz,
        ",".join(classifier.providers),
    )  # fmt: skip
    return classifier
