"""Stream leases on a real Redis: one owner at a time, renewed only by its owner, taken over
once it expires."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from pitchside.schema import tracker_lease_key
from tracker.lease import Leases


async def test_one_owner_at_a_time_and_only_the_owner_renews_or_releases(redis: Redis) -> None:
    first, second = Leases(redis, "tracker-1", 5.0), Leases(redis, "tracker-2", 5.0)
    # when both ask for the same stream, then only the first gets it
    assert await first.acquire("cam")
    assert not await second.acquire("cam")
    assert await first.acquire("cam")  # asking again for one's own lease: still ours
    assert await first.owner_of("cam") == "tracker-1"
    # and the other can neither renew nor release it
    assert not await second.renew("cam")
    await second.release("cam")
    assert await first.owner_of("cam") == "tracker-1"
    # and the owner renews it to a full TTL and gives it back
    await redis.pexpire(tracker_lease_key("cam"), 100)
    assert await first.renew("cam")
    assert await redis.pttl(tracker_lease_key("cam")) > 4000
    await first.release("cam")
    assert await first.owner_of("cam") is None
    assert await second.acquire("cam")


async def test_a_lease_not_renewed_expires_and_another_takes_it_over(redis: Redis) -> None:
    dead, other = Leases(redis, "tracker-dead", 0.2), Leases(redis, "tracker-other", 5.0)
    assert await dead.acquire("cam2")
    # when its owner stops renewing, then within its TTL the other can take it
    async with asyncio.timeout(5):
        while not await other.acquire("cam2"):
            await asyncio.sleep(0.02)
    # and the old owner's late renewal does not steal it back
    assert not await dead.renew("cam2")
    assert await other.owner_of("cam2") == "tracker-other"
