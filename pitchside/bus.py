"""Living with a Redis that comes and goes: wait for it, notice when it lost its data.

Every service treats a lost connection the same way (:class:`BusWait`): one warning when the
bus goes away, waits with capped, jittered backoff (never a crash, never a busy loop), one
line when it answers again, with how long it was away. :func:`wait_for_redis` is the same
wait before a service's first command, so a service may start before its Redis.

A Redis that restarts without persistence (the embedded one, a cache node that was replaced)
comes back empty: the registry, the consumer groups, the heartbeats and the frames in flight
are gone. The **bus epoch** (``pitchside:bus``, :data:`~pitchside.schema.BUS_EPOCH_KEY`) tells
that apart from a pause: a random token set by the first service to look (``SET NX``), so a
service that remembers another token knows that what it wrote before is lost and writes it
again (ingest its streams and the frames of a job not yet detected, see
:mod:`ingest.publisher`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from pitchside.backoff import Backoff
from pitchside.schema import BUS_EPOCH_KEY

log = logging.getLogger(__name__)

#: What a lost or restarting Redis raises (``LOADING`` is a ConnectionError too); anything
#: else from Redis is a bug or a refused command, not an outage.
BUS_ERRORS = (RedisConnectionError, RedisTimeoutError)

WAIT_FIRST_S = 0.1
WAIT_CAP_S = 2.0
#: How long a reader waits for a stream's registry entry that vanished before it takes the
#: stream for deleted: when Redis lost its data, the owner writes it again (ingest does within
#: ``WAIT_CAP_S`` of Redis answering).
RESTORE_GRACE_S = 10.0


class BusWait:
    """The waits of one service (or one of its loops) while Redis is away.

    Args:
        who: names the waiter in its two log lines (``ingest-1``, ``stream cam1``).
        first_s, cap_s: the backoff's first bound and cap.
    """

    def __init__(self, who: str, first_s: float = WAIT_FIRST_S, cap_s: float = WAIT_CAP_S) -> None:
        self.who = who
        self.outages = 0  # times the bus was lost, since start
        self._backoff = Backoff(first_s, cap_s)
        self._lost_at: float | None = None

    @property
    def lost(self) -> bool:
        """The last command failed for want of Redis, and none has succeeded since."""
        return self._lost_at is not None

    def failed(self, exc: BaseException) -> float:
        """A command failed with ``exc``: note the outage (logged once); the next delay."""
        if self._lost_at is None:
            self._lost_at = time.monotonic()
            self.outages += 1
            log.warning("%s lost Redis (%s); waiting for it", self.who, exc or type(exc).__name__)
        return self._backoff.next_s()

    async def pause(self, exc: BaseException, stop: asyncio.Event | None = None) -> None:
        """:meth:`failed`, then wait its delay (cut short by ``stop``)."""
        delay = self.failed(exc)
        if stop is None:
            await asyncio.sleep(delay)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)

    def back(self) -> bool:
        """A command succeeded: True when that ends an outage (logged once)."""
        if self._lost_at is None:
            return False
        log.info("%s: Redis answers again after %.1f s", self.who, time.monotonic() - self._lost_at)
        self._lost_at = None
        self._backoff.reset()
        return True


async def wait_for_redis(redis: Redis, who: str, stop: asyncio.Event | None = None) -> bool:
    """Wait until ``redis`` answers PING; False when ``stop`` was set first."""
    waiting = BusWait(who)
    while stop is None or not stop.is_set():
        try:
            await redis.ping()
        except BUS_ERRORS as exc:
            await waiting.pause(exc, stop)
            continue
        waiting.back()
        return True
    return False


async def bus_epoch(redis: Redis) -> str:
    """The bus's epoch token, set now if this Redis has none (it is new or lost its data)."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(BUS_EPOCH_KEY, secrets.token_hex(8), nx=True)
        pipe.get(BUS_EPOCH_KEY)
        _, token = await pipe.execute()
    return token.decode() if isinstance(token, bytes) else str(token)
