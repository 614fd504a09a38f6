"""What an uploaded video is, and whether PyAV can read it to its end, before it is analysed.

An upload is refused (:class:`BadVideoError`, 422) when it is no media file at all, holds no
video stream, has frames that do not decode, or is cut short. The frame count comes from
demuxing every packet, which costs little, instead of decoding every frame; decoding the
first frame and the last two GOPs shows that the stream decodes where it starts and where it
ends. Frames in the middle are not decoded here: a video broken only there fails later, when
it is analysed.

A cut MP4 shows in one of two ways: with its index (the ``moov`` atom) at the end it does not
open at all; "faststart", with the index first, it opens and declares every frame, but its
packets stop early (the last one partial). A cut Matroska or WebM declares no frame count and
is caught by its duration. Messages name the user's file name, never the server's path (so
never quote an FFmpeg error, which holds the path).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.container
import av.video

from pitchside.errors import BadVideoError

#: A container may declare a duration a little longer than its last packet ends (rounding,
#: an audio tail): it is cut short only when more than this many seconds are missing.
DURATION_SLACK_S = 0.25


@dataclass(frozen=True, slots=True)
class VideoInfo:
    duration_s: float | None  # as the file declares it; None when it does not
    fps: float | None  # average frame rate; None when the file gives none
    width: int  # pixels of a decoded frame
    height: int
    frames: int  # video frames that decode
    codec: str  # FFmpeg's decoder name: "h264", "hevc", "vp9"...
    container: str  # "mp4", "matroska"...: the file's extension when the demuxer takes it


@dataclass(slots=True)
class _Scan:
    """What demuxing every packet found, the first frame decoded on the way."""

    packets: int = 0  # video packets that hold a frame
    end_s: float | None = None  # where the last packet of any stream ends
    keys: tuple[int, ...] = ()  # presentation times of the last two video keyframes
    tail_pts: frozenset[int] = frozenset()  # presentation times from the last keyframe on
    first: av.VideoFrame | None = None


def probe_video(path: Path, name: str) -> VideoInfo:
    """Probe the video at ``path``; blocking (call it in a thread).

    Args:
        path: the stored upload.
        name: the user's name for the file, the only one error messages give.

    Raises:
        BadVideoError: not a media file, no video stream, frames that do not decode, or a
            file cut short.
    """
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise BadVideoError(_unreadable(path, name)) from exc
    with container:
        if not container.streams.video:
            kinds: list[str] = sorted({s.type for s in container.streams}) or ["no streams"]
            raise BadVideoError(f"{name} has no video stream (it holds {', '.join(kinds)})")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame threads: the tail decodes at the speed of all cores
        scan = _scan(container, stream, name)
        _check_complete(container, stream, scan, name)
        _check_tail(container, stream, scan, name)
        assert scan.first is not None  # _scan raised otherwise
        rate = stream.average_rate or stream.guessed_rate
        return VideoInfo(
            duration_s=_declared_duration(container, stream),
            fps=float(rate) if rate else None,
            width=scan.first.width,
            height=scan.first.height,
            frames=scan.packets,
            codec=stream.codec_context.name,
            container=_container_name(container, name),
        )


def _unreadable(path: Path, name: str) -> str:
    with path.open("rb") as f:
        head = f.read(12)
    if not head:
        return f"{name} is empty"
    if head[4:8] == b"ftyp":
        return (
            f"{name} is an MP4 or MOV file that cannot be opened: it is cut short (its index, "
            "the moov atom, is missing) or broken"
        )
    return f"{name} is not a video file: no media format FFmpeg knows matches it"


def _scan(container: av.container.InputContainer, stream: av.video.VideoStream, name: str) -> _Scan:
    scan = _Scan()
    tail: list[int] = []
    try:
        for packet in container.demux():  # every stream: an audio tail counts for the duration
            if packet.size == 0 or packet.pts is None:  # the flush packets at the end
                continue
            end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
            scan.end_s = end if scan.end_s is None else max(scan.end_s, end)
            if packet.stream_index != stream.index or packet.is_discard:
                continue
            if packet.is_corrupt:
                raise BadVideoError(
                    f"{name} is cut short or broken: frame {scan.packets + 1} is incomplete"
                )
            if packet.is_keyframe:
                scan.keys = (*scan.keys[-1:], packet.pts)  # seeks go by pts, not dts
                tail.clear()
            tail.append(packet.pts)
            scan.packets += 1
            if scan.first is None:
                scan.first = _decode_first(stream, packet, name)
    except av.FFmpegError as exc:
        raise BadVideoError(
            f"{name} cannot be read past frame {scan.packets}: it is cut short or broken"
        ) from exc
    if scan.first is None:
        scan.first = _decode_first(stream, None, name)  # a decoder that holds frames back
    if scan.first is None:
        raise BadVideoError(f"{name} holds no video frame that decodes")
    scan.tail_pts = frozenset(tail)
    return scan


def _decode_first(
    stream: av.video.VideoStream, packet: av.Packet[Any] | None, name: str
) -> av.VideoFrame | None:
    try:
        frames = stream.codec_context.decode(packet)
    except av.FFmpegError as exc:
        raise BadVideoError(f"the frames of {name} do not decode") from exc
    return frames[0] if frames else None


def _check_complete(
    container: av.container.InputContainer, stream: av.video.VideoStream, scan: _Scan, name: str
) -> None:
    if stream.frames and scan.packets < stream.frames:
        raise BadVideoError(
            f"{name} is cut short: it declares {stream.frames} frames but holds {scan.packets}"
        )
    declared = _declared_duration(container, stream)
    if declared is not None and scan.end_s is not None:
        start_s = (container.start_time or 0) / av.time_base
        if scan.end_s - start_s < declared - DURATION_SLACK_S:
            raise BadVideoError(
                f"{name} is cut short: it ends at {scan.end_s - start_s:.1f} s "
                f"of the {declared:.1f} s it declares"
            )


def _check_tail(
    container: av.container.InputContainer, stream: av.video.VideoStream, scan: _Scan, name: str
) -> None:
    """Decode from the last keyframe but one to the end: every frame from the last keyframe
    on must come out (the GOP before feeds any frame of the last that refers back to it)."""
    decoded: set[int] = set()
    started = not scan.keys  # no keyframe flagged: decode from the start, taking every frame
    try:
        # A seek flushes the decoder too. Without a stream, offset 0 is the file's start.
        container.seek(scan.keys[0] if scan.keys else 0, stream=stream if scan.keys else None)
        for packet in container.demux(stream):
            started = started or packet.is_keyframe  # a seek may land before a keyframe
            if started:
                decoded.update(f.pts for f in packet.decode() if f.pts is not None)
    except av.FFmpegError as exc:
        raise BadVideoError(f"the last frames of {name} do not decode") from exc
    missing = len(scan.tail_pts - decoded)
    if missing:
        raise BadVideoError(
            f"the last frames of {name} do not decode: {missing} of {len(scan.tail_pts)} missing"
        )


def _declared_duration(
    container: av.container.InputContainer, stream: av.video.VideoStream
) -> float | None:
    if stream.duration is not None and stream.duration > 0 and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:
        return float(Fraction(container.duration, av.time_base))
    return None


def _container_name(container: av.container.InputContainer, name: str) -> str:
    # FFmpeg names a demuxer by every format it reads ("mov,mp4,m4a,3gp,3g2,mj2"): keep the
    # one the file's extension names, if any.
    formats = container.format.name.split(",")
    ext = Path(name).suffix.lstrip(".").lower()
    return ext if ext in formats else formats[0]
