"""Detector engines and the Detector that wraps one: letterbox in, Detections out.

An :class:`Engine` runs a model on a letterboxed batch; :class:`Detector` adds the NumPy
pre- and post-processing around it. Engines are listed explicitly in :func:`load_detector`
and imported lazily, so a missing optional runtime only matters to the model that needs it.

Model URIs:
    ``/path/model.onnx``   an Ultralytics YOLO detection export (ONNX Runtime)
    ``models:/name@alias`` an MLflow registry model (needs the train extra), see
                           :mod:`workers.model_source`
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from pitchside.errors import ModelError
from pitchside.schema import Detection
from pitchside.settings import Settings
from workers import postprocess
from workers.preprocess import Letterbox, fill_batch, input_hw_for

if TYPE_CHECKING:
    from workers.model_source import ResolvedModel

log = logging.getLogger(__name__)

MLFLOW_SCHEME = "models:/"
DEFAULT_STRIDE = 32

#: Input shape with ``None`` for a dynamic dimension: (batch, channels, height, width).
InputShape = tuple[int | None, int | None, int | None, int | None]


class Engine(Protocol):
    """A loaded detection model that turns a letterboxed batch into raw YOLO output."""

    model_id: str  # the model file name, e.g. "yolov8n_int8.onnx"
    names: dict[int, str]  # class id -> label, from the model's metadata
    input_shape: InputShape
    stride: int  # the model's largest stride
    providers: list[str]  # what actually runs it, best first

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """``(N, 3, H, W)`` float32 RGB in [0, 1] -> ``(N, 4 + nc, A)`` float32."""
        ...


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What ``pitchside up`` learns about a model before starting anything."""

    model_id: str
    names: dict[int, str]
    input_shape: InputShape
    providers: list[str]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A letterboxed batch and the placement of each image in it."""

    batch: np.ndarray  # (N, 3, H, W) float32 RGB in [0, 1]
    letterboxes: list[Letterbox]  # N placements, one per image

    def __len__(self) -> int:
        return len(self.letterboxes)


class Detector:
    """An engine plus letterbox and NMS: images in, Detections in source pixels out.

    ``prepare``, ``infer`` and ``postprocess`` are separate so that a caller can run them in
    different threads and overlap them; ``detect`` chains them. Thread-safe: it holds no
    mutable state.

    Args:
        engine: the loaded model.
        conf: keep boxes whose best class score is above this.
        iou: class-aware NMS threshold.
        imgsz: long side of the input for a model with dynamic height and width.
    """

    def __init__(
        self, engine: Engine, conf: float, iou: float, imgsz: int, model_id: str | None = None
    ) -> None:
        self.engine = engine
        self.conf = conf
        self.iou = iou
        self.imgsz = imgsz
        self._model_id = model_id

    @property
    def model_id(self) -> str:
        """The file name, or ``name/version`` for a registry model."""
        return self._model_id or self.engine.model_id

    @property
    def names(self) -> dict[int, str]:
        return self.engine.names

    def input_hw_for(self, src_hw: tuple[int, int]) -> tuple[int, int]:
        """Network input ``(H, W)`` for a source of ``src_hw``: the model's fixed size, or
        for a dynamic model the smallest stride multiple with long side ``imgsz``."""
        _, _, fixed_h, fixed_w = self.engine.input_shape
        if fixed_h is not None and fixed_w is not None:
            return fixed_h, fixed_w
        h, w = input_hw_for(src_hw, self.imgsz, self.engine.stride)
        return fixed_h or h, fixed_w or w

    def prepare(self, images: Sequence[np.ndarray]) -> Prepared:
        """Letterbox images into one batch.

        Args:
            images: ``N >= 1`` images, each ``(H_i, W_i, 3)`` uint8 BGR. With a dynamic
                model, images of different shapes share the smallest input holding each.

        Returns:
            The ``(N, 3, H, W)`` float32 batch and the placement of each image.
        """
        if not images:
            raise ValueError("prepare needs at least one image")
        sizes = [self.input_hw_for(image.shape[:2]) for image in images]
        out_hw = (max(h for h, _ in sizes), max(w for _, w in sizes))
        batch = np.empty((len(images), 3, *out_hw), dtype=np.float32)
        return Prepared(batch=batch, letterboxes=fill_batch(images, batch))

    def infer(self, prepared: Prepared) -> np.ndarray:
        """Run the model: ``(N, 4 + nc, A)`` float32 raw output for a prepared batch."""
        return self.engine.infer(prepared.batch)

    def postprocess(self, raw: np.ndarray, prepared: Prepared) -> list[list[Detection]]:
        """Decode, NMS and map back to source pixels: one list of Detections per image."""
        per_image = postprocess.non_max_suppression(raw, self.conf, self.iou)
        return [
            postprocess.to_detections(dets, lb, self.names)
            for dets, lb in zip(per_image, prepared.letterboxes, strict=True)
        ]

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Detections for each ``(H, W, 3)`` uint8 BGR image, boxes in its own pixels."""
        prepared = self.prepare(images)
        return self.postprocess(self.infer(prepared), prepared)

    def warmup(self) -> None:
        """One inference on a grey input, and a check that the output is YOLO detection's.

        Raises:
            ModelError: the output is not shaped ``(B, 4 + nc, A)``.
        """
        h, w = self.input_hw_for((self.imgsz, self.imgsz))
        raw = self.engine.infer(np.full((1, 3, h, w), 114 / 255, dtype=np.float32))
        check_detection_output(self.model_id, tuple(raw.shape), len(self.names))


