"""Sources: a local video file decoded with PyAV on a worker thread that feeds asyncio.

The source factory (:func:`resolve_source`, :func:`probe`, :func:`open_source`) is the one
place that maps a source string to a kind of source. Today only local files exist; RTSP and
other URLs are refused with a 422 until their source lands here beside :class:`FileSource`.

Shape (after aiortc's ``contrib/media.py`` ``MediaPlayer``): a thread decodes, converts and
prepares each frame (the caller's ``prepare`` JPEG-encodes it) and hands the result to the
event loop through a bounded queue. The thread never blocks without a timeout: it waits for
a free slot at most 0.1 s at a time and checks a :class:`threading.Event`, so closing the
source ends it promptly and nothing ever joins a producer stuck on a full queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Generic, TypeVar
from urllib.parse import unquote, urlsplit

import av
import av.error
import numpy as np

from ingest.metrics import FRAMES_DROPPED, REASON_STOPPED, STAGE
from pitchside.errors import SourceError

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

NS_PER_S = 1_000_000_000
DEFAULT_FPS = 25.0  # only for a stream that declares no rate and has frames without pts
_URL = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://")


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What :func:`probe` learned about a source before it was accepted."""

    width: int
    height: int
    fps: float  # the stream's average rate; 0.0 when it declares none
    duration_s: float | None  # None when the container does not say
    codec: str


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    """One decoded frame, as the decode thread hands it to ``prepare``."""

    bgr: np.ndarray  # (H, W, 3) uint8
    pts_ns: int  # media time; keeps increasing across loops
    decoded_ns: int  # epoch ns when decoding and conversion finished
    decode_s: float  # seconds spent decoding and converting this frame


# --------------------------------------------------------------------------------------------
# Source factory


def resolve_source(source: str) -> Path:
    """Map a source string to a local file path.

    Args:
        source: a file path, or a ``file://`` URL.

    Raises:
        SourceError: (422) the source is an empty string, or a URL of a kind not supported
            yet (``rtsp://``, ``http://`` ...). The message never repeats the URL, so it
            cannot leak credentials.
    """
    if not source.strip():
        raise SourceError("source is empty; give a local file path")
    match = _URL.match(source)
    if match is None:
        return Path(source)
    scheme = match["scheme"].lower()
    if scheme != "file":
        raise SourceError(f"{scheme} sources are not supported yet; give a local file path")
    parts = urlsplit(source)
    if parts.netloc not in ("", "localhost"):
        raise SourceError(f"file URLs must name a local path, got host {parts.netloc!r}")
    return Path(unquote(parts.path))


def probe(source: str) -> SourceInfo:
    """Open ``source`` and decode its first video frame (blocking: run it in a thread).

    Raises:
        SourceError: (422) the path is missing or a directory, PyAV cannot open it, it has no
            video stream, or its first frame does not decode; or the source kind is not
            supported (see :func:`resolve_source`).
    """
    path = resolve_source(source)
    if not path.exists():
        raise SourceError(f"no such file: {path}")
    if path.is_dir():
        raise SourceError(f"not a video: {path.name} (it is a directory)")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise SourceError(f"not a video: {path.name} ({_reason(exc)})") from exc
    with container:
        if not container.streams.video:
            raise SourceError(f"not a video: {path.name} (it has no video stream)")
        stream = container.streams.video[0]
        try:
            first = next(container.decode(stream), None)
        except av.error.FFmpegError as exc:
            raise SourceError(f"not a video: {path.name} ({_reason(exc)})") from exc
        if first is None:
            raise SourceError(f"not a video: {path.name} (its video stream has no frames)")
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


async def probe_in_thread(source: str) -> SourceInfo:
    """:func:`probe` on a short-lived thread of its own, awaited from the event loop."""
    return await run_in_thread(probe, source, name="ingest-probe")


