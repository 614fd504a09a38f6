"""YOLO-format data sets: read ``data.yaml``, fingerprint it, stage a writable copy.

Ultralytics writes ``labels.cache`` next to a data set's ``labels/`` folders. Training never
writes into the user's data set: :func:`stage` builds a scratch tree of symbolic links (one per
file, so the cache lands in the scratch tree) and a ``data.yaml`` with absolute paths.

Whatever is wrong with a data set itself (a missing file or folder, bad YAML, a split that is
absent or empty) raises :class:`~pitchside.errors.DatasetError` naming the file and the fault.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml

from pitchside.errors import DatasetError

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


@dataclass(frozen=True, slots=True)
class DataSet:
    """A parsed data.yaml: class names and the image folder of each split present."""

    yaml_path: Path
    names: dict[int, str]
    splits: dict[str, Path]  # split -> images folder

    def images(self, split: str) -> list[Path]:
        """The image files of ``split``, sorted (possibly none).

        Raises:
            DatasetError: the data set has no such split.
        """
        if split not in self.splits:
            raise DatasetError(f"data set {self.yaml_path} has no {split!r} split")
        return sorted(
            p for p in self.splits[split].rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
        )

    def require_images(self, split: str) -> list[Path]:
        """The image files of ``split``, of which there must be at least one.

        Raises:
            DatasetError: the data set has no such split, or no images in it.
        """
        images = self.images(split)
        if not images:
            raise DatasetError(
                f"data set {self.yaml_path} has no images in its {split!r} split "
                f"({self.splits[split]})"
            )
        return images

    @staticmethod
    def label_for(image: Path) -> Path:
        """``.../images/x.jpg`` -> ``.../labels/x.txt`` (the YOLO convention)."""
        parts = list(image.parts)
        idx = len(parts) - 1 - parts[::-1].index("images")
        parts[idx] = "labels"
        return Path(*parts).with_suffix(".txt")


def load(data_yaml: Path) -> DataSet:
    """Parse ``data_yaml``, a YOLO-format data set description.

    Raises:
        DatasetError: the file is missing or unreadable, not YAML, its ``names`` are not a
            list or an index-to-name mapping, or a split folder it names does not exist;
            ``train`` and ``val`` are required.
    """
    data_yaml = data_yaml.resolve()
    if data_yaml.is_dir():
        raise DatasetError(f"{data_yaml} is a folder; give the data set's data.yaml file")
    if not data_yaml.is_file():
        raise DatasetError(f"no data set file at {data_yaml}")
    try:
        doc = yaml.safe_load(data_yaml.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read the data set file {data_yaml}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise DatasetError(f"{data_yaml} is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or "names" not in doc:
        raise DatasetError(f"{data_yaml} must be a mapping with 'names' and split paths")
    names = _class_names(data_yaml, doc["names"])
    raw_root = doc.get("path") or "."
    if not isinstance(raw_root, str):
        raise DatasetError(f"{data_yaml}: 'path' must be a folder, got {raw_root!r}")
    root = Path(raw_root)
    if not root.is_absolute():  # relative to the file, as Ultralytics reads it
        root = data_yaml.parent / root
    splits = {}
    for split in SPLITS:
        entry = doc.get(split)
        if not entry:
            continue
        if not isinstance(entry, str):  # Ultralytics also takes lists and .txt files; not here
            raise DatasetError(f"{data_yaml}: {split!r} must name one image folder, got {entry!r}")
        folder = (root / entry).resolve()
        if not folder.is_dir():
            raise DatasetError(f"{data_yaml}: {split} folder {folder} does not exist")
        splits[split] = folder
    if "train" not in splits or "val" not in splits:
        raise DatasetError(f"{data_yaml} needs at least 'train' and 'val' splits")
    return DataSet(yaml_path=data_yaml, names=names, splits=splits)


def _class_names(data_yaml: Path, raw: object) -> dict[int, str]:
    """``names`` of a data.yaml (a list, or a mapping of class index to name) as a dict."""
    items: list[tuple[object, object]]
    if isinstance(raw, list):
        items = list(enumerate(raw))
    elif isinstance(raw, dict):
        items = list(raw.items())
    else:
        items = []
    try:
        names = {int(str(k)): str(v) for k, v in items}
    except ValueError:
        names = {}
    if not names:
        raise DatasetError(
            f"{data_yaml}: 'names' must be a non-empty list of class names or a mapping of "
            f"class index to name, got {raw!r}"
        )
    return names


def fingerprint(ds: DataSet, splits: tuple[str, ...] = SPLITS) -> str:
    """SHA-256 over every image and label file (relative name and content) of ``splits``."""
    digest = hashlib.sha256()
    digest.update(repr(sorted(ds.names.items())).encode())
    for split in splits:
        if split not in ds.splits:
            continue
        for image in ds.images(split):
            for path in (image, ds.label_for(image)):
                digest.update(f"{split}/{path.name}\0".encode())
                digest.update(path.read_bytes() if path.exists() else b"<missing>")
    return digest.hexdigest()


def stage(ds: DataSet, scratch: Path, limit: int | None = None) -> Path:
    """Build a linked copy of ``ds`` under ``scratch``; return its data.yaml.

    Args:
        limit: keep only the first ``limit`` images of each split (for quick runs and tests).
    """
    doc: dict[str, object] = {"path": str(scratch.resolve()), "names": ds.names}
    for split in ds.splits:
        out_images = scratch / split / "images"
        out_labels = scratch / split / "labels"
        out_images.mkdir(parents=True, exist_ok=True)
        out_labels.mkdir(parents=True, exist_ok=True)
        for image in ds.images(split)[:limit]:
            _link(image, out_images / image.name)
            label = ds.label_for(image)
            if label.exists():
                _link(label, out_labels / label.name)
        doc[split] = f"{split}/images"
    out = scratch / "data.yaml"
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def _link(src: Path, dst: Path) -> None:
    if dst.is_symlink() or dst.exists():
        dst.unlink()
    dst.symlink_to(src.resolve())
