"""The bridge from a decode thread to asyncio, shared by every kind of source.

After aiortc's ``contrib/media.py`` ``MediaPlayer``: a thread opens the source, decodes,
converts and prepares each frame (the caller's ``prepare`` JPEG-encodes it) and hands the
result to the event loop through a bounded queue. The thread never blocks without a timeout:
it waits for a free slot at most 0.1 s at a time and checks a :class:`threading.Event`, so
closing the source ends it promptly and nothing ever joins a producer stuck on a full queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from ingest import metrics
from ingest.metrics import REASON_STOPPED

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    """One decoded frame, as the decode thread hands it to ``prepare``."""

    bgr: np.ndarray  # (H, W, 3) uint8
    pts_ns: int  # media time; keeps increasing across loops
    decoded_ns: int  # epoch ns when decoding and conversion finished
    decode_s: float  # seconds spent decoding and converting this frame


#: Opens a source and decodes it on the calling thread until the event is set.
Frames = Callable[[threading.Event], Generator[DecodedFrame]]


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


# --------------------------------------------------------------------------------------------
# Thread to asyncio


@dataclass(frozen=True, slots=True)
class _End:
    error: BaseException | None = None


class ThreadedSource(Generic[T]):
    """A source decoded on its own thread; ``await get()`` returns prepared frames.

    ``prepare`` runs on the decode thread for every frame (JPEG encoding goes there, off the
    event loop). Use as ``async with``; leaving it stops and ends the thread.
    """

    def __init__(
        self,
        frames: Frames,
        prepare: Callable[[DecodedFrame], T],
        *,
        sid: str = "",
        queue_size: int = 4,
    ) -> None:
        """Create a source; nothing opens until :meth:`start`.

        Args:
            frames: opens the source and decodes it, on the thread (blocking), until the
                event it is given is set; raises SourceError when the source fails.
            prepare: turns a decoded frame into what :meth:`get` returns; runs on the thread.
            sid: stream id, for thread names and logs.
            queue_size: prepared frames buffered ahead of the consumer.
        """
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        self._frames = frames
        self._prepare = prepare
        self._sid = sid
        self._slots = threading.BoundedSemaphore(queue_size)
        self._queue: asyncio.Queue[T | _End] = asyncio.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._aloop: asyncio.AbstractEventLoop | None = None
        self._end: _End | None = None

    async def __aenter__(self) -> ThreadedSource[T]:
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
        """The next prepared frame, or None at the end of the source.

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
            metrics.dropped(self._sid, REASON_STOPPED, discarded)
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
            with contextlib.closing(self._frames(self._stop)) as frames:
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
