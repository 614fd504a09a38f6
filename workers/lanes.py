"""A worker's threads: one prepare thread and ``lanes`` inference threads, and the batches in
flight between them.

The prepare thread parses, decodes and letterboxes a batch's frames (and later runs NMS on
its output, see :mod:`workers.publish`); up to ``lanes`` prepared batches infer side by side
in the inference threads, each on its detector's share of the CPU threads. Batches finish in
any order but leave :class:`Lanes` oldest first, so their detections are written in order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TypeVar

import numpy as np

from pitchside.errors import SchemaError
from pitchside.schema import FrameMsg, now_ns
from workers.batch import Batch, Frame, Inferred, decode_jpeg
from workers.engines import Detector

log = logging.getLogger(__name__)

A = TypeVar("A")
T = TypeVar("T")


def prepare_batch(frames: Sequence[Frame], detector: Detector) -> Batch:
    """Prepare thread: parse, decode and letterbox; unusable frames go to ``bad``.

    Args:
        frames: entries cut from the backlog, in batch order.
        detector: the session that will infer the batch, kept on it across a model swap.
    """
    start = time.perf_counter()
    batch = Batch(detector=detector)
    images: list[np.ndarray] = []
    for frame in frames:
        try:
            msg = FrameMsg.from_fields(frame.fields)
        except SchemaError as exc:
            batch.bad.append((frame, str(exc)))
            continue
        image = decode_jpeg(msg.img)
        if image is None:
            batch.bad.append((frame, "image is not a decodable JPEG"))
            continue
        batch.frames.append(frame)
        batch.msgs.append(msg)
        images.append(image)
    if images:
        batch.prepared = detector.prepare(images)
    batch.decode_s = time.perf_counter() - start
    return batch


def infer_batch(batch: Batch) -> Inferred:
    """Inference thread: run the model on one prepared batch, timed."""
    if batch.prepared is None or batch.detector is None:
        raise ValueError("a batch without images cannot be inferred")
    start_ns, start = now_ns(), time.perf_counter()
    raw = batch.detector.infer(batch.prepared)
    return Inferred(batch, raw, start_ns, now_ns(), time.perf_counter() - start)


class Lanes:
    """The thread pools of one worker run, and its batches in flight, oldest first.

    An async context manager: the threads start on entry; on exit batches still in flight
    are cancelled (their threads finish on their own) and the pools shut down.

    Args:
        name: the worker's name, for the thread names.
        lanes: batches that may infer at once at most.
    """

    def __init__(self, name: str, lanes: int) -> None:
        self._name = name
        self._lanes = lanes
        self._inflight: deque[asyncio.Future[Inferred]] = deque()
        self._prep_pool: ThreadPoolExecutor | None = None
        self._infer_pool: ThreadPoolExecutor | None = None

    async def __aenter__(self) -> Lanes:
        self._prep_pool = ThreadPoolExecutor(1, thread_name_prefix=f"{self._name}-prep")
        self._infer_pool = ThreadPoolExecutor(self._lanes, thread_name_prefix=f"{self._name}-infer")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for task in self._inflight:  # an error elsewhere: the threads finish on their own
            task.cancel()
        self._inflight.clear()
        for pool in (self._prep_pool, self._infer_pool):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)

    def __len__(self) -> int:
        """Batches in flight."""
        return len(self._inflight)

    async def prepare(self, frames: Sequence[Frame], detector: Detector) -> Batch:
        """:func:`prepare_batch` in the prepare thread."""
        return await self.in_prep(lambda fs: prepare_batch(fs, detector), frames)

    async def in_prep(self, fn: Callable[[A], T], arg: A) -> T:
        """``fn(arg)`` in the prepare thread (which runs one thing at a time)."""
        return await asyncio.get_running_loop().run_in_executor(self._prep_pool, fn, arg)

    async def submit(self, batch: Batch, limit: int) -> list[Inferred]:
        """Start inferring ``batch`` once fewer than ``limit`` batches are in flight.

        Returns:
            The batches that had to finish first, oldest first.
        """
        finished = []
        while len(self._inflight) >= limit:
            finished.append(await self._inflight.popleft())
        loop = asyncio.get_running_loop()
        self._inflight.append(loop.run_in_executor(self._infer_pool, infer_batch, batch))
        return finished

    def finished(self) -> list[Inferred]:
        """The batches done by now, oldest first, up to the oldest still inferring."""
        done = []
        while self._inflight and self._inflight[0].done():
            done.append(self._inflight.popleft().result())
        return done

    async def drain(self) -> AsyncIterator[Inferred]:
        """Every batch in flight as it finishes, oldest first."""
        while self._inflight:
            yield await self._inflight.popleft()
