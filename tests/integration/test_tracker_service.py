"""The tracker service's leases on a real Redis: trackers share new streams, and a stream
whose tracker died is taken at once by one that sees it, whatever its share."""

from __future__ import annotations

import asyncio
import contextlib

from redis.asyncio import Redis

from pitchside import registry
from pitchside.heartbeat import Heartbeat
from pitchside.schema import StreamInfo, StreamState, tracker_lease_key, tracks_key
from pitchside.settings import Settings
from tracker.service import TrackerService


async def live(redis: Redis, *sids: str) -> None:
    for sid in sids:
        await registry.put(redis, StreamInfo(sid=sid, source="x.mp4", state=StreamState.LIVE))


async def test_new_streams_are_shared_and_an_orphan_is_taken_at_once(
    redis: Redis, settings: Settings
) -> None:
    settings = settings.replace(tracker_lease_s=30.0)
    a = TrackerService(settings, redis, "tracker-a")
    b = TrackerService(settings, redis, "tracker-b")
    await live(redis, "s1", "s2", "s3", "s4")
    async with Heartbeat(redis, "tracker", "tracker-a"), Heartbeat(redis, "tracker", "tracker-b"):
        try:
            # when both look at four new streams, then each takes its fair share, two
            await a.tick()
            await b.tick()
            assert len(a.owned) == len(b.owned) == 2 and not a.owned & b.owned
            # when b dies (its leases expire; its streams have tracks already) while its
            # heartbeat still shows it alive
            orphans = b.owned
            for sid in orphans:
                await redis.xadd(tracks_key(sid), {"v": 1})
                await redis.delete(tracker_lease_key(sid))
            for task in b._tasks.values():  # b is dead: it neither renews nor releases
                task.cancel()
            b._tasks.clear()
            # then a takes them at its next look, past its share
            await a.tick()
            assert a.owned == {"s1", "s2", "s3", "s4"}
            # and a new stream, with no tracks yet, waits for a tracker under its share
            await live(redis, "s5")
            await a.tick()
            assert "s5" not in a.owned
            # and a stream that stops is let go, its lease released
            info = await registry.get(redis, "s1")
            info.state = StreamState.STOPPED
            await registry.put(redis, info)
            await a.tick()
            assert "s1" not in a.owned and await redis.get(tracker_lease_key("s1")) is None
        finally:
            for service in (a, b):
                with contextlib.suppress(asyncio.CancelledError):
                    await service._let_go_all()
