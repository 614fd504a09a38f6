"""Train a YOLO classifier (``-cls``) with Ultralytics' trainer on ImageNet-style folders.

Ultralytics' :class:`ClassificationTrainer` does the training (optimizer, schedule, EMA,
checkpoints, top-1/top-5 validation each epoch); only its data set is ours. Ultralytics
reads classification folders through ``torchvision.datasets.ImageFolder`` and
``torchvision.transforms``, which the CPU machines this project runs on do not have (there
is no CPU torchvision build on the registry, see ``ENVIRONMENT.md``); :class:`FolderDataset`
is the same contract in OpenCV and NumPy: train images get a random resized crop, a
horizontal flip, an HSV jitter and random erasing (Ultralytics' ``scale``, ``fliplr``,
``hsv_*`` and ``erasing`` arguments); validation images get exactly the serving engine's
preprocessing (:func:`workers.engines.center_crop`), so the validation figures are the
served model's.

A detection checkpoint as the base (the COCO YOLOv8n of ``../shared/assets/models``) is
transferred into the ``-cls`` architecture of the same scale: ``YOLO("yolov8n-cls.yaml")
.load(base)`` copies every tensor whose name and shape match, the backbone, and the new
classification head starts from scratch.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pitchside.errors import ModelError
from training.classify_data import read_image
from training.ultra import error_text
from workers.engines import center_crop

log = logging.getLogger(__name__)

#: The ``-cls`` architecture a detection base of each YOLOv8 scale transfers into.
CLS_ARCH = "yolov8{scale}-cls.yaml"
CACHE_SIDE = 1.5  # images are kept in RAM with their shortest side at most this x imgsz


class FolderDataset:
    """Images of one split for Ultralytics' classification trainer and validator.

    Items are ``{"img": (3, S, S) float32 RGB in [0, 1], "cls": class index}``, what
    Ultralytics' ``ClassificationDataset`` yields. ``samples`` and ``torch_transforms`` are
    the attributes the trainer reads; ``torch_transforms`` is None, so that a checkpoint
    names no class of this project and Ultralytics loads it anywhere.

    Args:
        root: a split folder, ``<root>/<class>/<image>``.
        names: class index -> folder name, the data set's classes.
        imgsz: the square input side.
        augment: the training augmentation (else the serving preprocessing).
        args: Ultralytics' training arguments (``scale``, ``fliplr``, ``hsv_h``, ``hsv_s``,
            ``hsv_v``, ``erasing``, ``seed``).

    Raises:
        DatasetError: an image does not decode (every image is read once, up front).
    """

    def __init__(
        self, root: Path, names: dict[int, str], imgsz: int, augment: bool, args: Any
    ) -> None:
        import torch

        self._torch = torch
        index = {name: i for i, name in names.items()}
        files = sorted(p for p in root.glob("*/*") if p.parent.name in index and p.is_file())
        self.samples = [[str(p), index[p.parent.name]] for p in files]
        self.torch_transforms = None
        self.imgsz = imgsz
        self.augment = augment
        self._images = [_shrunk(read_image(p), imgsz) for p in files]
        self._args = args
        self._rng = np.random.default_rng(int(getattr(args, "seed", 0)))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, Any]:
        image = self._images[i]
        crop = self._augmented(image) if self.augment else center_crop(image, self.imgsz)
        chw = np.ascontiguousarray(crop[..., ::-1].transpose(2, 0, 1), dtype=np.float32) / 255.0
        return {"img": self._torch.from_numpy(chw), "cls": self.samples[i][1]}

    def _augmented(self, image: np.ndarray) -> np.ndarray:
        args, rng, size = self._args, self._rng, self.imgsz
        crop = random_resized_crop(image, size, _scale_range(args.scale), rng)
        if rng.random() < float(args.fliplr):
            crop = crop[:, ::-1]
        crop = hsv_jitter(crop, (float(args.hsv_h), float(args.hsv_s), float(args.hsv_v)), rng)
        if rng.random() < float(args.erasing):
            crop = random_erase(crop, rng)
        return crop


def _shrunk(image: np.ndarray, imgsz: int) -> np.ndarray:
    """``image`` with its shortest side at most ``CACHE_SIDE * imgsz``: RAM for 600 photos
    of up to 4,000 px, and no crop smaller than the input is ever enlarged from less."""
    h, w = image.shape[:2]
    limit = int(CACHE_SIDE * imgsz)
    if min(h, w) <= limit:
        return image
    f = limit / min(h, w)
    return cv2.resize(image, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)


def _scale_range(scale: Any) -> tuple[float, float]:
    """Ultralytics' ``scale``: a float ``s`` means areas of ``(1 - s, 1)``; or a pair."""
    if isinstance(scale, list | tuple):
        return float(scale[0]), float(scale[1])
    return max(0.01, 1.0 - float(scale)), 1.0


