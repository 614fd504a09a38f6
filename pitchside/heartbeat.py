"""The one heartbeat loop: a service's health key, kept alive while it runs.

``pitchside:health:{service}:{name}`` is SET with a TTL of ``HEALTH_TTL_S`` once on entry
(so that whoever sees the key may rely on the service being ready) and again every third of
the TTL until the block exits, when the key is deleted. A failed beat is logged and retried
on the next period: the key expires by itself if the service is truly gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from types import TracebackType

from redis.asyncio import Redis
from redis.exceptions import RedisError

from pitchside.schema import HEALTH_TTL_S, health_key

log = logging.getLogger(__name__)

BEAT_EVERY_S = HEALTH_TTL_S / 3


class Heartbeat:
    """Async context manager: beats while inside, removes the key on the way out.

    Args:
        redis: the bus.
        service: ``ingest``, ``worker``...: the service part of the key.
        name: this instance's name, unique per process.
        value: what to store, called at every beat (e.g. a ``WorkerBeat`` naming the model).
    """

    def __init__(
        self, redis: Redis, service: str, name: str, value: Callable[[], str | int]
    ) -> None:
        self.key = health_key(service, name)
        self._redis = redis
        self._value = value
        self._task: asyncio.Task[None] | None = None

    async def beat(self) -> None:
        await self._redis.set(self.key, self._value(), ex=HEALTH_TTL_S)

    async def __aenter__(self) -> Heartbeat:
        await self.beat()  # errors propagate: a service that cannot beat is not ready
        self._task = asyncio.create_task(self._loop(), name=f"heartbeat {self.key}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self._redis.delete(self.key)
        except RedisError as error:  # the bus went away: the key expires by itself
            log.warning("could not delete heartbeat %s: %s", self.key, error)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(BEAT_EVERY_S)
            try:
                await self.beat()
            except RedisError as exc:  # keep beating; the bus may come back
                log.warning("heartbeat %s failed: %s", self.key, exc)
