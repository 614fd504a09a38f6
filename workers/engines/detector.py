"""The Detector: an engine plus letterbox and NMS, images in, Detections in source pixels out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pitchside.schema import Detection
from workers import postprocess
from workers.engines.base import Engine
from workers.engines.checks import check_detection_output
from workers.preprocess import Letterbox, fill_batch, input_hw_for


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
        engine: the loaded model, on any runtime.
        conf: keep boxes whose best class score is above this.
        iou: class-aware NMS threshold.
        imgsz: long side of the input for a model with dynamic height and width.
        model_id: what detections are stamped with; default the engine's file name.
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
