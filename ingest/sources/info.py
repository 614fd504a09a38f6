"""What a probe learns about a source before it is accepted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import av
import av.error

from ingest.sources.decode import reason
from pitchside.errors import SourceError


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What probing a source learned about it."""

    width: int
    height: int
    fps: float  # the stream's average rate; 0.0 when it declares none
    duration_s: float | None  # None when the container does not say (a camera)
    codec: str


def probe_container(container: Any, shown: str) -> SourceInfo:
    """Decode the first video frame of an open container (blocking).

    Args:
        container: opened with ``av.open``.
        shown: how to name the source in messages (a file name, a redacted URL).

    Raises:
        SourceError: it has no video stream, or its first frame does not decode.
    """
    if not container.streams.video:
        raise SourceError(f"not a video: {shown} (it has no video stream)")
    stream = container.streams.video[0]
    try:
        first = next(container.decode(stream), None)
    except av.error.FFmpegError as exc:
        raise SourceError(f"not a video: {shown} ({reason(exc)})") from exc
    if first is None:
        raise SourceError(f"not a video: {shown} (its video stream has no frames)")
    rate = stream.average_rate or stream.guessed_rate
    duration_s = None
    if container.duration:
        duration_s = container.duration / av.time_base
    elif stream.duration and stream.time_base:
        duration_s = float(stream.duration * stream.time_base)
    return SourceInfo(
        width=first.width,
        height=first.height,
        fps=float(rate) if rate else 0.0,
        duration_s=duration_s,
        codec=stream.codec_context.name,
    )
