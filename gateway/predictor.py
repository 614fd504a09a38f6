"""The gateway's own detector, for single images: loaded on first use, run off the loop.

It is the workers' serving engine (:mod:`workers.engines`) with the workers' model settings
(``PITCHSIDE_MODEL``, ``PITCHSIDE_CONF``, ``PITCHSIDE_IOU``, ``PITCHSIDE_IMGSZ``,
``PITCHSIDE_PROVIDERS``, ``PITCHSIDE_THREADS``), so an image is detected as a frame of a
stream would be. Loading happens once, in a thread, the first time an image comes (a gateway
that never predicts never loads a model); a load that fails is tried again at the next
image. Images are detected one at a time, each with every inference thread: the lowest
latency for each, and a burst of uploads queues here instead of oversubscribing the CPU. The
queue is bounded: at most ``MAX_IN_FLIGHT`` images are held (decoding, waiting, detected) at
once, each up to ``PITCHSIDE_PREDICT_MAX_PIXELS`` x 3 bytes; one more is refused with 503.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

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
from workers.engines import Detector, load_resolved

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 4  # images held at once; a 40 MP one decodes to 120 MB


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


class Predictor:
    """Detects objects in single images with the serving engine; see the module docs."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._loaded: tuple[Detector, ModelName] | None = None
        self._turn = asyncio.Lock()  # one image at a time; the first one also loads
        self._in_flight = 0

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Hold one of the ``MAX_IN_FLIGHT`` places while an image is decoded and detected.

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

    async def detect(self, image: np.ndarray) -> Detected:
        """Detections in ``image`` (``(H, W, 3)`` uint8 BGR), boxes in its pixels.

        Raises:
            ModelUnavailableError: the model cannot be loaded (the reason is logged).
        """
        queued = time.perf_counter()
        async with self._turn:
            detector, name = self._loaded or await self._load()
            started = time.perf_counter()
            detections = await asyncio.to_thread(_detect_one, detector, image)
            ended = time.perf_counter()
        return Detected(
            detections=detections, model=name,
            wait_ms=(started - queued) * 1000, inference_ms=(ended - started) * 1000,
        )  # fmt: skip

    async def _load(self) -> tuple[Detector, ModelName]:
        settings = self._settings
        try:
            model = await asyncio.to_thread(resolve, settings.model_uri, settings)
            detector = await asyncio.to_thread(load_resolved, model, settings)
        except (ModelError, SettingsError) as exc:
            log.error("the gateway cannot load its detector %s: %s", settings.model_uri, exc)
            raise ModelUnavailableError(
                "the gateway's detector could not be loaded; the gateway's log says why"
            ) from None
        self._loaded = detector, ModelName.of(model)
        log.info("gateway predicts images with %s", detector.model_id)
        return self._loaded


def _detect_one(detector: Detector, image: np.ndarray) -> list[Detection]:
    batch: Sequence[np.ndarray] = [image]
    return detector.detect(batch)[0]
