"""The one heartbeat loop: a service's health key, kept alive while it runs.

``pitchside:health:{service}:{name}`` is SET to a :class:`~pitchside.schema.Beat` (who, when,
where its ``/metrics`` is served, a worker's model) with a TTL of ``HEALTH_TTL_S`` once on
entry (so that whoever sees the key may rely on the service being ready) and again every
third of the TTL until the block exits, when the key is deleted. A failed beat is logged and
retried on the next period: the key expires by itself if the service is truly gone. The
gateway reads these keys for ``/readyz``, ``/api/workers`` and ``/api/sd/prometheus``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from types import TracebackType

from redis.asyncio import Redis
from redis.exceptions import RedisError

from pitchside.errors import SchemaError
from pitchside.schema import HEALTH_TTL_S, Beat, health_key, health_pattern, now_ns

log = logging.getLogger(__name__)

BEAT_EVERY_S = HEALTH_TTL_S / 3


class Heartbeat:
    """Async context manager: beats while inside, removes the key on the way out.

    Args:
        redis: the bus.
        service: ``ingest``, ``worker``, ``gateway``: the service part of the key.
        name: this instance's name, unique per process.
        metrics: the ``host:port`` serving this process's ``/metrics``, if any.
        model: called at every beat: the model a worker serves now.
        strict: whether a failed first beat raises (a service that cannot beat is not ready);
            False logs it and keeps trying, for a service that is useful without Redis.
    """

    def __init__(
        self,
        redis: Redis,
        service: str,
        name: str,
        *,
        metrics: str | None = None,
        model: Callable[[], str] | None = None,
        strict: bool = True,
    ) -> None:
        self.key = health_key(service, name)
        self._redis = redis
        self._service = service
        self._name = name
        self._metrics = metrics
        self._model = model
        self._strict = strict
        self._task: asyncio.Task[None] | None = None

    def value(self) -> Beat:
        """What the next beat stores."""
        model = self._model() if self._model is not None else None
        return Beat(self._service, self._name, now_ns(), metrics=self._metrics, model=model)

    async def beat(self) -> None:
        await self._redis.set(self.key, self.value().to_json(), ex=HEALTH_TTL_S)

    async def __aenter__(self) -> Heartbeat:
        try:
            await self.beat()
        except RedisError as exc:
            if self._strict:
                raise
            log.warning("heartbeat %s failed: %s", self.key, exc)
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


async def read_beats(redis: Redis, service: str = "*") -> list[Beat]:
    """The live beats of ``service`` (``"*"``: every service), by service and name.

    Keys found with SCAN and read in one pipeline; a key that expired meanwhile, or holds no
    readable beat (another version, an old bare timestamp), is left out.
    """
    keys = [key async for key in redis.scan_iter(match=health_pattern(service), count=100)]
    if not keys:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.get(key)
        values: list[bytes | str | None] = await pipe.execute()
    beats = []
    for raw in values:
        if raw is None:
            continue
        try:
            beats.append(Beat.from_json(raw))
        except SchemaError:
            continue
    return sorted(beats, key=lambda beat: (beat.service, beat.name))