def resolve_model_uri(model_uri: str) -> Path:
    """The local file a model URI names.

    Raises:
        ModelError: an MLflow URI (not served yet), a PyTorch checkpoint, a folder, or a
            file that does not exist.
    """
    if model_uri.startswith(MLFLOW_SCHEME):
        raise ModelError(f"model {model_uri!r}: resolve registry URIs with workers.model_source")
    path = Path(model_uri.removeprefix("file://")).expanduser()
    if path.suffix == ".pt":
        raise ModelError(
            f"model {str(path)!r} is a PyTorch checkpoint; workers serve ONNX: export it "
            f"first (yolo export model={path} format=onnx) and point PITCHSIDE_MODEL at the "
            ".onnx file"
        )
    if not path.exists():
        raise ModelError(f"model file {str(path)!r} does not exist")
    if path.is_dir():
        raise ModelError(
            f"model {str(path)!r} is a folder (an OpenVINO export?); workers serve a single "
            ".onnx file for now"
        )
    return path


def parse_names(model_id: str, metadata: Mapping[str, str]) -> dict[int, str]:
    """Class names from an Ultralytics export's ``names`` metadata (a Python dict literal).

    Raises:
        ModelError: no ``names`` entry, or one that is not a ``{int: str}`` dict.
    """
    raw = metadata.get("names")
    if raw is None:
        raise ModelError(
            f"model {model_id!r} has no class names in its metadata; export it with "
            "Ultralytics (yolo export format=onnx), which writes them"
        )
    try:
        names = ast.literal_eval(raw)
        parsed = {int(k): str(v) for k, v in names.items()}
    except (ValueError, TypeError, SyntaxError, AttributeError) as exc:
        raise ModelError(
            f"model {model_id!r} has unreadable class names in its metadata: {raw[:80]!r}"
        ) from exc
    if not parsed:
        raise ModelError(f"model {model_id!r} has an empty class name table")
    return parsed


def check_task(model_id: str, metadata: Mapping[str, str]) -> None:
    """Refuse a model whose metadata says it is not a plain YOLO detector.

    Raises:
        ModelError: ``task`` is not ``detect``, or an end-to-end (NMS-free) export.
    """
    task = metadata.get("task", "detect")
    if task != "detect":
        raise ModelError(
            f"model {model_id!r} is a {task!r} model; workers need a detection model "
            "(task 'detect')"
        )
    if metadata.get("end2end", "False").strip().lower() == "true":
        raise ModelError(
            f"model {model_id!r} is an end-to-end (NMS-free) export, not supported yet; "
            "export it with end2end=False"
        )


