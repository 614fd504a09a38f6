"""JPEG encoding of decoded frames: size, downscale, quality, input checks."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import cv2
import numpy as np
import pytest

from ingest.encode import JpegEncoder, target_size


def _frame(width: int, height: int) -> np.ndarray:
    """A BGR test pattern with gradients and edges, so JPEG quality matters."""
    ys, xs = np.mgrid[0:height, 0:width]
    bgr = np.stack(
        [xs * 255 // max(width - 1, 1), ys * 255 // max(height - 1, 1), (xs ^ ys) & 255], -1
    )
    return bgr.astype(np.uint8)


def _decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a decodable JPEG"
    return image


@pytest.mark.parametrize(
    ("size", "max_width", "expected"),
    [
        ((848, 478), None, (848, 478)),
        ((848, 478), 848, (848, 478)),
        ((848, 478), 1920, (848, 478)),  # never upscales
        ((848, 478), 424, (424, 239)),
        ((1920, 1080), 640, (640, 360)),
        ((1001, 333), 500, (500, 166)),  # odd sizes are fine
        ((4000, 1), 100, (100, 1)),  # at least one row
    ],
)
def test_target_size_keeps_aspect_and_never_upscales(
    size: tuple[int, int], max_width: int | None, expected: tuple[int, int]
) -> None:
    assert target_size(*size, max_width) == expected


def test_encoder_returns_decodable_jpeg_of_frame_size_when_no_max_width() -> None:
    # given a 848x478 frame
    frame = _frame(848, 478)
    # when encoded at quality 90
    image = JpegEncoder(quality=90).encode(frame)
    # then the JPEG decodes to the same size and close to the same pixels
    decoded = _decode(image.jpeg)
    assert (image.width, image.height) == (848, 478)
    assert decoded.shape == (478, 848, 3)
    assert image.jpeg[:2] == b"\xff\xd8", "JPEG must start with SOI"
    err = np.abs(decoded.astype(int) - frame.astype(int)).mean()
    assert err < 8, f"mean abs error {err:.1f} too high for quality 90"


def test_encoder_downscales_with_aspect_when_frame_is_wider_than_max_width() -> None:
    image = JpegEncoder(quality=80, max_width=424).encode(_frame(848, 478))
    assert (image.width, image.height) == (424, 239)
    assert _decode(image.jpeg).shape == (239, 424, 3)


def test_encoder_makes_smaller_files_when_quality_is_lower() -> None:
    frame = _frame(640, 360)
    low = JpegEncoder(quality=20).encode(frame)
    high = JpegEncoder(quality=95).encode(frame)
    assert len(low.jpeg) < len(high.jpeg), "quality must reach the JPEG encoder"


@pytest.mark.parametrize(
    ("array", "expectation"),
    [
        (np.zeros((10, 10, 3), np.uint8), nullcontext()),
        (np.zeros((10, 10), np.uint8), pytest.raises(ValueError, match="BGR")),
        (np.zeros((10, 10, 4), np.uint8), pytest.raises(ValueError, match="BGR")),
        (np.zeros((10, 10, 3), np.float32), pytest.raises(ValueError, match="uint8")),
    ],
)
def test_encoder_checks_input_shape_and_dtype(
    array: np.ndarray, expectation: AbstractContextManager[object]
) -> None:
    with expectation:
        JpegEncoder().encode(array)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"quality": 0}, "quality"), ({"quality": 101}, "quality"), ({"max_width": 0}, "max_width")],
)
def test_encoder_refuses_out_of_range_settings(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        JpegEncoder(**kwargs)
