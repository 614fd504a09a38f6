"""Stream leases: which tracker owns a stream, for at most a TTL unless it renews.

A lease is the string ``pitchside:{sid}:tracker`` holding the owner's instance name, SET
with NX and a TTL in milliseconds. The owner renews it every third of the TTL; renewing and
releasing check the owner first (one Lua script each, atomic on the key's node), so a
tracker that paused past its TTL and lost the stream can never extend or delete the lease
of the one that took it over. Each key is its own call: keys of different streams live on
different Redis Cluster slots.
"""

from __future__ import annotations

from redis.asyncio import Redis

from pitchside.schema import tracker_lease_key

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class Leases:
    """The leases one tracker instance takes, renews and gives back.

    Args:
        redis: the bus.
        owner: this instance's name (the value of its leases).
        ttl_s: how long a lease lasts without renewal: the longest a stream goes untracked
            when its owner dies.
    """

    def __init__(self, redis: Redis, owner: str, ttl_s: float) -> None:
        self.owner = owner
        self.ttl_ms = max(1, round(ttl_s * 1000))
        self._redis = redis
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    async def acquire(self, sid: str) -> bool:
        """Take ``sid`` if nobody holds it; whether this instance holds it now."""
        key = tracker_lease_key(sid)
        if await self._redis.set(key, self.owner, nx=True, px=self.ttl_ms):
            return True
        holder = await self._redis.get(key)
        return holder is not None and _text(holder) == self.owner

    async def renew(self, sid: str) -> bool:
        """Extend this instance's lease of ``sid``; False when it is not ours any more."""
        key = tracker_lease_key(sid)
        return bool(await self._renew(keys=[key], args=[self.owner, self.ttl_ms]))

    async def release(self, sid: str) -> None:
        """Give ``sid`` up, if it is still ours."""
        await self._release(keys=[tracker_lease_key(sid)], args=[self.owner])

    async def owner_of(self, sid: str) -> str | None:
        holder = await self._redis.get(tracker_lease_key(sid))
        return None if holder is None else _text(holder)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
