"""The gateway's REST API against a real redis-server, with a fake ingest answering commands.

The app runs in-process through httpx's ASGI transport, its lifespan entered for real. The
fake ingest plays ingest's part of the contract: it reads ``pitchside:control``, writes the
registry and answers on ``reply_key(request_id)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from gateway.app import create_app
from pitchside import registry
from pitchside.redact import redact_url
from pitchside.redis_client import connect
from pitchside.schema import (
    CONTROL_KEY,
    REPLY_TTL_S,
    Command,
    ControlMsg,
    ControlReply,
    DetsMsg,
    FrameMsg,
    Mode,
    StreamInfo,
    StreamState,
    dets_key,
    frames_key,
    health_key,
    reply_key,
)
from pitchside.settings import Settings

Decide = Callable[[ControlMsg], Awaitable[ControlReply]]


class FakeIngest:
    """Answers control commands as ingest would; ``decide`` picks the answer."""

    def __init__(self, redis: Redis, decide: Decide | None = None) -> None:
        self.redis = redis
        self.decide = decide or self.accept
        self.received: list[ControlMsg] = []

    async def accept(self, msg: ControlMsg) -> ControlReply:
        if msg.cmd is Command.START:
            info = StreamInfo(
                sid=msg.sid,
                source=redact_url(msg.source),
                mode=msg.mode,
                loop=msg.loop,
                state=StreamState.LIVE,
            )
            await registry.put(self.redis, info)
        else:
            info = await registry.get(self.redis, msg.sid)
            info.state = StreamState.STOPPED
            await registry.put(self.redis, info)
        return ControlReply(ok=True)

    async def run(self) -> None:
        last_id: bytes = b"0-0"
        while True:
            batch = await self.redis.xread({CONTROL_KEY: last_id}, block=1000)
            for _key, entries in batch:
                for entry_id, fields in entries:
                    last_id = entry_id
                    msg = ControlMsg.from_fields(fields)
                    self.received.append(msg)
                    reply = await self.decide(msg)
                    await self.redis.lpush(reply_key(msg.request_id), reply.to_json())
                    await self.redis.expire(reply_key(msg.request_id), REPLY_TTL_S)


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``app`` with its lifespan entered and its state in every request's scope."""
    async with app.router.lifespan_context(app) as state:

        async def with_state(scope: Any, receive: Any, send: Any) -> None:
            scope["state"] = dict(state)  # what uvicorn does with a lifespan's state
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=with_state)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


@pytest.fixture
def gateway_settings(settings: Settings) -> Settings:
    return settings.replace(control_timeout_s=5.0)


@pytest.fixture
async def client(gateway_settings: Settings, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(gateway_settings)) as c:
        yield c


@pytest.fixture
async def ingest(redis_url: str, redis: Redis) -> AsyncIterator[FakeIngest]:
    # Its own client, made as every service makes one (no socket timeout: redis-py's timed
    # writes can swallow a cancellation on Python 3.11, and this task is cancelled).
    client = connect(redis_url, "fake-ingest")
    fake = FakeIngest(client)
    task = asyncio.create_task(fake.run())
    try:
        yield fake
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.aclose()


def _info(sid: str, state: StreamState = StreamState.LIVE, **kw: Any) -> StreamInfo:
    return StreamInfo(sid=sid, source=f"/videos/{sid}.mp4", state=state, **kw)


# ------------------------------------------------------------------ GET