def open_source(
    source: str,
    prepare: Callable[[DecodedFrame], T],
    *,
    loop: bool = False,
    sid: str = "",
) -> FileSource[T]:
    """The source for ``source`` (today always a :class:`FileSource`), not yet started.

    Raises:
        SourceError: the source kind is not supported (see :func:`resolve_source`).
    """
    return FileSource(resolve_source(source), prepare, loop=loop, sid=sid)


async def run_in_thread(fn: Callable[..., R], *args: object, name: str) -> R:
    """Run ``fn(*args)`` on a new thread and await its result.

    Unlike ``asyncio.to_thread`` this leaves no executor thread behind: the thread ends with
    the call.
    """
    aloop = asyncio.get_running_loop()
    future: asyncio.Future[R] = aloop.create_future()

    def settle(result: R | None, exc: BaseException | None) -> None:
        if future.done():
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def target() -> None:
        try:
            result, exc = fn(*args), None
        except BaseException as err:  # handed to the awaiting coroutine
            result, exc = None, err
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            aloop.call_soon_threadsafe(settle, result, exc)

    threading.Thread(target=target, name=name, daemon=True).start()
    return await future


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


# --------------------------------------------------------------------------------------------
# Decoding


def decode_frames(path: Path, *, loop: bool, stop: threading.Event) -> Generator[DecodedFrame]:
    """Decode the first video stream of ``path`` (blocking), optionally looping forever.

    Timestamps come from ``frame.pts * time_base``; a frame without one gets the previous
    timestamp plus one frame at the stream's average rate. When looping, each pass is shifted
    to start where the previous one ended (last pts plus its duration), so timestamps keep
    increasing. Stops early when ``stop`` is set.

    Raises:
        SourceError: the file cannot be opened or decoding fails, or a looped pass yields no
            frame.
    """
    offset_ns = 0  # added to every pts of the current pass
    last_ns: int | None = None  # previous frame's pts (after offset)
    end_ns: int | None = None  # where the previous pass ended
    count = 0
    while not stop.is_set():
        pass_count = 0
        need_offset = end_ns is not None  # a later pass: shift it to start at end_ns
        try:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                # PyAV's default threading (slices only), not frame threads: on the test clip
                # frame threads double the decode CPU (3.2 against 1.6 ms a frame), CPU the
                # workers' inference needs, and one core decodes 1080p H.264 at ~190 fps.
                time_base = stream.time_base or Fraction(1, NS_PER_S)
                rate = stream.average_rate or stream.guessed_rate
                step_ns = round(NS_PER_S / float(rate)) if rate else round(NS_PER_S / DEFAULT_FPS)
                frames = container.decode(video=0)
                while not stop.is_set():
                    started = time.perf_counter()
                    frame = next(frames, None)
                    if frame is None:
                        break
                    bgr = frame.to_ndarray(format="bgr24")
                    decode_s = time.perf_counter() - started
                    if frame.pts is None:
                        pts_ns = (last_ns + step_ns) if last_ns is not None else offset_ns
                    else:
                        raw_ns = _to_ns(frame.pts, time_base)
                        if need_offset and end_ns is not None:
                            offset_ns, need_offset = end_ns - raw_ns, False
                        pts_ns = raw_ns + offset_ns
                    duration_ns = _to_ns(frame.duration, time_base) if frame.duration else step_ns
                    last_ns, end_ns = pts_ns, pts_ns + duration_ns
                    count += 1
                    pass_count += 1
                    yield DecodedFrame(bgr, pts_ns, time.time_ns(), decode_s)
        except av.error.FFmpegError as exc:
            raise SourceError(
                f"decoding {path.name} failed after {count} frames: {_reason(exc)}"
            ) from exc
        except IndexError as exc:  # container.streams.video[0]
            raise SourceError(f"not a video: {path.name} (it has no video stream)") from exc
        if not loop:
            return
        if pass_count == 0 and not stop.is_set():
            raise SourceError(f"{path.name} has no frames to loop over")


def _to_ns(value: int, time_base: Fraction) -> int:
    return value * time_base.numerator * NS_PER_S // time_base.denominator


# --------------------------------------------------------------------------------------------
# Thread to asyncio


