"""Letterbox pre-processing against Ultralytics' own LetterBox, on the real match frames."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import CLIP, IMAGES_DIR, require_asset
from workers.postprocess import scale_boxes
from workers.preprocess import fill_batch, input_hw_for, letterbox, letterbox_params

os.environ.setdefault("YOLO_OFFLINE", "1")
from ultralytics.data.augment import LetterBox  # noqa: E402
from ultralytics.utils import ops  # noqa: E402


def _images() -> list[Path]:
    paths = sorted(require_asset(IMAGES_DIR).glob("*.jpg"))
    assert len(paths) == 4, f"expected the four real frames in {IMAGES_DIR}, found {len(paths)}"
    return paths


def _clip_frame() -> np.ndarray:
    """A real 848x478 frame of the test clip: odd sizes exercise the rounding."""
    capture = cv2.VideoCapture(str(require_asset(CLIP)))
    try:
        ok, frame = capture.read()
    finally:
        capture.release()
    assert ok, f"cannot read a frame of {CLIP}"
    return frame


def _ultralytics(image: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Ultralytics' predictor input: LetterBox, BGR->RGB, HWC->CHW, /255 in float32."""
    padded = LetterBox(new_shape=out_hw, auto=False, center=True)(image=image)
    return padded[..., ::-1].transpose(2, 0, 1).astype(np.float32) / np.float32(255)


@pytest.mark.parametrize("out_hw", [(640, 640), (384, 640), (320, 320), (1280, 1280)])
@pytest.mark.parametrize("index", range(4))
def test_letterbox_is_pixel_identical_to_ultralytics_on_real_frames(
    index: int, out_hw: tuple[int, int]
) -> None:
    # given a real 1920x1080 match frame
    image = cv2.imread(str(_images()[index]))
    # when both letterbox it
    ours, lb = letterbox(image, out_hw)
    theirs = _ultralytics(image, out_hw)
    # then every value is the same
    assert ours.shape == (3, *out_hw) and ours.dtype == np.float32
    assert np.array_equal(ours, theirs), f"max diff {np.abs(ours - theirs).max()}"
    params = LetterBox(new_shape=out_hw, auto=False).get_params({"img": image})
    assert (lb.pad_x, lb.pad_y) == (params["left"], params["top"])
    assert lb.new_hw[::-1] == params["new_unpad"]


@pytest.mark.parametrize("out_hw", [(640, 640), (384, 640), (480, 480), (224, 416)])
def test_letterbox_rounds_like_ultralytics_when_sizes_are_odd(out_hw: tuple[int, int]) -> None:
    # given an 848x478 clip frame (scaled sizes and padding are not whole numbers)
    image = _clip_frame()
    # when both letterbox it
    ours, _ = letterbox(image, out_hw)
    # then the results are identical
    assert np.array_equal(ours, _ultralytics(image, out_hw))


def test_fill_batch_letterboxes_each_image_into_its_slot_when_sizes_differ() -> None:
    # given a 1080p frame and an 848x478 clip frame
    images = [cv2.imread(str(_images()[0])), _clip_frame()]
    batch = np.zeros((3, 3, 640, 640), dtype=np.float32)
    # when they fill the first two slots of a batch of three
    placements = fill_batch(images, batch)
    # then each slot equals the single-image letterbox, and the spare slot is untouched
    for slot, image, lb in zip(batch, images, placements, strict=False):
        single, single_lb = letterbox(image, (640, 640))
        assert np.array_equal(slot, single)
        assert lb == single_lb
    assert not batch[2].any(), "the spare slot must be left as it was"


@pytest.mark.parametrize(
    ("src_hw", "imgsz"),
    [((1080, 1920), 640), ((478, 848), 640), ((1920, 1080), 640), ((720, 1280), 320),
     ((1000, 1000), 640), ((480, 640), 1280), ((1, 3000), 640)],
)  # fmt: skip
def test_input_hw_for_matches_ultralytics_rect_letterbox(
    src_hw: tuple[int, int], imgsz: int
) -> None:
    # given a source size and Ultralytics' minimum-rectangle letterbox (auto=True, stride 32)
    image = np.zeros((*src_hw, 3), dtype=np.uint8)
    expected = LetterBox(new_shape=imgsz, auto=True, stride=32)(image=image).shape[:2]
    # when the dynamic input size is computed
    hw = input_hw_for(src_hw, imgsz)
    # then it is the same, a multiple of the stride, and the long side is imgsz
    assert hw == expected
    assert hw[0] % 32 == 0 and hw[1] % 32 == 0 and max(hw) == imgsz


def test_input_hw_for_gives_640x384_for_16_9_video() -> None:
    assert input_hw_for((1080, 1920), 640) == (384, 640), "16:9 must infer at H=384, W=640"


@pytest.mark.parametrize("bad", [((0, 10), 640), ((10, 10), 100), ((10, 10), 0)])
def test_input_hw_for_raises_when_sizes_are_invalid(bad: tuple[tuple[int, int], int]) -> None:
    with pytest.raises(ValueError, match="positive"):
        input_hw_for(*bad)


def test_scale_boxes_maps_back_like_ultralytics_when_frame_is_odd_sized() -> None:
    # given boxes in a 640x640 input holding an 848x478 frame, some reaching into the padding
    lb = letterbox_params((478, 848), (640, 640))
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 640, size=(50, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 200, size=(50, 2))], axis=1).astype(np.float32)
    # when both map them to source pixels
    ours = scale_boxes(boxes, lb)
    theirs = ops.scale_boxes((640, 640), boxes.copy(), (478, 848))
    # then they agree (float32 rounding only) and stay inside the image
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-3)
    assert ours[:, [0, 2]].max() <= 848 and ours[:, [1, 3]].max() <= 478 and ours.min() >= 0


def test_letterbox_raises_when_image_is_not_bgr_uint8() -> None:
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        letterbox(np.zeros((10, 10), dtype=np.uint8), (64, 64))
