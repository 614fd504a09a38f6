"""YOLO-format data sets: read ``data.yaml``, fingerprint it, stage a writable copy.

Ultralytics writes ``labels.cache`` next to a data set's ``labels/`` folders. Training never
writes into the user's data set: :func:`stage` builds a scratch tree of symbolic links (one per
file, so the cache lands in the scratch tree) and a ``data.yaml`` with absolute paths.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml

from pitchside.errors import InvalidRequestError

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


@dataclass(frozen=True, slots=True)
class DataSet:
    """A parsed data.yaml: class names and the image folder of each split present."""

    yaml_path: Path
    names: dict[int, str]
    splits: dict[str, Path]  # split -> images folder

    def images(self, split: str) -> list[Path]:
        if split not in self.splits:
            raise InvalidRequestError(f"data set {self.yaml_path} has no {split!r} split")
        return sorted(
            p for p in self.splits[split].rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
        )

    @staticmethod
    def label_for(image: Path) -> Path:
        """``.../images/x.jpg`` -> ``.../labels/x.txt`` (the YOLO convention)."""
        parts = list(image.parts)
        idx = len(parts) - 1 - parts[::-1].index("images")
        parts[idx] = "labels"
        return Path(*parts).with_suffix(".txt")


def load(data_yaml: Path) -> DataSet:
    """Parse ``data_yaml``; raise InvalidRequestError with the reason when it is unusable."""
    data_yaml = data_yaml.resolve()
    if not data_yaml.is_file():
        raise InvalidRequestError(f"no data set file at {data_yaml}")
    try:
        doc = yaml.safe_load(data_yaml.read_text())
    except yaml.YAMLError as exc:
        raise InvalidRequestError(f"{data_yaml} is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or "names" not in doc:
        raise InvalidRequestError(f"{data_yaml} must be a mapping with 'names' and split paths")
    raw_names = doc["names"]
    names = dict(enumerate(raw_names)) if isinstance(raw_names, list) else dict(raw_names)
    root = Path(doc.get("path") or ".")
    if not root.is_absolute():  # relative to the file, as Ultralytics reads it
        root = data_yaml.parent / root
    splits = {}
    for split in SPLITS:
        if doc.get(split):
            folder = (root / doc[split]).resolve()
            if not folder.is_dir():
                raise InvalidRequestError(f"{data_yaml}: {split} folder {folder} does not exist")
            splits[split] = folder
    if "train" not in splits or "val" not in splits:
        raise InvalidRequestError(f"{data_yaml} needs at least 'train' and 'val' splits")
    return DataSet(
        yaml_path=data_yaml.resolve(),
        names={int(k): str(v) for k, v in names.items()},
        splits=splits,
    )


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
