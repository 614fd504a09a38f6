"""The frame stamp of section (f): a frame's number written into its pixels, read back."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from bench.publisher import STAMP_BITS, draw_stamp, read_stamp


def _jpeg(bgr: np.ndarray, quality: int = 80) -> bytes:
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return data.tobytes()


@pytest.mark.parametrize("number", [0, 1, 2, 1234, 2**STAMP_BITS - 1])
def test_a_stamped_number_reads_back_through_jpeg_on_a_busy_picture(number: int) -> None:
    # given a noisy 848x478 picture (grass and players are no flat background)
    rng = np.random.default_rng(number)
    bgr = rng.integers(0, 256, (478, 848, 3), dtype=np.uint8)
    # when the number is stamped and the frame goes through a JPEG of the gateway's quality
    draw_stamp(bgr, number)
    # then it reads back
    assert read_stamp(_jpeg(bgr)) == number


def test_an_unstamped_frame_reads_as_none() -> None:
    assert read_stamp(_jpeg(np.full((478, 848, 3), 90, np.uint8))) is None
    assert read_stamp(_jpeg(np.zeros((20, 40, 3), np.uint8))) is None  # too small to hold one
    assert read_stamp(b"not a jpeg") is None
