"""Classification's pure parts: the serving crop against PIL's (what Ultralytics resizes with),
the image folders' checks, the training augmentations' shapes and the promotion rule."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from pitchside.errors import DatasetError, EvaluationError
from training import classify_data
from training.classify_eval import ClassifyResult, ClassRecall
from training.classify_train import hsv_jitter, random_erase, random_resized_crop
from training.promote import decide_classifier
from workers.engines import center_crop
from workers.engines.classifier import to_batch


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth image with detail at several scales, like a photo (noise would alias)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, h // 16), max(2, w // 16), 3), dtype=np.uint8)
    image = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    cv2.circle(image, (w // 2, h // 2), min(h, w) // 3, (250, 250, 250), thickness=-1)
    return image


def _torchvision_crop(image: np.ndarray, size: int) -> np.ndarray:
    """What Ultralytics' classify_transforms does before ToTensor: PIL bilinear resize of the
    shortest side (torchvision's Resize(size)), then CenterCrop(size)."""
    h, w = image.shape[:2]
    new_h, new_w = (size, int(size * w / h)) if h <= w else (int(size * h / w), size)
    pil = Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BILINEAR)
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    return np.asarray(pil)[top : top + size, left : left + size]


@pytest.mark.parametrize("shape", [(1080, 1920), (800, 600), (225, 225), (120, 160), (183, 275)])
def test_center_crop_is_ultralytics_preprocessing_within_a_few_levels(shape):
    image = _photo(*shape)
    ours = center_crop(image, 224).astype(np.int16)
    theirs = _torchvision_crop(image, 224).astype(np.int16)
    assert ours.shape == theirs.shape == (224, 224, 3)
    diff = np.abs(ours - theirs)
    assert diff.mean() < 1.5, diff.mean()
    assert np.percentile(diff, 99) <= 12


def test_to_batch_is_rgb_chw_in_unit_range():
    crop = np.zeros((4, 4, 3), np.uint8)
    crop[..., 0] = 255  # blue in BGR
    batch = to_batch([crop, crop])
    assert batch.shape == (2, 3, 4, 4) and batch.dtype == np.float32
    assert batch[0, 2].max() == 1.0 and batch[0, 0].max() == 0.0  # blue is the last channel


def test_augmentations_keep_the_input_shape_and_vary():
    rng = np.random.default_rng(0)
    image = _photo(300, 500)
    crops = [random_resized_crop(image, 64, (0.5, 1.0), rng) for _ in range(5)]
    assert all(c.shape == (64, 64, 3) for c in crops)
    assert len({c.tobytes() for c in crops}) == 5
    jittered = hsv_jitter(crops[0], (0.015, 0.7, 0.4), rng)
    assert jittered.shape == crops[0].shape and not np.array_equal(jittered, crops[0])
    erased = random_erase(crops[0], rng)
    assert erased.shape == crops[0].shape and not np.array_equal(erased, crops[0])


def _folders(root: Path, layout: dict[str, dict[str, int]]) -> Path:
    image = _photo(32, 32)
    for split, classes in layout.items():
        (root / split).mkdir(parents=True)
        for name, count in classes.items():
            folder = root / split / name
            folder.mkdir()
            for i in range(count):
                cv2.imwrite(str(folder / f"{name}_{i}.jpg"), image)
    return root


def test_folders_load_classes_in_sorted_order_and_stage_per_class(tmp_path: Path):
    root = _folders(tmp_path / "ds", {"train": {"tennis": 3, "golf": 2}, "val": {"golf": 1}})
    folders = classify_data.load(root)
    assert folders.names == {0: "golf", 1: "tennis"}
    assert [cls for _, cls in folders.samples("train")] == [0, 0, 1, 1, 1]
    assert "test" not in folders.splits
    staged = classify_data.load(classify_data.stage(folders, tmp_path / "staged", per_class=1))
    assert [cls for _, cls in staged.samples("train")] == [0, 1]
    assert staged.names == folders.names  # an empty class folder keeps its index
    assert classify_data.fingerprint(staged) != classify_data.fingerprint(folders)
    with pytest.raises(DatasetError, match="no 'test' split"):
        folders.samples("test")


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({"train": {"golf": 1}}, "no val/ folder"),
        ({"val": {"golf": 1}}, "no train/ folder"),
        ({"train": {}, "val": {"golf": 1}}, "no class folders"),
        ({"train": {"golf": 1}, "val": {"curling": 1}}, "classes that train/ lacks: curling"),
        ({"train": {"golf": 1}, "val": {"golf": 0}}, "holds no images"),
    ],
)
def test_bad_folders_are_refused_with_the_reason(tmp_path: Path, layout, message):
    with pytest.raises(DatasetError, match=message):
        classify_data.load(_folders(tmp_path / "ds", layout))


def test_a_file_or_a_missing_folder_is_refused(tmp_path: Path):
    (tmp_path / "data.yaml").write_text("names: [a]\n")
    with pytest.raises(DatasetError, match="is a file"):
        classify_data.load(tmp_path / "data.yaml")
    with pytest.raises(DatasetError, match="no data set folder"):
        classify_data.load(tmp_path / "absent")


def test_an_undecodable_image_names_the_file(tmp_path: Path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8not a jpeg")
    with pytest.raises(DatasetError, match="broken.jpg"):
        classify_data.read_image(bad)


def _result(top1: float, recalls: dict[str, float], sha: str = "s") -> ClassifyResult:
    per_class = {k: ClassRecall(recall=v, images=10) for k, v in recalls.items()}
    return ClassifyResult(
        model_uri="m.onnx", split="val", split_sha256=sha, images=10 * len(recalls), top1=top1,
        top5=1.0, per_class=per_class, confusion=[], ms_per_image=1.0,
    )  # fmt: skip


def test_promotion_needs_a_higher_top1_and_no_class_falling_beyond_the_margin():
    champion = _result(0.80, {"football": 0.9, "golf_ball": 0.7})
    assert decide_classifier(_result(0.5, {"football": 0.5}), None).promote
    better = decide_classifier(_result(0.85, {"football": 0.8, "golf_ball": 0.9}), champion)
    assert better.promote  # football fell by one image in ten: within the margin
    worse_class = decide_classifier(_result(0.85, {"football": 0.7, "golf_ball": 1.0}), champion)
    assert not worse_class.promote
    assert any("football recall fell 0.2000" in r for r in worse_class.reasons)
    same = decide_classifier(_result(0.80, {"football": 0.9, "golf_ball": 0.7}), champion)
    assert not same.promote and any("top-1 is not higher" in r for r in same.reasons)
    with pytest.raises(EvaluationError, match="different held-out splits"):
        decide_classifier(_result(0.9, {"football": 1.0}, sha="other"), champion)