def check_detection_output(model_id: str, shape: Sequence[int | str | None], nc: int) -> None:
    """Refuse an output that is not ``(B, 4 + nc, A)``; symbolic dimensions pass.

    Raises:
        ModelError: naming the shape found and the one expected.
    """
    dim = shape[1] if len(shape) == 3 else None
    if len(shape) != 3 or (isinstance(dim, int) and dim != 4 + nc):
        raise ModelError(
            f"model {model_id!r} is not a detection model: its output is shaped "
            f"{tuple(shape)}, expected (batch, {4 + nc}, anchors) for 4 box values and "
            f"{nc} classes"
        )


def load_detector(model_uri: str, settings: Settings) -> Detector:
    """Load, check and warm up the detector ``model_uri`` names (a path or ``models:/...``).

    Uses ``settings.providers``, ``threads``, ``conf``, ``iou`` and ``imgsz``.

    Raises:
        ModelError: the model is missing, not ONNX, or not a YOLO detection model.
        SettingsError: ``settings.providers`` names a provider this runtime lacks.
    """
    from workers.model_source import resolve

    return load_resolved(resolve(model_uri, settings), settings)


def load_resolved(model: ResolvedModel, settings: Settings, lanes: int = 1) -> Detector:
    """As :func:`load_detector`, for a model already resolved to a local file; ``lanes`` is
    how many callers will run it at once, which shares the threads out among them
    (:meth:`Settings.threads_per_session`)."""
    from workers.engines.ort import OrtEngine, resolve_providers

    path = resolve_model_uri(str(model.path))
    threads = settings.threads_per_session(lanes)
    engine = OrtEngine(path, resolve_providers(settings.providers), threads=threads)
    detector = Detector(
        engine, conf=settings.conf, iou=settings.iou, imgsz=settings.imgsz,
        model_id=model.model_id,
    )  # fmt: skip
    detector.warmup()
    log.info(
        "loaded %s: %d classes, input %s, providers %s, %d threads for each of %d lanes",
        detector.model_id,
        len(engine.names),
        engine.input_shape,
        ",".join(engine.providers),
        threads,
        lanes,
    )
    return detector


def load_for_worker(model: ResolvedModel, settings: Settings) -> tuple[Detector, Detector]:
    """A worker's two sessions of one model: ``(live, lanes)``.

    ``live`` has every thread and runs one batch at a time: the lowest latency, for a worker
    serving only live streams. ``lanes`` gives each of ``settings.lanes`` batches side by side
    its share of the threads: the most frames per second, for analyse streams. With one lane
    they are the same detector.
    """
    live = load_resolved(model, settings)
    if settings.lanes == 1:
        return live, live
    return live, load_resolved(model, settings, settings.lanes)


def inspect_model(
    model_uri: str, providers: str = "auto", settings: Settings | None = None
) -> ModelInfo:
    """Check a model without serving it, so that ``pitchside up`` fails fast.

    Loads the model on the CPU with one thread and runs one inference.

    Args:
        model_uri: as for :func:`load_detector`.
        providers: the ``PITCHSIDE_PROVIDERS`` value to resolve for the report.
        settings: where the MLflow registry is, for ``models:/`` URIs.

    Returns:
        Model id, class names, input shape (``None`` for dynamic) and the providers a worker
        would use.

    Raises:
        ModelError: as :func:`load_detector`.
        SettingsError: ``providers`` names a provider this runtime lacks.
    """
    from workers.engines.ort import CPU, OrtEngine, resolve_providers
    from workers.model_source import resolve

    resolved = resolve_providers(providers)
    model = resolve(model_uri, settings or Settings())
    engine = OrtEngine(resolve_model_uri(str(model.path)), [CPU], threads=1)
    detector = Detector(engine, conf=0.25, iou=0.7, imgsz=640)
    detector.warmup()
    return ModelInfo(
        model_id=model.model_id,
        names=dict(engine.names),
        input_shape=engine.input_shape,
        providers=resolved,
    )
