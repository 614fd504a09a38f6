"""What an uploaded image is and how large, read from its first bytes, before decoding it.

Decoding allocates ``width x height x 3`` bytes whatever the file's size (a 50 KB PNG can
claim 60,000 x 60,000 pixels), so ``POST /api/predict`` checks the pixel count from the
header first. Only the three formats the endpoint takes are recognised: JPEG (its SOF
segment), PNG (IHDR) and WebP (the VP8, VP8L or VP8X chunk).
"""

from __future__ import annotations

from dataclasses import dataclass

from pitchside.errors import BadImageError, UnsupportedMediaError

ACCEPTED = "JPEG, PNG or WebP"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic...): they hold
#: the size. C4 (DHT), C8 (JPG) and CC (DAC) are not frames.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_STANDALONE = {0x01, *range(0xD0, 0xD9)}  # TEM, RSTn, SOI: no length field
_SOS = 0xDA


@dataclass(frozen=True, slots=True)
class ImageInfo:
    format: str  # "jpeg", "png" or "webp"
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def probe(data: bytes) -> ImageInfo:
    """The format and size of an image from its header.

    Raises:
        UnsupportedMediaError: ``data`` is not a JPEG, PNG or WebP file (415).
        BadImageError: it starts like one but its header is cut short or broken (422).
    """
    if data.startswith(b"\xff\xd8\xff"):
        return _jpeg(data)
    if data.startswith(PNG_SIGNATURE):
        return _png(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data)
    raise UnsupportedMediaError(f"the file is not a {ACCEPTED} image")


def _checked(fmt: str, width: int, height: int) -> ImageInfo:
    if width < 1 or height < 1:
        raise BadImageError(f"the {fmt.upper()} header gives a size of {width}x{height}")
    return ImageInfo(fmt, width, height)


def _jpeg(data: bytes) -> ImageInfo:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise BadImageError(f"the JPEG is broken: no segment marker at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _STANDALONE:
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in _SOF:
            if i + 9 > len(data):
                break
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            return _checked("jpeg", width, height)
        if marker == _SOS or length < 2:
            raise BadImageError("the JPEG has no frame header before its image data")
        i += 2 + length
    raise BadImageError("the JPEG is cut short before its frame header")


def _png(data: bytes) -> ImageInfo:
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise BadImageError("the PNG is cut short or lacks its IHDR header")
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    return _checked("png", width, height)


def _webp(data: bytes) -> ImageInfo:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:  # extended: 24-bit canvas size minus one
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return _checked("webp", width, height)
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:  # lossless
        bits = int.from_bytes(data[21:25], "little")
        return _checked("webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":  # lossy
        width = int.from_bytes(data[26:28], "little") & 0x3FFF
        height = int.from_bytes(data[28:30], "little") & 0x3FFF
        return _checked("webp", width, height)
    raise BadImageError("the WebP is cut short or its image chunk is not VP8, VP8L or VP8X")