@dataclass(frozen=True, slots=True)
class _End:
    error: BaseException | None = None


class FileSource(Generic[T]):
    """A local file decoded on its own thread; ``await get()`` returns prepared frames.

    ``prepare`` runs on the decode thread for every frame (JPEG encoding goes there, off the
    event loop). Use as ``async with``; leaving it stops and ends the thread.
    """

    def __init__(
        self,
        path: Path,
        prepare: Callable[[DecodedFrame], T],
        *,
        loop: bool = False,
        sid: str = "",
        queue_size: int = 4,
    ) -> None:
        """Create a file source; nothing opens until :meth:`start`.

        Args:
            path: the video file.
            prepare: turns a decoded frame into what :meth:`get` returns; runs on the thread.
            loop: start over at the end of the file, forever.
            sid: stream id, for thread names and logs.
            queue_size: prepared frames buffered ahead of the consumer.
        """
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        self._path = path
        self._prepare = prepare
        self._loop = loop
        self._sid = sid
        self._slots = threading.BoundedSemaphore(queue_size)
        self._queue: asyncio.Queue[T | _End] = asyncio.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._aloop: asyncio.AbstractEventLoop | None = None
        self._end: _End | None = None

    async def __aenter__(self) -> FileSource[T]:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def start(self) -> None:
        """Start the decode thread (call from the event loop)."""
        if self._thread is not None:
            raise RuntimeError("source already started")
        self._aloop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._run, name=f"ingest-decode-{self._sid}", daemon=True
        )
        self._thread.start()

    async def get(self, timeout: float | None = None) -> T | None:
        """The next prepared frame, or None at the end of the file.

        Raises:
            TimeoutError: no frame within ``timeout`` seconds.
            SourceError: decoding failed (raised again on every later call).
            Exception: whatever ``prepare`` raised on the thread.
        """
        if self._end is None:
            item = await asyncio.wait_for(self._queue.get(), timeout)
            if not isinstance(item, _End):
                self._slots.release()
                return item
            self._end = item
        if self._end.error is not None:
            raise self._end.error
        return None

    @property
    def ready(self) -> bool:
        """Whether :meth:`get` would return at once (a frame, the end, or its error)."""
        return self._end is not None or not self._queue.empty()

    @property
    def alive(self) -> bool:
        """Whether the decode thread is still running."""
        return self._thread is not None and self._thread.is_alive()

    async def close(self, timeout_s: float = 2.0) -> bool:
        """Stop the thread and wait (bounded, without blocking the loop) for it to end.

        Returns:
            True when the thread has ended; False when it outlived ``timeout_s`` (it is a
            daemon thread and ends at its next stop check).
        """
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        while self.alive and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        discarded = sum(not isinstance(i, _End) for i in self._drain())
        if discarded:
            FRAMES_DROPPED.labels(stage=STAGE, reason=REASON_STOPPED).inc(discarded)
        if self.alive:
            log.warning(
                "decode thread of %s still running %.1f s after stop",
                self._sid, timeout_s, extra={"sid": self._sid},
            )  # fmt: skip
            return False
        return True

    def _drain(self) -> list[T | _End]:
        items: list[T | _End] = []
        while not self._queue.empty():
            items.append(self._queue.get_nowait())
        return items

    # -- on the decode thread --------------------------------------------------------------

    def _run(self) -> None:
        try:
            with contextlib.closing(
                decode_frames(self._path, loop=self._loop, stop=self._stop)
            ) as frames:
                for frame in frames:
                    if not self._offer(self._prepare(frame)):
                        return
            self._hand_over(_End())
        except Exception as exc:  # raised again from get() on the event loop
            self._hand_over(_End(exc))

    def _offer(self, item: T) -> bool:
        while not self._stop.is_set():
            if self._slots.acquire(timeout=0.1):
                return self._hand_over(item)
        return False

    def _hand_over(self, item: T | _End) -> bool:
        if self._aloop is None:
            return False
        try:
            self._aloop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the event loop is closed: nobody will read this
            self._stop.set()
            return False
        return True
