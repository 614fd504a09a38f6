"""An analysed upload with its detections drawn on: H.264 in a faststart MP4, for download.

Frame ``n`` of the source as PyAV decodes it (0-based) is the frame of record ``seq == n``;
a frame without a record is written as it is. The output keeps the source's size (an odd side
one pixel less, as yuv420p needs even ones) and its average frame rate: frames are retimed to a
constant rate, one per decoded frame. It is written to a temporary file beside ``out`` and
renamed onto ``out`` once complete, so ``out`` is never partial (a killed process may leave
the temporary ``.*.part.mp4`` behind, never a broken ``out``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import av
import cv2
import numpy as np
import numpy.typing as npt

from pitchside.errors import BadVideoError
from pitchside.results.records import FrameRecord

#: Encoders tried in order: libx264 is in PyAV's wheels; openh264 where a build lacks it.
ENCODERS = ("libx264", "libopenh264")
X264_OPTIONS = {"preset": "veryfast", "crf": "23"}  # a download, not an archive: speed first
PROGRESS_EVERY = 25  # frames between calls of ``progress``

Colour = tuple[int, int, int]  # BGR
#: One colour per class the football model knows; other classes take one from PALETTE.
COLOURS: dict[str, Colour] = {
    "player": (235, 140, 30),  # blue
    "goalkeeper": (30, 200, 255),  # amber
    "referee": (40, 40, 230),  # red
    "ball": (255, 255, 255),
}
PALETTE: tuple[Colour, ...] = ((80, 200, 80), (200, 80, 200), (200, 200, 80), (80, 160, 255))

Image = npt.NDArray[np.uint8]


def render_annotated(
    src: Path,
    records: Iterable[FrameRecord],
    out: Path,
    *,
    scale: float = 1.0,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write ``src`` with the boxes of ``records`` drawn on to ``out``; blocking.

    Args:
        src: the source video.
        records: detections per frame, in ``seq`` order, with gaps where a frame has none;
            boxes are ``[x1, y1, x2, y2]`` pixels of the analysed frame.
        out: the MP4 to write; replaced only once the whole video is written.
        scale: source pixels per analysed pixel (the analysis ran on a resized frame).
        progress: called with the number of frames written every ``PROGRESS_EVERY`` frames
            and once at the end.

    Returns:
        The number of frames written: every frame the source decodes to.

    Raises:
        BadVideoError: ``src`` has no video stream or stops decoding part way.
    """
    fd, name = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=".part.mp4", dir=out.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        written = _render(src, iter(records), tmp, scale, progress)
        with tmp.open("rb+") as f:  # on disk before the rename makes it visible
            os.fsync(f.fileno())
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return written


def h264_encoder() -> str:
    """The first of ``ENCODERS`` this PyAV build has."""
    for encoder in ENCODERS:
        if encoder in av.codecs_available:
            return encoder
    raise RuntimeError(f"this PyAV build has no H.264 encoder (tried {', '.join(ENCODERS)})")


def _render(
    src: Path,
    records: Iterator[FrameRecord],
    tmp: Path,
    scale: float,
    progress: Callable[[int], None] | None,
) -> int:
    written = 0
    faststart = {"movflags": "+faststart"}  # the index first: players start before the end
    with (
        av.open(str(src)) as source,
        av.open(str(tmp), "w", format="mp4", options=faststart) as sink,
    ):
        if not source.streams.video:
            raise BadVideoError("the source has no video stream")
        stream = source.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        encoder = h264_encoder()
        options = X264_OPTIONS if encoder == "libx264" else {}
        video = cast(
            av.video.stream.VideoStream, sink.add_stream(encoder, rate=rate, options=options)
        )
        # yuv420p needs even sides: an odd one loses a pixel (scaled, less than a pixel off)
        width, height = stream.width // 2 * 2, stream.height // 2 * 2
        video.width, video.height = width, height
        video.pix_fmt = "yuv420p"
        record = next(records, None)
        for frame in _decoded(source, stream):
            if (frame.format.name, frame.width, frame.height) != ("yuv420p", width, height):
                frame = frame.reformat(width=width, height=height, format="yuv420p")
            while record is not None and record.seq < written:  # a duplicate: skip it
                record = next(records, None)
            if record is not None and record.seq == written:
                frame = _annotated(frame, record.detections, scale)
                record = next(records, None)
            frame.pts, frame.time_base = written, 1 / rate  # constant rate, one a frame
            sink.mux(video.encode(frame))
            written += 1
            if progress is not None and written % PROGRESS_EVERY == 0:
                progress(written)
        sink.mux(video.encode(None))
    if progress is not None:
        progress(written)
    return written


def _decoded(
    source: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> Iterator[av.VideoFrame]:
    """The frames of ``stream``; a decoding error (not an encoding one) is the source's fault."""
    count = 0
    try:
        for frame in source.decode(stream):
            yield frame
            count += 1
    except av.FFmpegError as exc:  # never quote it: it names the server's path
        raise BadVideoError(f"the source stops decoding after frame {count}") from exc


def _annotated(
    frame: av.VideoFrame, detections: list[dict[str, Any]], scale: float
) -> av.VideoFrame:
    # OpenCV's I420 conversions take a third of the time swscale's to and from bgr24 do
    image = cast(Image, cv2.cvtColor(frame.to_ndarray(), cv2.COLOR_YUV2BGR_I420))
    _draw(image, detections, scale)
    i420 = cast(Image, cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420))
    return av.VideoFrame.from_ndarray(i420, format="yuv420p")


def _draw(image: Image, detections: list[dict[str, Any]], scale: float) -> None:
    height, width = image.shape[:2]
    thick = max(1, round(min(width, height) / 400))  # 2 px at 720p, 3 at 1080p
    font_scale = 0.4 * thick
    for det in detections:
        x1, y1, x2, y2 = (round(v * scale) for v in det["box"])
        label = str(det.get("label", det["cls"]))
        colour = COLOURS.get(label, PALETTE[int(det["cls"]) % len(PALETTE)])
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, thick, cv2.LINE_AA)
        text = f"{label} {float(det['score']):.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thick)
        top = y1 - th - base if y1 - th - base >= 0 else y1  # inside the box at the top edge
        cv2.rectangle(image, (x1, top), (x1 + tw, top + th + base), colour, cv2.FILLED)
        ink = (0, 0, 0) if sum(colour) > 380 else (255, 255, 255)  # legible on the fill
        cv2.putText(image, text, (x1, top + th), cv2.FONT_HERSHEY_SIMPLEX, font_scale, ink,
                    thick, cv2.LINE_AA)  # fmt: skip
