"""A viewer whose stream's registry entry vanishes, as when Redis loses its data: kept while
ingest writes the entry again, closed as deleted when it stays away (``RESTORE_GRACE_S``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from gateway import hub
from pitchside.schema import STREAMS_KEY
from pitchside.settings import Settings
from tests.integration.test_ws import (
    Gateway,
    closed,
    every_other_frame,
    hello,
    live_stream,
    recv_json,
    serve,
    viewer,
)

FRAMES = 15  # at 20 a second: longer than the hub's registry poll (REGISTRY_POLL_S)


@pytest.fixture(name="gateway")
async def gateway_fixture(settings: Settings, redis: Redis) -> AsyncIterator[Gateway]:
    async with serve(settings.replace(ws_queue=4, control_timeout_s=0.2)) as running:
        yield running


async def test_a_viewer_stays_while_its_entry_is_away_for_less_than_the_grace(
    gateway: Gateway, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub, "RESTORE_GRACE_S", 60.0)
    await live_stream(redis, "cam")
    playing = asyncio.create_task(every_other_frame(redis, "cam"))
    try:
        async with viewer(gateway.ws_url("cam", "?frames=0")) as ws:
            await hello(ws)
            # when the registry entry is gone while frames keep coming
            await redis.hdel(STREAMS_KEY, "cam")
            got = [await recv_json(ws) for _ in range(FRAMES)]
            # then the viewer keeps getting them, and after the entry is back too
            assert all(m.get("event") != "state" for m in got), got
            await live_stream(redis, "cam")
            assert "seq" in await recv_json(ws)
    finally:
        playing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await playing


async def test_a_viewer_is_closed_once_its_entry_stays_away_past_the_grace(
    gateway: Gateway, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub, "RESTORE_GRACE_S", 0.2)
    await live_stream(redis, "cam")
    async with viewer(gateway.ws_url("cam", "?frames=0")) as ws:
        await hello(ws)
        await redis.hdel(STREAMS_KEY, "cam")
        event = await recv_json(ws)
        assert (event["event"], event["state"]) == ("state", "deleted")
        assert await closed(ws) == (1000, "stream deleted")