async def test_list_streams_returns_every_registry_entry(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    # given two streams in the registry
    await registry.put(redis, _info("a", fps=25.0, width=848, height=478))
    await registry.put(redis, _info("b", StreamState.ENDED))
    # when listed
    resp = await client.get("/api/streams")
    # then both come back as StreamInfo dicts
    assert resp.status_code == 200
    streams = {s["sid"]: s for s in resp.json()["streams"]}
    assert set(streams) == {"a", "b"}
    assert streams["a"]["state"] == "live" and streams["a"]["fps"] == 25.0
    assert streams["a"]["width"] == 848 and streams["a"]["mode"] == "live"
    assert streams["b"]["state"] == "ended"


async def test_list_streams_is_empty_when_registry_is_empty(client: httpx.AsyncClient) -> None:
    resp = await client.get("/api/streams")
    assert resp.status_code == 200
    assert resp.json() == {"streams": []}


async def test_get_stream_returns_its_entry(client: httpx.AsyncClient, redis: Redis) -> None:
    await registry.put(redis, _info("cam-1", frames=12))
    resp = await client.get("/api/streams/cam-1")
    assert resp.status_code == 200
    body = resp.json()
    assert body["sid"] == "cam-1" and body["frames"] == 12 and body["source"] == "/videos/cam-1.mp4"


async def test_get_stream_answers_404_when_sid_is_unknown(client: httpx.AsyncClient) -> None:
    resp = await client.get("/api/streams/nope")
    assert resp.status_code == 404
    assert resp.json() == {"error": "stream_not_found", "detail": "no stream with id 'nope'"}


async def test_unknown_route_answers_404_in_the_error_shape(client: httpx.AsyncClient) -> None:
    resp = await client.get("/api/nothing-here")
    assert resp.status_code == 404
    assert resp.json()["error"] == "not_found"


# ------------------------------------------------------------------ POST


async def test_start_stream_answers_201_with_location_when_ingest_accepts(
    client: httpx.AsyncClient, ingest: FakeIngest
) -> None:
    # given an ingest that accepts
    # when a stream is started
    body = {"source": "/videos/match.mp4", "id": "match-1", "mode": "analyse", "loop": True}
    resp = await client.post("/api/streams", json=body)
    # then 201, Location, and the registry entry ingest wrote
    assert resp.status_code == 201, resp.text
    assert resp.headers["location"] == "/api/streams/match-1"
    info = resp.json()
    assert (info["sid"], info["state"], info["mode"], info["loop"]) == (
        "match-1", "live", "analyse", True,
    )  # fmt: skip
    # and ingest got the command as the contract says
    (msg,) = ingest.received
    assert msg.cmd is Command.START and msg.sid == "match-1"
    assert msg.source == "/videos/match.mp4" and msg.mode is Mode.ANALYSE and msg.loop is True


@pytest.mark.parametrize(("given", "sent"), [({}, ""), ({"rtsp_transport": "udp"}, "udp")])
async def test_start_stream_passes_the_rtsp_transport_on_to_ingest(
    client: httpx.AsyncClient, ingest: FakeIngest, given: dict[str, str], sent: str
) -> None:
    # given a camera started with or without a transport of its own
    body = {"source": "rtsp://cam.local/live", "id": "cam-1", **given}
    # when the stream is started, then ingest gets it ("" is ingest's default)
    resp = await client.post("/api/streams", json=body)
    assert resp.status_code == 201, resp.text
    assert ingest.received[0].transport == sent


async def test_start_stream_refuses_an_unknown_rtsp_transport_with_422(
    client: httpx.AsyncClient, ingest: FakeIngest
) -> None:
    body = {"source": "rtsp://cam.local/live", "rtsp_transport": "sctp"}
    resp = await client.post("/api/streams", json=body)
    assert resp.status_code == 422 and "rtsp_transport" in resp.json()["detail"], resp.text
    assert ingest.received == [], "nothing reached ingest"


async def test_start_stream_generates_a_12_hex_id_when_none_is_given(
    client: httpx.AsyncClient, ingest: FakeIngest
) -> None:
    resp = await client.post("/api/streams", json={"source": "/videos/a.mp4"})
    assert resp.status_code == 201, resp.text
    sid = resp.json()["sid"]
    assert len(sid) == 12 and all(c in "0123456789abcdef" for c in sid), sid
    assert resp.headers["location"] == f"/api/streams/{sid}"
    assert ingest.received[0].mode is Mode.LIVE and ingest.received[0].loop is False


async def test_start_stream_answers_ingest_status_when_ingest_refuses(
    client: httpx.AsyncClient, redis: Redis, ingest: FakeIngest
) -> None:
    # given an ingest that cannot open the source: it records FAILED and answers 422
    async def refuse(msg: ControlMsg) -> ControlReply:
        error = "cannot open /videos/missing.mp4: no such file"
        await registry.put(redis, _info(msg.sid, StreamState.FAILED, error=error))
        return ControlReply(ok=False, error=error, status=422, code="bad_source")

    ingest.decide = refuse
    # when started
    resp = await client.post("/api/streams", json={"source": "/videos/missing.mp4", "id": "bad"})
    # then the client sees ingest's status and message
    assert resp.status_code == 422
    assert resp.json() == {
        "error": "bad_source",
        "detail": "cannot open /videos/missing.mp4: no such file",
    }
    # and the failed entry stays visible
    got = await client.get("/api/streams/bad")
    assert got.status_code == 200
    assert got.json()["state"] == "failed"
    assert got.json()["error"] == "cannot open /videos/missing.mp4: no such file"


async def test_start_stream_answers_409_when_ingest_says_it_exists(
    client: httpx.AsyncClient, ingest: FakeIngest
) -> None:
    async def exists(msg: ControlMsg) -> ControlReply:
        return ControlReply(
            ok=False, error="stream 'dup' is already running", status=409, code="stream_exists"
        )

    ingest.decide = exists
    resp = await client.post("/api/streams", json={"source": "/v.mp4", "id": "dup"})
    assert resp.status_code == 409
    assert resp.json() == {"error": "stream_exists", "detail": "stream 'dup' is already running"}


async def test_start_stream_answers_409_without_asking_ingest_when_stream_is_active(
    client: httpx.AsyncClient, redis: Redis, ingest: FakeIngest
) -> None:
    await registry.put(redis, _info("busy"))
    resp = await client.post("/api/streams", json={"source": "/v.mp4", "id": "busy"})
    assert resp.status_code == 409
    assert resp.json()["error"] == "stream_exists"
    assert ingest.received == []


async def test_start_stream_answers_503_when_no_ingest_answers(
    settings: Settings, redis: Redis
) -> None:
    # given no ingest at all and a short control timeout
    app = create_app(settings.replace(control_timeout_s=0.2))
    async with serving(app) as client:
        # when a stream is started
        resp = await client.post("/api/streams", json={"source": "/videos/a.mp4", "id": "x"})
    # then 503 says what happened
    assert resp.status_code == 503
    assert resp.json() == {
        "error": "ingest_unavailable",
        "detail": "no ingest service answered within 0.2 s",
    }
    # and the command was sent all the same
    assert await redis.xlen(CONTROL_KEY) == 1


@pytest.mark.parametrize("sid", ["Upper", "-dash-first", "a b", "x" * 64, "", "a/b"])
async def test_start_stream_answers_422_when_id_is_invalid(
    client: httpx.AsyncClient, redis: Redis, sid: str
) -> None:
    resp = await client.post("/api/streams", json={"source": "/v.mp4", "id": sid})
    assert resp.status_code == 422
    body = resp.json()
    assert body["error"] == "invalid_request"
    assert "stream id must be" in body["detail"]
    assert await redis.exists(CONTROL_KEY) == 0, "nothing is sent for an invalid request"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({}, "source: Field required"),
        ({"source": ""}, "source: String should have at least 1 character"),
        ({"source": "x" * 2049}, "source: String should have at most 2048 characters"),
        ({"source": "   "}, "source must be a file path or a URL"),
        ({"source": "/v.mp4", "mode": "fast"}, "mode: Input should be 'live' or 'analyse'"),
        ({"source": "/v.mp4", "sid": "a"}, "sid: Extra inputs are not permitted"),
    ],
)
async def test_start_stream_answers_422_in_error_shape_when_body_is_invalid(
    client: httpx.AsyncClient, body: dict[str, Any], detail: str
) -> None:
    resp = await client.post("/api/streams", json=body)
    assert resp.status_code == 422
    got = resp.json()
    assert set(got) == {"error", "detail"}
    assert got["error"] == "invalid_request"
    assert detail in got["detail"], got["detail"]


