"""Decoding one pass over a PyAV container: what every kind of source shares."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

NS_PER_S = 1_000_000_000
DEFAULT_FPS = 25.0  # only for a stream that declares no rate and has frames without pts


@dataclass(frozen=True, slots=True)
class RawFrame:
    """A frame of one pass, before the source maps its timestamp to media time."""

    bgr: np.ndarray  # (H, W, 3) uint8
    pts_ns: int | None  # the container's timestamp, None when the frame has none
    duration_ns: int  # the frame's duration, or one frame at the stream's rate
    step_ns: int  # one frame at the stream's average rate
    decode_s: float  # seconds spent decoding and converting it


def decode_pass(container: Any, stop: threading.Event) -> Iterator[RawFrame]:
    """Decode the first video stream of an open container until it ends or ``stop`` is set.

    PyAV's default threading (slices only), not frame threads: on the test clip frame
    threads double the decode CPU (3.2 against 1.6 ms a frame), CPU the workers' inference
    needs, and one core decodes 1080p H.264 at ~190 fps.

    Raises:
        IndexError: the container has no video stream.
        av.error.FFmpegError: decoding failed.
    """
    stream = container.streams.video[0]
    time_base = stream.time_base or Fraction(1, NS_PER_S)
    rate = stream.average_rate or stream.guessed_rate
    step_ns = round(NS_PER_S / float(rate)) if rate else round(NS_PER_S / DEFAULT_FPS)
    frames = container.decode(video=0)
    while not stop.is_set():
        started = time.perf_counter()
        frame = next(frames, None)
        if frame is None:
            return
        bgr = frame.to_ndarray(format="bgr24")
        decode_s = time.perf_counter() - started
        pts_ns = None if frame.pts is None else to_ns(frame.pts, time_base)
        duration_ns = to_ns(frame.duration, time_base) if frame.duration else step_ns
        yield RawFrame(bgr, pts_ns, duration_ns, step_ns, decode_s)


def to_ns(value: int, time_base: Fraction) -> int:
    return value * time_base.numerator * NS_PER_S // time_base.denominator


def reason(exc: BaseException) -> str:
    """What went wrong, without the URL or path FFmpeg appends to its messages (a URL may
    hold credentials)."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text)
