"""The stream registry (``pitchside:streams``): read and write StreamInfo entries.

Ingest owns the entry of a stream it runs (named in its ``owner``) and is its only writer
while the stream is active, but for another ingest instance marking it failed once the owner's
heartbeat is gone ("ingest lost"); the gateway reads it and removes it on DELETE. Writes
replace the whole JSON value.
"""

from __future__ import annotations

from redis.asyncio import Redis

from pitchside.errors import SchemaError, StreamNotFoundError
from pitchside.schema import STREAMS_KEY, StreamInfo, now_ns


async def put(redis: Redis, info: StreamInfo) -> None:
    info.updated_ns = now_ns()
    await redis.hset(STREAMS_KEY, info.sid, info.to_json())


async def get(redis: Redis, sid: str) -> StreamInfo:
    """Raises StreamNotFoundError when ``sid`` is not in the registry."""
    raw = await redis.hget(STREAMS_KEY, sid)
    if raw is None:
        raise StreamNotFoundError(f"no stream with id {sid!r}")
    return StreamInfo.from_json(raw)


async def get_all(redis: Redis) -> list[StreamInfo]:
    """Every readable entry, oldest first; an unreadable one is skipped, not fatal."""
    infos = []
    for raw in (await redis.hgetall(STREAMS_KEY)).values():
        try:
            infos.append(StreamInfo.from_json(raw))
        except SchemaError:
            continue
    return sorted(infos, key=lambda i: i.created_ns)


async def remove(redis: Redis, sid: str) -> bool:
    return bool(await redis.hdel(STREAMS_KEY, sid))


async def ids(redis: Redis) -> set[str]:
    """The id of every stream in the registry, readable or not."""
    return {k.decode() if isinstance(k, bytes) else str(k) for k in await redis.hkeys(STREAMS_KEY)}