async def test_start_stream_answers_422_when_body_is_not_json(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/api/streams", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert resp.status_code == 422
    assert resp.json()["error"] == "invalid_request"


async def test_start_stream_never_logs_source_credentials(
    client: httpx.AsyncClient, ingest: FakeIngest, caplog: pytest.LogCaptureFixture
) -> None:
    # given a camera URL with a password
    source = "rtsp://admin:hunter2@10.0.0.7:554/stream1"
    # when started, with every log captured
    with caplog.at_level(logging.DEBUG):
        resp = await client.post("/api/streams", json={"source": source, "id": "cam"})
    # then the password never reached a log or the answer, and ingest got the real URL
    assert resp.status_code == 201
    assert "hunter2" not in caplog.text
    assert "rtsp://***:***@10.0.0.7:554/stream1" in caplog.text
    assert "hunter2" not in resp.text
    assert ingest.received[0].source == source


# ------------------------------------------------------------------ DELETE


async def test_delete_stream_stops_it_removes_it_and_its_data(
    client: httpx.AsyncClient, redis: Redis, ingest: FakeIngest
) -> None:
    # given a live stream with frames and detections on the bus
    resp = await client.post("/api/streams", json={"source": "/v.mp4", "id": "gone"})
    assert resp.status_code == 201
    frame = FrameMsg(seq=0, pts_ns=0, ts_capture=1, ts_publish=2, w=4, h=4, img=b"\xff\xd8")
    await redis.xadd(frames_key("gone"), frame.to_fields())
    dets = DetsMsg(0, "0-1", 1, 4, 4, "m", [], {})
    await redis.xadd(dets_key("gone"), dets.to_fields())
    # when deleted
    resp = await client.delete("/api/streams/gone")
    # then 204, ingest was told to stop, and nothing of the stream is left
    assert resp.status_code == 204
    assert resp.content == b""
    assert [m.cmd for m in ingest.received] == [Command.START, Command.STOP]
    assert (await client.get("/api/streams/gone")).status_code == 404
    assert await redis.exists(frames_key("gone"), dets_key("gone")) == 0


async def test_delete_stream_does_not_ask_ingest_when_stream_is_over(
    client: httpx.AsyncClient, redis: Redis, ingest: FakeIngest
) -> None:
    await registry.put(redis, _info("done", StreamState.ENDED))
    resp = await client.delete("/api/streams/done")
    assert resp.status_code == 204
    assert ingest.received == []
    assert (await client.delete("/api/streams/done")).status_code == 404


async def test_delete_stream_answers_404_when_sid_is_unknown(client: httpx.AsyncClient) -> None:
    resp = await client.delete("/api/streams/nope")
    assert resp.status_code == 404
    assert resp.json()["error"] == "stream_not_found"


async def test_delete_stream_answers_503_when_a_live_ingest_does_not_answer(
    settings: Settings, redis: Redis
) -> None:
    # given an active stream and an ingest heartbeat, but nobody reading commands
    await registry.put(redis, _info("stuck"))
    await redis.set(health_key("ingest", "i1"), "1", ex=60)
    async with serving(create_app(settings.replace(control_timeout_s=0.2))) as client:
        resp = await client.delete("/api/streams/stuck")
    # then it is kept: the stream may still run
    assert resp.status_code == 503
    assert resp.json()["error"] == "ingest_unavailable"
    assert await registry.get(redis, "stuck")


async def test_delete_stream_removes_it_when_no_ingest_is_alive(
    settings: Settings, redis: Redis
) -> None:
    # given an active stream left behind by an ingest that died (no heartbeat)
    await registry.put(redis, _info("orphan"))
    async with serving(create_app(settings.replace(control_timeout_s=0.2))) as client:
        resp = await client.delete("/api/streams/orphan")
        assert resp.status_code == 204
        assert (await client.get("/api/streams/orphan")).status_code == 404


# ------------------------------------------------------------------ health, metrics, pages


async def test_healthz_answers_ok(client: httpx.AsyncClient) -> None:
    resp = await client.get("/healthz")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}


