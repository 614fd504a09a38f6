"""The gateway's own detector and classifier, for single images: loaded on first use, run
off the loop.

It is the workers' serving engine (:mod:`workers.engines`) with the workers' model settings
(``PITCHSIDE_MODEL``, ``PITCHSIDE_CONF``, ``PITCHSIDE_IOU``, ``PITCHSIDE_IMGSZ``,
``PITCHSIDE_PROVIDERS``, ``PITCHSIDE_THREADS``), so an image is detected as a frame of a
stream would be. Loading happens once, in a thread, the first time an image comes (a gateway
that never predicts never loads a model); a load that fails is tried again at the next
image. Images are detected one at a time, each with every inference thread: the lowest
latency for each, and a burst of uploads queues here instead of oversubscribing the CPU. The
queue is bounded: at most ``MAX_IN_FLIGHT`` images are held (decoding, waiting, detected) at
once, each up to ``PITCHSIDE_PREDICT_MAX_PIXELS`` x 3 bytes; one more is refused with 503.
The classifier of ``POST /api/classify`` (``PITCHSIDE_CLASSIFIER``, the serving engine's
:class:`~workers.engines.Classifier`) is held the same way, with places of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from pitchside.errors import (
    ModelError,
    ModelUnavailableError,
    PredictorBusyError,
    SettingsError,
)
from pitchside.models import ResolvedModel, resolve
from pitchside.schema import Detection
from pitchside.settings import Settings
from workers.engines import Classifier, Detector, Label, load_resolved, load_resolved_classifier

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 4  # images held at once, by each model; a 40 MP one decodes to 120 MB

M = TypeVar("M")  # the loaded model
R = TypeVar("R")  # what it gives for one image


@dataclass(frozen=True, slots=True)
class ModelName:
    """The model as workers name it (``id``), split into name and registry version."""

    id: str  # "yolov8n_int8.onnx", or "football-detector/3" for a registry model
    name: str
    version: str | None

    @classmethod
    def of(cls, model: ResolvedModel) -> ModelName:
        if model.version is None:
            return cls(model.model_id, model.model_id, None)
        return cls(model.model_id, model.model_id.rsplit("/", 1)[0], model.version)


@dataclass(frozen=True, slots=True)
class Detected:
    """What one image gave: its detections and where the time went (ms)."""

    detections: list[Detection]
    model: ModelName
    wait_ms: float  # queued behind other images, and loading the model the first time
    inference_ms: float  # letterbox, the model, NMS


@dataclass(frozen=True, slots=True)
class Classified:
    """What one image gave the classifier: its most probable labels, and the time (ms)."""

    labels: list[Label]
    model: ModelName
    wait_ms: float  # queued behind other images, and loading the model the first time
    inference_ms: float  # the crop and the model


class _OneAtATime(Generic[M]):
    """A model loaded on first use, in a thread, and run on one image at a time, with at most
    ``MAX_IN_FLIGHT`` images held; the machinery :class:`Predictor` and :class:`ImageClassifier`
    share. ``what`` names the model in messages; ``uri`` is the setting that chooses it."""

    def __init__(
        self, settings: Settings, what: str, uri: str, load: Callable[[ResolvedModel], M]
    ) -> None:
        self._settings = settings
        self._what = what
        self._uri = uri
        self._load_model = load
        self._loaded: tuple[M, ModelName] | None = None
        self._turn = asyncio.Lock()  # one image at a time; the first one also loads
        self._in_flight = 0

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Hold one of the ``MAX_IN_FLIGHT`` places while an image is decoded and run.

        Raises:
            PredictorBusyError: every place is taken (503: try again shortly).
        """
        if self._in_flight >= MAX_IN_FLIGHT:
            raise PredictorBusyError(
                f"{MAX_IN_FLIGHT} images are being predicted already; try again shortly"
            )
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1

    async def _run(self, work: Callable[[M], R]) -> tuple[R, ModelName, float, float]:
        """``work(model)`` in a thread, its turn taken: the result, the model's name, and
        the ms waited and run.

        Raises:
            ModelUnavailableError: the model cannot be loaded (the reason is logged).
        """
        queued = time.perf_counter()
        async with self._turn:
            model, name = self._loaded or await self._load()
            started = time.perf_counter()
            result = await asyncio.to_thread(work, model)
            ended = time.perf_counter()
        return result, name, (started - queued) * 1000, (ended - started) * 1000

    async def _load(self) -> tuple[M, ModelName]:
        settings = self._settings
        try:
            resolved = await asyncio.to_thread(resolve, self._uri, settings)
            model = await asyncio.to_thread(self._load_model, resolved)
        except (ModelError, SettingsError) as exc:
            log.error("the gateway cannot load its %s %s: %s", self._what, self._uri, exc)
            raise ModelUnavailableError(
                f"the gateway's {self._what} could not be loaded; the gateway's log says why"
            ) from None
        self._loaded = model, ModelName.of(resolved)
        log.info("gateway runs images through its %s %s", self._what, resolved.model_id)
        return self._loaded


class Predictor(_OneAtATime[Detector]):
    """Detects objects in single images with the serving engine; see the module docs."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(
            settings, "detector", settings.model_uri,
            lambda model: load_resolved(model, settings),
        )  # fmt: skip

    async def detect(self, image: np.ndarray) -> Detected:
        """Detections in ``image`` (``(H, W, 3)`` uint8 BGR), boxes in its pixels.

        Raises:
            ModelUnavailableError: the model cannot be loaded (the reason is logged).
        """
        detections, name, wait_ms, inference_ms = await self._run(
            lambda detector: _detect_one(detector, image)
        )
        return Detected(detections, name, wait_ms, inference_ms)


class ImageClassifier(_OneAtATime[Classifier]):
    """Classifies single images with the ball-type classifier (``PITCHSIDE_CLASSIFIER``)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(
            settings, "classifier", settings.classifier_uri,
            lambda model: load_resolved_classifier(model, settings),
        )  # fmt: skip

    async def classify(self, image: np.ndarray, top: int) -> Classified:
        """The ``top`` most probable labels of ``image`` (``(H, W, 3)`` uint8 BGR).

        Raises:
            ModelUnavailableError: the classifier cannot be loaded (the reason is logged).
        """
        labels, name, wait_ms, inference_ms = await self._run(
            lambda classifier: classifier.classify([image], top)[0]
        )
        return Classified(labels, name, wait_ms, inference_ms)


def _detect_one(detector: Detector, image: np.ndarray) -> list[Detection]:
    batch: Sequence[np.ndarray] = [image]
    return detector.detect(batch)[0]
