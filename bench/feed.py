"""A viewer WebSocket read in the background, for sections that act on a stream while it runs.

Section (d) only watches; a section that stops a camera, or waits for something to show, needs
the messages to keep arriving while it does so, and a bounded wait for the first that shows
what it waits for: :class:`Feed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TypeVar

from bench.pipeline import Received, messages
from pitchside.errors import BenchError

T = TypeVar("T")


class Feed:
    """Every frame message of one viewer WebSocket, received by a task while inside.

    Args:
        url: ``ws://.../ws/streams/{sid}``.
        silence_s: the socket fails when no frame message arrives for this long.
    """

    def __init__(self, url: str, silence_s: float) -> None:
        self.received: list[Received] = []
        self._url = url
        self._silence_s = silence_s
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Feed:
        self._task = asyncio.create_task(self._receive(), name="bench-feed")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, BenchError):
                await self._task

    async def wait_for(
        self, found: Callable[[list[Received]], T | None], timeout_s: float, what: str
    ) -> T:
        """The first non-None ``found(received)``, tried after each message.

        Raises:
            BenchError: not found within ``timeout_s`` (the message names ``what``), or the
                WebSocket failed first.
        """
        if self._task is None:
            raise RuntimeError("Feed.wait_for outside `async with`")
        deadline = time.monotonic() + timeout_s
        while (result := found(self.received)) is None:
            if self._task.done():
                failure = None if self._task.cancelled() else self._task.exception()
                raise BenchError(f"the WebSocket stopped before {what}: {failure}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchError(f"no {what} within {timeout_s:g} s")
            self._arrived.clear()
            arrived = asyncio.ensure_future(self._arrived.wait())
            await asyncio.wait(
                {arrived, self._task}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            arrived.cancel()
        return result

    async def _receive(self) -> None:
        async for msg in messages(self._url, self._silence_s):
            self.received.append(msg)
            self._arrived.set()