async def test_readyz_answers_503_naming_what_is_missing_when_no_heartbeats(
    client: httpx.AsyncClient,
) -> None:
    resp = await client.get("/readyz")
    assert resp.status_code == 503
    body = resp.json()
    assert body["status"] == "not_ready"
    assert (body["ingest"], body["workers"]) == (0, 0)
    assert "no ingest heartbeat" in body["detail"] and "no worker heartbeat" in body["detail"]


async def test_readyz_answers_503_when_only_workers_are_alive(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    await redis.set(health_key("worker", "w1"), "1", ex=60)
    resp = await client.get("/readyz")
    assert resp.status_code == 503
    assert "no ingest heartbeat" in resp.json()["detail"]
    assert "worker" not in resp.json()["detail"]


async def test_readyz_answers_ready_with_counts_when_ingest_and_workers_beat(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    await redis.set(health_key("ingest", "i1"), "1", ex=60)
    for w in ("w1", "w2"):
        await redis.set(health_key("worker", w), "1", ex=60)
    resp = await client.get("/readyz")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ready", "ingest": 1, "workers": 2}


async def test_metrics_exposes_prometheus_text(client: httpx.AsyncClient) -> None:
    resp = await client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    assert "# TYPE pitchside_gateway_viewers gauge" in resp.text
    assert "# TYPE pitchside_frames_dropped_total counter" in resp.text


async def test_index_serves_the_viewer(client: httpx.AsyncClient) -> None:
    resp = await client.get("/")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert 'id="view"' in resp.text and "/static/viewer.js" in resp.text
    js = await client.get("/static/viewer.js")
    assert js.status_code == 200 and "createImageBitmap" in js.text
    assert (await client.get("/static/style.css")).status_code == 200


async def test_openapi_lists_every_route(client: httpx.AsyncClient) -> None:
    resp = await client.get("/openapi.json")
    assert resp.status_code == 200
    paths = resp.json()["paths"]
    assert set(paths["/api/streams"]) == {"get", "post"}
    assert set(paths["/api/streams/{sid}"]) == {"get", "delete"}
    assert {"/healthz", "/readyz", "/metrics"} <= set(paths)


async def test_docs_page_loads_nothing_from_elsewhere(client: httpx.AsyncClient) -> None:
    resp = await client.get("/docs")
    assert resp.status_code == 200
    assert "/api/streams" in resp.text
    assert "http://" not in resp.text and "https://" not in resp.text
