"""image_probe.probe: format and size from the first bytes, before any decoding."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gateway.image_probe import ImageInfo, probe
from pitchside.errors import BadImageError, UnsupportedMediaError


def _encoded(ext: str, width: int, height: int, *params: int) -> bytes:
    image = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(ext, image, list(params))
    assert ok
    return bytes(buf.tobytes())


@pytest.mark.parametrize(
    ("ext", "params", "fmt"),
    [(".jpg", (), "jpeg"), (".jpg", (cv2.IMWRITE_JPEG_PROGRESSIVE, 1), "jpeg"),
     (".png", (), "png"), (".webp", (cv2.IMWRITE_WEBP_QUALITY, 80), "webp"),
     (".webp", (cv2.IMWRITE_WEBP_QUALITY, 101), "webp")],
    ids=["jpeg", "jpeg-progressive", "png", "webp-lossy", "webp-lossless"],
)  # fmt: skip
def test_probe_reads_the_size_of_each_format_opencv_writes(
    ext: str, params: tuple[int, ...], fmt: str
) -> None:
    # given an odd-sized image encoded by OpenCV
    data = _encoded(ext, 517, 301, *params)
    # then the header says its format and size
    assert probe(data) == ImageInfo(fmt, 517, 301)


def test_probe_reads_an_extended_webp_canvas() -> None:
    # given a VP8X (extended) WebP header: 24-bit canvas width and height, minus one
    header = b"RIFF\0\0\0\0WEBPVP8X" + bytes(4) + bytes(4)
    data = header + (4000 - 1).to_bytes(3, "little") + (3000 - 1).to_bytes(3, "little")
    assert probe(data) == ImageInfo("webp", 4000, 3000)


def test_probe_skips_jpeg_segments_before_the_frame_header() -> None:
    # given a JPEG whose EXIF and comment segments come before its SOF
    data = _encoded(".jpg", 64, 48)
    app1 = b"\xff\xe1" + (2 + 100).to_bytes(2, "big") + bytes(100)
    comment = b"\xff\xfe" + (2 + 5).to_bytes(2, "big") + b"hello"
    assert probe(data[:2] + app1 + comment + data[2:]) == ImageInfo("jpeg", 64, 48)


@pytest.mark.parametrize(
    "data",
    [b"", b"hello", b"GIF89a\x01\x00\x01\x00", b"BM" + bytes(60), b"II*\x00" + bytes(8),
     b"RIFF\0\0\0\0AVI LIST", b"%PDF-1.7"],
    ids=["empty", "text", "gif", "bmp", "tiff", "avi", "pdf"],
)  # fmt: skip
def test_probe_refuses_what_is_no_jpeg_png_or_webp_as_unsupported(data: bytes) -> None:
    with pytest.raises(UnsupportedMediaError, match="JPEG, PNG or WebP"):
        probe(data)


@pytest.mark.parametrize(
    "data",
    [b"\xff\xd8\xff\xe0\x00\x10JFIF", b"\xff\xd8\xff\xda\x00\x08" + bytes(20),
     b"\x89PNG\r\n\x1a\n\x00\x00", b"\x89PNG\r\n\x1a\n" + bytes(4) + b"IHDR" + bytes(8),
     b"RIFF\0\0\0\0WEBPVP8 ", b"RIFF\0\0\0\0WEBPALPH" + bytes(20)],
    ids=["jpeg-cut", "jpeg-no-frame", "png-cut", "png-zero-size", "webp-cut", "webp-no-image"],
)  # fmt: skip
def test_probe_refuses_a_broken_header_as_a_bad_image(data: bytes) -> None:
    with pytest.raises(BadImageError):
        probe(data)


def test_probe_reads_a_bomb_size_without_the_pixels() -> None:
    # a 33-byte PNG claiming 60,000 x 60,000: the size is known before anything is decoded
    ihdr = (60000).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    data = b"\x89PNG\r\n\x1a\n" + (13).to_bytes(4, "big") + b"IHDR" + ihdr
    assert probe(data).pixels == 3_600_000_000
