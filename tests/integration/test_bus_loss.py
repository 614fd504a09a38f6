"""Redis that goes away or loses its data, against a real redis-server: the waits of
:mod:`pitchside.bus`, the bus epoch, an analyse stream publishing again what Redis lost, and
streams whose ingest is gone marked "ingest lost"."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import pytest
from redis.asyncio import Redis

from pitchside import registry
from pitchside.bus import bus_epoch, wait_for_redis
from pitchside.embedded_redis import EmbeddedRedis
from pitchside.errors import StreamNotFoundError
from pitchside.schema import (
    HEALTH_TTL_S,
    WORKERS_GROUP,
    Beat,
    FrameMsg,
    Mode,
    StreamInfo,
    StreamState,
    frames_key,
    health_key,
    now_ns,
)
from tests.conftest import CLIP, require_asset
from tests.integration.test_ingest import (
    CLIP_FRAMES,
    IngestFactory,
    make_ingest_fixture,  # noqa: F401
    wait_until,
)

STEP_S = 30.0


async def lose_everything(redis: Redis) -> None:
    """What a Redis restart without persistence does: every key gone, every client cut off."""
    await redis.flushall()
    await redis.execute_command("CLIENT", "KILL", "TYPE", "normal")


async def test_wait_for_redis_waits_for_a_redis_that_starts_late(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # given a client on a Redis that is not started yet
    server = EmbeddedRedis()
    url = server.prepare()
    client = Redis.from_url(url)
    try:
        with caplog.at_level(logging.WARNING, "pitchside.bus"):
            waiting = asyncio.create_task(wait_for_redis(client, "tester"))

            async def warned() -> bool:
                return "tester lost Redis" in caplog.text

            # when it has found no Redis, and the Redis starts
            await wait_until(warned, STEP_S, "the warning")
            assert not waiting.done()
            await asyncio.to_thread(server.start)
            # then the wait ends, and says so once
            assert await asyncio.wait_for(waiting, STEP_S) is True
        assert caplog.text.count("tester lost Redis") == 1
    finally:
        await client.aclose()
        server.stop()


async def test_wait_for_redis_gives_up_on_stop() -> None:
    client = Redis.from_url("unix:///nonexistent/redis.sock")
    stop = asyncio.Event()
    stop.set()
    assert await wait_for_redis(client, "tester", stop) is False
    await client.aclose()


async def test_the_bus_epoch_stays_until_redis_loses_its_data(redis: Redis) -> None:
    first = await bus_epoch(redis)
    assert await bus_epoch(redis) == first
    await redis.flushall()
    assert await bus_epoch(redis) not in ("", first)


async def test_an_analyse_stream_publishes_again_what_redis_lost_and_nothing_finished(
    make_ingest: IngestFactory,
) -> None:
    # given an analyse stream, the first 12 frames finished and 3 read but not finished
    ingest = await make_ingest(analyse_max_lag=8)
    redis, key = ingest.redis, frames_key("job")
    assert (await ingest.start("job", require_asset(CLIP), Mode.ANALYSE)).status == 201
    await ingest.wait_frames("job", 1)
    finished: list[int] = []
    while len(finished) < 12:
        reply = await redis.xreadgroup(WORKERS_GROUP, "w", {key: ">"}, count=1, block=5000)
        for entry_id, fields in reply[0][1]:
            finished.append(FrameMsg.from_fields(fields).seq)
            await redis.xack(key, WORKERS_GROUP, entry_id)
    held: list[int] = []
    while len(held) < 3:
        reply = await redis.xreadgroup(WORKERS_GROUP, "w", {key: ">"}, count=1, block=5000)
        held += [FrameMsg.from_fields(fields).seq for _, fields in reply[0][1]]
    assert held == [12, 13, 14]
    # when Redis loses every key
    await lose_everything(redis)

    # then the stream comes back: its registry entry, its group, every unfinished frame
    async def regrouped() -> bool:
        return bool(await redis.exists(key)) and bool(await redis.xinfo_groups(key))

    await wait_until(regrouped, STEP_S, "the stream and its group again")
    seen: list[int] = []
    while not seen or seen[-1] < CLIP_FRAMES - 1:
        reply = await redis.xreadgroup(WORKERS_GROUP, "w", {key: ">"}, count=8, block=5000)
        assert reply, f"no more frames after {seen}"
        for entry_id, fields in reply[0][1]:
            seen.append(FrameMsg.from_fields(fields).seq)
            await redis.xack(key, WORKERS_GROUP, entry_id)
    # in order, each once, from the first unfinished one or a little before: the frames
    # finished since ingest's last look at the group (their results are stored once)
    assert finished == list(range(12))
    assert seen == list(range(seen[0], CLIP_FRAMES)), seen
    assert 12 - 2 * 8 <= seen[0] <= 12
    info = await ingest.wait_state("job", StreamState.ENDED, timeout_s=STEP_S)
    assert info.frames == CLIP_FRAMES and info.owner == "ingest-test"
    assert await redis.exists(health_key("ingest", "ingest-test"))


async def test_a_live_stream_goes_on_when_redis_lost_its_data(make_ingest: IngestFactory) -> None:
    # given a live stream publishing
    ingest = await make_ingest()
    assert (await ingest.start("cam", require_asset(CLIP), Mode.LIVE, loop=True)).status == 201
    await ingest.wait_frames("cam", 3)
    # when Redis loses every key, then its entry is written again and frames keep coming
    await lose_everything(ingest.redis)

    async def restored() -> StreamInfo | None:
        with contextlib.suppress(StreamNotFoundError):
            return await ingest.info("cam")
        return None

    info = await wait_until(restored, STEP_S, "the entry written again")
    assert info.state is StreamState.LIVE and info.owner == "ingest-test"
    await ingest.wait_frames("cam", 3, timeout_s=STEP_S)
    assert (await ingest.stop_stream("cam")).ok


async def test_streams_of_an_ingest_that_is_gone_are_marked_and_their_ids_free(
    make_ingest: IngestFactory, redis: Redis
) -> None:
    # given a stream owned by an ingest with no heartbeat, and one whose ingest beats
    lost = StreamInfo(sid="orphan", source="x.mp4", state=StreamState.LIVE, owner="ingest-dead")
    kept = StreamInfo(sid="other", source="y.mp4", state=StreamState.LIVE, owner="ingest-alive")
    await registry.put(redis, lost)
    await registry.put(redis, kept)
    beat = Beat("ingest", "ingest-alive", now_ns())
    await redis.set(health_key("ingest", "ingest-alive"), beat.to_json(), ex=HEALTH_TTL_S * 10)
    # when an ingest service runs
    ingest = await make_ingest()
    # then the first is marked failed, naming its ingest, within a heartbeat TTL and a look
    marked = await ingest.wait_state("orphan", StreamState.FAILED, timeout_s=HEALTH_TTL_S * 3)
    assert marked.error == "ingest lost (ingest-dead)"
    assert (await ingest.info("other")).state is StreamState.LIVE
    # and its id can be started again, here
    assert (await ingest.start("orphan", require_asset(CLIP))).status == 201
    assert (await ingest.info("orphan")).owner == "ingest-test"
    assert (await ingest.start("other", require_asset(CLIP))).status == 409
