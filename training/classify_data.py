"""ImageNet-style folders for classification: ``<root>/<split>/<class>/<image>``.

The classes are the folder names under ``train/``, sorted (torchvision's ``ImageFolder``
order, which Ultralytics uses); ``val/`` is required, ``test/`` optional, and neither may
hold a class ``train/`` lacks. As for detection (:mod:`training.dataset`), training never
writes into the user's folders: :func:`stage` builds a scratch tree of links.

Whatever is wrong with the folders (a missing split, no class folders, an unknown class, a
split without images, an image that does not decode) raises
:class:`~pitchside.errors.DatasetError` naming the folder or file and the fault.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pitchside.errors import DatasetError
from training.dataset import IMAGE_SUFFIXES

SPLITS = ("train", "val", "test")

#: One image and its class index.
Sample = tuple[Path, int]


@dataclass(frozen=True, slots=True)
class ImageFolders:
    """A parsed folder tree: class names and the samples of each split present."""

    root: Path
    names: dict[int, str]
    splits: dict[str, list[Sample]]  # split -> (image, class index), sorted by class, name

    def samples(self, split: str) -> list[Sample]:
        """The samples of ``split``, of which there is at least one.

        Raises:
            DatasetError: there is no such split.
        """
        if split not in self.splits:
            present = ", ".join(self.splits)
            raise DatasetError(f"{self.root} has no {split!r} split (it has {present})")
        return self.splits[split]


def is_image_folders(path: Path) -> bool:
    """Whether ``path`` looks like a classification data set: a folder with ``train/``."""
    return path.is_dir() and (path / "train").is_dir()


def load(root: Path) -> ImageFolders:
    """Read ``root``, a classification data set in ImageNet-style folders.

    Raises:
        DatasetError: ``root`` is not a folder, has no ``train/`` or ``val/``, ``train/`` has
            no class folders, a split holds a class ``train/`` lacks, or has no images.
    """
    root = root.resolve()
    if root.is_file():
        raise DatasetError(
            f"{root} is a file; a classification data set is a folder holding train/<class>/ "
            "and val/<class>/ image folders"
        )
    if not root.is_dir():
        raise DatasetError(f"no data set folder at {root}")
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise DatasetError(
                f"{root} has no {split}/ folder; a classification data set holds "
                "train/<class>/ and val/<class>/ image folders (test/ is optional)"
            )
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    if not classes:
        raise DatasetError(f"{root / 'train'} holds no class folders (train/<class>/<image>)")
    index = {name: i for i, name in enumerate(classes)}
    splits: dict[str, list[Sample]] = {}
    for split in SPLITS:
        folder = root / split
        if not folder.is_dir():
            continue
        unknown = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name not in index)
        if unknown:
            raise DatasetError(
                f"{folder} has classes that train/ lacks: {', '.join(unknown)}; every class "
                "needs training images"
            )
        samples = [
            (image, index[image.parent.name])
            for name in classes
            if (folder / name).is_dir()
            for image in sorted((folder / name).iterdir())
            if image.suffix.lower() in IMAGE_SUFFIXES
        ]
        if not samples:
            raise DatasetError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        splits[split] = samples
    return ImageFolders(root=root, names=dict(enumerate(classes)), splits=splits)


def fingerprint(folders: ImageFolders, splits: tuple[str, ...] = SPLITS) -> str:
    """SHA-256 over the class names and every image (split, class, name, content)."""
    digest = hashlib.sha256()
    digest.update(repr(sorted(folders.names.items())).encode())
    for split in splits:
        for image, cls in folders.splits.get(split, []):
            digest.update(f"{split}/{folders.names[cls]}/{image.name}\0".encode())
            digest.update(image.read_bytes())
    return digest.hexdigest()


def limited(samples: list[Sample], per_class: int | None) -> list[Sample]:
    """The first ``per_class`` samples of each class (all of them for None)."""
    if per_class is None:
        return samples
    kept: dict[int, int] = {}
    out = []
    for image, cls in samples:
        if kept.get(cls, 0) < per_class:
            kept[cls] = kept.get(cls, 0) + 1
            out.append((image, cls))
    return out


def stage(folders: ImageFolders, scratch: Path, per_class: int | None = None) -> Path:
    """Build a linked copy of ``folders`` under ``scratch``; return its root.

    Args:
        per_class: keep only the first ``per_class`` images of each class in each split
            (quick runs and tests).
    """
    for split, samples in folders.splits.items():
        for name in folders.names.values():  # every class folder, even one left empty
            (scratch / split / name).mkdir(parents=True, exist_ok=True)
        for image, cls in limited(samples, per_class):
            link = scratch / split / folders.names[cls] / image.name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(image.resolve())
    return scratch.resolve()


def read_image(path: Path) -> np.ndarray:
    """``(H, W, 3)`` uint8 BGR.

    Raises:
        DatasetError: the file cannot be read or decoded.
    """
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"{path} cannot be decoded as an image")
    return image
