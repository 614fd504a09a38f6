"""JPEG-encode a decoded frame once, with an optional downscale, using OpenCV.

Runs on the decode thread (OpenCV releases the GIL while it resizes and encodes), never on
the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True, slots=True)
class EncodedImage:
    """One JPEG and the size of the image it holds."""

    jpeg: bytes
    width: int
    height: int


def target_size(width: int, height: int, max_width: int | None) -> tuple[int, int]:
    """The size a ``width`` x ``height`` frame is published at.

    Frames wider than ``max_width`` shrink to it, keeping the aspect ratio (height rounded,
    at least 1); narrower frames and ``max_width=None`` keep their size. Never upscales.
    """
    if max_width is None or width <= max_width:
        return width, height
    return max_width, max(1, round(height * max_width / width))


class JpegEncoder:
    """Encodes BGR frames as JPEG at a fixed quality, downscaling wide ones first."""

    def __init__(self, quality: int = 80, max_width: int | None = None) -> None:
        """Create an encoder.

        Args:
            quality: libjpeg quality, 1-100.
            max_width: frames wider than this are downscaled (INTER_AREA) to it; None keeps
                every frame's size.

        Raises:
            ValueError: ``quality`` or ``max_width`` is out of range.
        """
        if not 1 <= quality <= 100:
            raise ValueError(f"JPEG quality must be between 1 and 100, got {quality}")
        if max_width is not None and max_width < 1:
            raise ValueError(f"max_width must be a positive number of pixels, got {max_width}")
        self._params = [cv2.IMWRITE_JPEG_QUALITY, quality]
        self._max_width = max_width

    def encode(self, bgr: np.ndarray) -> EncodedImage:
        """JPEG-encode one frame.

        Args:
            bgr: ``(H, W, 3)`` uint8 image in BGR order.

        Returns:
            The JPEG bytes and the published size (after any downscale).

        Raises:
            ValueError: ``bgr`` is not an ``(H, W, 3)`` uint8 array, or OpenCV cannot encode it.
        """
        if bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3:
            raise ValueError(
                f"expected an (H, W, 3) uint8 BGR image, got shape {bgr.shape} dtype {bgr.dtype}"
            )
        height, width = bgr.shape[:2]
        out_w, out_h = target_size(width, height, self._max_width)
        if (out_w, out_h) != (width, height):
            bgr = cv2.resize(bgr, (out_w, out_h), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", bgr, self._params)
        if not ok:
            raise ValueError(f"OpenCV could not JPEG-encode a {width}x{height} frame")
        return EncodedImage(jpeg=buf.tobytes(), width=out_w, height=out_h)