def random_resized_crop(
    image: np.ndarray, size: int, scale: tuple[float, float], rng: np.random.Generator
) -> np.ndarray:
    """torchvision's ``RandomResizedCrop``: a crop of a random area fraction in ``scale``
    and aspect in [3/4, 4/3], resized to ``size``; the centre crop after ten misses."""
    h, w = image.shape[:2]
    for _ in range(10):
        area = h * w * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        cw, ch = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            patch = image[top : top + ch, left : left + cw]
            shrink = min(ch, cw) > size
            return cv2.resize(
                patch, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
            )
    return center_crop(image, size)


def hsv_jitter(
    image: np.ndarray, gains: tuple[float, float, float], rng: np.random.Generator
) -> np.ndarray:
    """Ultralytics' HSV augmentation: hue, saturation and value scaled by ``1 +- gain``."""
    r = rng.uniform(-1, 1, 3) * np.asarray(gains) + 1
    hue, sat, val = cv2.split(cv2.cvtColor(image, cv2.COLOR_BGR2HSV))
    x = np.arange(256, dtype=np.float32)
    lut_hue = ((x * r[0]) % 180).astype(np.uint8)
    lut_sat = np.clip(x * r[1], 0, 255).astype(np.uint8)
    lut_val = np.clip(x * r[2], 0, 255).astype(np.uint8)
    hsv = cv2.merge((cv2.LUT(hue, lut_hue), cv2.LUT(sat, lut_sat), cv2.LUT(val, lut_val)))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def random_erase(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """torchvision's ``RandomErasing`` (area 2-33 %, aspect 0.3-3.3) with random pixels."""
    h, w = image.shape[:2]
    for _ in range(10):
        area = h * w * rng.uniform(0.02, 0.33)
        aspect = math.exp(rng.uniform(math.log(0.3), math.log(1 / 0.3)))
        eh, ew = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < eh < h and 0 < ew < w:
            top, left = int(rng.integers(0, h - eh + 1)), int(rng.integers(0, w - ew + 1))
            out = image.copy()
            out[top : top + eh, left : left + ew] = rng.integers(0, 256, (eh, ew, 3), np.uint8)
            return out
    return image


def folder_trainer(ultralytics: Any) -> type:
    """Ultralytics' ClassificationTrainer reading its splits through :class:`FolderDataset`."""
    del ultralytics  # imported by the caller, with pitchside's settings applied
    from ultralytics.models.yolo.classify import ClassificationTrainer

    class FolderTrainer(ClassificationTrainer):  # type: ignore[misc]
        def build_dataset(self, img_path: str, mode: str = "train", batch: Any = None) -> Any:
            return FolderDataset(
                Path(img_path), self.data["names"], int(self.args.imgsz), mode == "train",
                self.args,
            )  # fmt: skip

    return FolderTrainer


def load_classifier_base(ultralytics: Any, base: Path) -> Any:
    """The Ultralytics ``-cls`` model to train from checkpoint ``base``.

    A classification checkpoint is fine-tuned as it is; a YOLOv8 detection checkpoint is
    transferred into the ``-cls`` architecture of its scale (its backbone's weights copied).

    Raises:
        ModelError: Ultralytics cannot load it, or it is neither a classifier nor a YOLOv8
            detector whose scale is known.
    """
    try:
        model = ultralytics.YOLO(str(base))
    except Exception as exc:  # torch and Ultralytics raise whatever their loaders raise
        raise ModelError(
            f"Ultralytics cannot load the base checkpoint {base}: {error_text(exc)}"
        ) from exc
    if model.task == "classify":
        return model
    scale = str(getattr(model.model, "yaml", {}).get("scale") or "")
    if model.task != "detect" or scale not in "nsmlx" or not scale:
        raise ModelError(
            f"base checkpoint {base} is a {model.task!r} model of scale {scale or 'unknown'}; "
            "a classifier starts from a -cls checkpoint or a YOLOv8 n/s/m/l/x detector"
        )
    arch = CLS_ARCH.format(scale=scale)
    classifier = ultralytics.YOLO(arch).load(str(base))
    log.info("transferred the backbone of %s into %s", base.name, arch)
    return classifier
