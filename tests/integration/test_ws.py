"""The viewer WebSocket, end to end: a real uvicorn on 127.0.0.1, a real redis-server, and the
``websockets`` client. The tests play ingest and the workers by writing the registry, the
frames stream and the dets stream exactly as the bus contract says.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from gateway import protocol
from gateway.app import create_app
from gateway.hub import TRACKS_WAIT_S
from pitchside import registry
from pitchside.schema import (
    WORKERS_GROUP,
    DetsMsg,
    FrameMsg,
    StreamInfo,
    StreamState,
    TracksMsg,
    dets_key,
    frames_key,
    now_ns,
    tracks_key,
)
from pitchside.settings import Settings
from tests.conftest import IMAGES_DIR, require_asset
from tests.integration.scrape import scrape, streams, value
from tests.integration.test_ingest import wait_until

WAIT_S = 10.0  # bound of every wait for something that should come at once
DETECTIONS = [
    {"box": [100.0, 200.5, 140.0, 290.0], "score": 0.91, "cls": 2, "label": "player"},
    {"box": [500.0, 300.0, 508.0, 308.0], "score": 0.55, "cls": 0, "label": "ball"},
]


class Gateway:
    """A gateway app served by uvicorn on a free loopback port."""

    def __init__(self, port: int) -> None:
        self.port = port

    def ws_url(self, sid: str, query: str = "") -> str:
        return f"ws://127.0.0.1:{self.port}/ws/streams/{sid}{query}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def metric(self, name: str, **labels: str) -> float:
        """One sample of /metrics, 0 when absent."""
        async with httpx.AsyncClient(base_url=self.http_url) as client:
            text = (await client.get("/metrics")).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                wanted = all(sample.labels.get(k) == v for k, v in labels.items())
                if sample.name == name and wanted:
                    return sample.value
        return 0.0


@contextlib.asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[Gateway]:
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(WAIT_S):
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn exited before it started")
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Gateway(port)
    finally:
        server.should_exit = True
        async with asyncio.timeout(WAIT_S * 2):
            await task


@pytest.fixture
def ws_settings(settings: Settings) -> Settings:
    return settings.replace(ws_queue=4, control_timeout_s=0.2)


@pytest.fixture
async def gateway(ws_settings: Settings, redis: Redis) -> AsyncIterator[Gateway]:
    async with serve(ws_settings) as gw:
        yield gw


def viewer(url: str, **kw: Any) -> Any:
    """A websockets client: no compression (JPEG does not shrink), no proxy, no size limit."""
    return connect(url, compression=None, proxy=None, max_size=None, open_timeout=WAIT_S, **kw)


def is_stats(message: str | bytes) -> bool:
    return isinstance(message, str) and protocol.decode_text(message).get("event") == "stats"


async def recv(ws: ClientConnection) -> str | bytes:
    """The next message but the stats events (about one a second, whatever else is sent)."""
    async with asyncio.timeout(WAIT_S):
        while is_stats(message := await ws.recv()):
            pass
        return message


async def next_stats(
    ws: ClientConnection, where: Callable[[dict[str, Any]], bool] = lambda _: True
) -> dict[str, Any]:
    """The first stats event for which ``where`` holds, skipping other messages."""
    async with asyncio.timeout(WAIT_S):
        while True:
            message = await ws.recv()
            if is_stats(message) and where(stats := protocol.decode_text(message)):
                return stats


async def recv_json(ws: ClientConnection) -> dict[str, Any]:
    message = await recv(ws)
    assert isinstance(message, str), f"expected a text message, got {len(message)} bytes"
    return protocol.decode_text(message)


async def hello(ws: ClientConnection) -> dict[str, Any]:
    first = await recv_json(ws)
    assert first["event"] == "hello", first
    return first


async def closed(ws: ClientConnection) -> tuple[int, str]:
    """Wait for the server's close frame; returns (code, reason)."""
    with pytest.raises(ConnectionClosed) as info:
        await recv(ws)
    assert info.value.rcvd is not None, "the server must send a close frame"
    return info.value.rcvd.code, info.value.rcvd.reason


async def live_stream(redis: Redis, sid: str, w: int = 1920, h: int = 1080) -> None:
    info = StreamInfo(sid=sid, source=f"/videos/{sid}.mp4", state=StreamState.LIVE)
    info.width, info.height, info.fps = w, h, 25.0
    await registry.put(redis, info)


async def set_state(redis: Redis, sid: str, state: StreamState, error: str | None = None) -> None:
    info = await registry.get(redis, sid)
    info.state, info.error = state, error
    await registry.put(redis, info)


async def publish(
    redis: Redis, sid: str, seq: int, jpeg: bytes, *, w: int = 1920, h: int = 1080,
    frame_id: str | None = None,
) -> DetsMsg:  # fmt: skip
    """Play ingest (one FrameMsg) and a worker (its DetsMsg)."""
    ts_capture = now_ns()
    if frame_id is None:
        frame = FrameMsg(seq, seq * 40_000_000, ts_capture, now_ns(), w, h, jpeg)
        frame_id = (await redis.xadd(frames_key(sid), frame.to_fields(), maxlen=200)).decode()
    timings = {"capture": ts_capture, "publish": now_ns(), "infer_end": now_ns()}
    timings["dets_publish"] = now_ns()
    dets = DetsMsg(seq, frame_id, ts_capture, w, h, "test-model.onnx", DETECTIONS, timings)
    await redis.xadd(dets_key(sid), dets.to_fields())
    return dets


def small_jpeg(seq: int) -> bytes:
    return b"\xff\xd8\xff\xe0" + f"frame {seq}".encode() + b"\xff\xd9"


async def every_other_frame(
    redis: Redis, sid: str, per_s: float = 20.0, jpeg: bytes | None = None
) -> None:
    """Play ingest numbering frames 0, 1, 2 ... and workers detecting only the even ones,
    ``per_s`` detections a second (ingest: twice that), until cancelled."""
    seq = 0
    while True:
        await publish(redis, sid, seq=seq, jpeg=jpeg or small_jpeg(seq))
        seq += 2
        await asyncio.sleep(1 / per_s)  # pacing, as a live source is paced


# ------------------------------------------------------------------ refusals


async def test_ws_closes_4404_with_reason_when_stream_is_unknown(gateway: Gateway) -> None:
    async with viewer(gateway.ws_url("nope")) as ws:
        code, reason = await closed(ws)
    assert (code, reason) == (4404, "unknown stream 'nope'")


async def test_ws_closes_4404_when_sid_is_not_a_valid_id(gateway: Gateway) -> None:
    async with viewer(gateway.ws_url("NOT%20valid")) as ws:
        code, reason = await closed(ws)
    assert code == 4404 and reason.startswith("unknown stream")


async def test_ws_closes_4400_when_frames_parameter_is_invalid(
    gateway: Gateway, redis: Redis
) -> None:
    await live_stream(redis, "cam")
    async with viewer(gateway.ws_url("cam", "?frames=maybe")) as ws:
        code, reason = await closed(ws)
    assert code == 4400
    assert reason == "frames must be 0 or 1, got 'maybe'"


# ------------------------------------------------------------------ frames


async def test_ws_sends_binary_messages_carrying_the_exact_jpeg_written_to_redis(
    gateway: Gateway, redis: Redis
) -> None:
    # given a live stream, a real JPEG and a subscribed viewer
    jpeg = require_asset(IMAGES_DIR / "frame_40cd38_7_6.jpg").read_bytes()
    await live_stream(redis, "cam")
    async with viewer(gateway.ws_url("cam")) as ws:
        first = await hello(ws)
        assert first == {"event": "hello", "sid": "cam", "state": "live", "frames": True, "v": 1}
        # when ingest and a worker publish a frame and its detections
        dets = await publish(redis, "cam", seq=0, jpeg=jpeg)
        message = await recv(ws)
    # then one binary message: 4-byte big-endian length, UTF-8 JSON, the very JPEG bytes
    assert isinstance(message, bytes)
    (n,) = struct.unpack(">I", message[:4])
    meta = protocol.decode_text(message[4 : 4 + n].decode("utf-8"))
    assert message[4 + n :] == jpeg, "the JPEG must be forwarded byte for byte"
    assert meta["sid"] == "cam" and meta["seq"] == 0
    assert (meta["w"], meta["h"]) == (1920, 1080)
    assert meta["ts_capture"] == dets.ts_capture
    assert meta["model"] == "test-model.onnx"
    assert meta["detections"] == DETECTIONS
    timings = meta["timings"]
    assert {k: timings[k] for k in dets.timings} == dets.timings
    assert timings["gateway_send"] >= timings["dets_publish"] >= timings["capture"]
    assert protocol.decode_binary(message) == (meta, jpeg)


async def test_ws_sends_json_text_only_when_frames_is_0(gateway: Gateway, redis: Redis) -> None:
    await live_stream(redis, "cam")
    async with viewer(gateway.ws_url("cam", "?frames=0")) as ws:
        assert (await hello(ws))["frames"] is False
        for seq in range(3):
            await publish(redis, "cam", seq=seq, jpeg=small_jpeg(seq))
        metas = [await recv_json(ws) for _ in range(3)]
    assert [m["seq"] for m in metas] == [0, 1, 2]
    assert all("event" not in m and m["detections"] == DETECTIONS for m in metas)


async def test_ws_sends_only_new_frames_when_viewer_joins_late(
    gateway: Gateway, redis: Redis
) -> None:
    # given detections written before the viewer came
    await live_stream(redis, "cam")
    for seq in range(3):
        await publish(redis, "cam", seq=seq, jpeg=small_jpeg(seq))
    async with viewer(gateway.ws_url("cam", "?frames=0")) as ws:
        await hello(ws)
        # when a new one is written
        await publish(redis, "cam", seq=3, jpeg=small_jpeg(3))
        # then the first message is the new one
        assert (await recv_json(ws))["seq"] == 3


async def test_ws_two_viewers_both_receive_every_message(gateway: Gateway, redis: Redis) -> None:
    await live_stream(redis, "cam")
    async with viewer(gateway.ws_url("cam")) as a, viewer(gateway.ws_url("cam")) as b:
        await hello(a)
        await hello(b)
        for seq in range(3):
            await publish(redis, "cam", seq=seq, jpeg=small_jpeg(seq))
        got_a = [await recv(a) for _ in range(3)]
        got_b = [await recv(b) for _ in range(3)]
    assert got_a == got_b, "both viewers get the same messages, built once"
    decoded = [protocol.decode_binary(m) for m in got_a if isinstance(m, bytes)]
    assert [(meta["seq"], jpeg) for meta, jpeg in decoded] == [(s, small_jpeg(s)) for s in range(3)]


async def test_ws_skips_and_counts_a_frame_already_trimmed(gateway: Gateway, redis: Redis) -> None:
    # given a binary viewer and a text viewer
    await live_stream(redis, "cam")
    async with (
        viewer(gateway.ws_url("cam")) as binary,
        viewer(gateway.ws_url("cam", "?frames=0")) as text,
    ):
        await hello(binary)
        await hello(text)
        # when detections arrive for a frame the bounded frames stream no longer holds
        await publish(redis, "cam", seq=0, jpeg=b"", frame_id="1-0")
        await publish(redis, "cam", seq=1, jpeg=small_jpeg(1))
        # then the binary viewer skips it, the text viewer still gets its detections
        meta, jpeg = protocol.decode_binary(await recv(binary))  # type: ignore[arg-type]
        assert (meta["seq"], jpeg) == (1, small_jpeg(1))
        assert [(await recv_json(text))["seq"] for _ in range(2)] == [0, 1]
    # and the drop is counted
    dropped = await gateway.metric(
        "pitchside_frames_dropped_total", stage="gateway", reason="frame_trimmed", stream="cam"
    )
    assert dropped == 1


def _slow_socket(port: int) -> socket.socket:
    """A connected socket with a tiny receive buffer, so unread messages back up at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(WAIT_S)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


async def test_ws_slow_viewer_loses_its_oldest_messages_without_slowing_a_fast_one(
    gateway: Gateway, ws_settings: Settings, redis: Redis
) -> None:
    # given a fast viewer and a slow one that stops reading after the hello; big frames, so
    # that the slow one's socket buffers fill after a few
    n = 40
    queue = ws_settings.ws_queue
    await live_stream(redis, "cam")
    frames = [os.urandom(512 * 1024) for _ in range(2)]
    slow_sock = _slow_socket(gateway.port)
    async with (
        viewer(gateway.ws_url("cam")) as fast,
        viewer(gateway.ws_url("cam"), sock=slow_sock, max_queue=1) as slow,
    ):
        await hello(fast)
        await hello(slow)
        # when n frames are published, each read by the fast viewer before the next
        fast_seqs = []
        for seq in range(n):
            await publish(redis, "cam", seq=seq, jpeg=frames[seq % 2])
            meta, jpeg = protocol.decode_binary(await recv(fast))  # type: ignore[arg-type]
            assert jpeg == frames[seq % 2]
            fast_seqs.append(meta["seq"])
        # then the fast viewer got every message, in order
        assert fast_seqs == list(range(n)), "a slow viewer must not cost a fast one anything"
        # and the slow one, reading now, gets what its sockets held, then the newest `queue`
        slow_seqs: list[int] = []
        while not slow_seqs or slow_seqs[-1] != n - 1:
            meta, _ = protocol.decode_binary(await recv(slow))  # type: ignore[arg-type]
            slow_seqs.append(meta["seq"])
    assert slow_seqs[-queue:] == list(range(n - queue, n)), slow_seqs
    assert slow_seqs == sorted(slow_seqs)
    assert len(slow_seqs) < n - queue, f"the slow viewer should have lost messages: {slow_seqs}"
    dropped = await gateway.metric(
        "pitchside_frames_dropped_total", stage="gateway", reason="slow_client", stream="cam"
    )
    assert dropped == n - len(slow_seqs), "every message the slow viewer lost is counted"


# ------------------------------------------------------------------ tracked streams


async def track(redis: Redis, sid: str, dets: DetsMsg, track_id: int = 7) -> TracksMsg:
    """Play the stream's tracker: the frame's tracks, ball and possession."""
    box = DETECTIONS[0]["box"]
    tracks = TracksMsg(
        dets=DetsMsg(
            dets.seq, dets.frame_id, dets.ts_capture, dets.w, dets.h, dets.model,
            dets.detections, {**dets.timings, "tracks_publish": now_ns()},
        ),
        tracks=[{"id": track_id, "box": box, "score": 0.9, "cls": 2, "label": "player",
                 "team": "A"}],
        ball={"box": [10.0, 10.0, 14.0, 14.0], "predicted": False, "trail": [[12.0, 12.0]]},
        possession={"team": "A", "player": track_id, "percent": {"A": 100.0, "B": 0.0}},
        teams={"A": "#c03030", "B": "#f0f0f0"}, tracker="tracker-1",
    )  # fmt: skip
    await redis.xadd(tracks_key(sid), tracks.to_fields())
    return tracks


async def frame_metas(ws: ClientConnection, n: int) -> list[dict[str, Any]]:
    metas = []
    for _ in range(n):
        message = await recv(ws)
        assert isinstance(message, str), "a ?frames=0 viewer gets text frame messages"
        metas.append(protocol.decode_text(message))
    return metas


async def test_a_tracked_stream_goes_out_with_its_tracks_and_never_twice_or_backwards(
    gateway: Gateway, redis: Redis
) -> None:
    await live_stream(redis, "trk")
    async with viewer(gateway.ws_url("trk", "?frames=0")) as ws:
        await hello(ws)
        # given frames 0 and 1 detected before any tracker took the stream: bare detections
        d0 = await publish(redis, "trk", seq=0, jpeg=small_jpeg(0))
        d1 = await publish(redis, "trk", seq=1, jpeg=small_jpeg(1))
        first = await frame_metas(ws, 2)
        assert [m["seq"] for m in first] == [0, 1] and "tracks" not in first[0]
        # when the tracker catches up (tracks of 0 and 1, already shown) and goes on with 2
        await track(redis, "trk", d0)
        await track(redis, "trk", d1)
        d2 = await publish(redis, "trk", seq=2, jpeg=small_jpeg(2))
        t2 = await track(redis, "trk", d2)
        # then frame 2 goes out once, with its tracks, ball, possession and team colours
        (meta,) = await frame_metas(ws, 1)
        assert meta["seq"] == 2 and meta["tracks"] == t2.tracks and meta["ball"] == t2.ball
        assert meta["possession"]["percent"] == {"A": 100.0, "B": 0.0}
        assert meta["teams"] == {"A": "#c03030", "B": "#f0f0f0"}
        assert "tracks_publish" in meta["timings"] and meta["detections"] == DETECTIONS
        # and while the stream is tracked, a frame's detections wait for its tracks ...
        d3 = await publish(redis, "trk", seq=3, jpeg=small_jpeg(3))
        await track(redis, "trk", d3)
        (meta,) = await frame_metas(ws, 1)
        assert meta["seq"] == 3 and "tracks" in meta
        # ... but not for ever: when the tracker goes quiet (it died), the frames go out bare
        # after a short wait, and the picture never stops
        d4 = await publish(redis, "trk", seq=4, jpeg=small_jpeg(4))
        waited = asyncio.get_running_loop().time()
        (meta,) = await frame_metas(ws, 1)
        waited = asyncio.get_running_loop().time() - waited
        assert meta["seq"] == d4.seq and "tracks" not in meta, meta
        assert TRACKS_WAIT_S * 0.9 <= waited, waited
        # and when a tracker writes tracks again, the frames carry them again
        d5 = await publish(redis, "trk", seq=5, jpeg=small_jpeg(5))
        await track(redis, "trk", d5, track_id=8)
        (meta,) = await frame_metas(ws, 1)
        assert meta["seq"] == 5 and meta["tracks"][0]["id"] == 8


# ------------------------------------------------------------------ stats


async def test_ws_sends_stats_with_the_stream_figures_about_once_a_second(
    gateway: Gateway, redis: Redis
) -> None:
    # given a viewer of a live stream whose workers detect every other frame ingest publishes
    await live_stream(redis, "cam")
    async with viewer(gateway.ws_url("cam")) as ws:
        await hello(ws)
        producer = asyncio.create_task(every_other_frame(redis, "cam"))
        try:
            # when the frames flow, then stats events come, with what the viewer was shown
            first = await next_stats(ws, lambda s: s["fps_shown"] > 0)
            first_at = asyncio.get_running_loop().time()
            stats = await next_stats(ws)
            gap_s = asyncio.get_running_loop().time() - first_at
        finally:
            producer.cancel()
    assert first["sid"] == stats["sid"] == "cam" and stats["window_s"] == 2.0
    assert gap_s > 0.5, "stats come about once a second, not with every frame"
    # ingest's rate is twice the detections' (the seq numbers skip every other frame)
    assert stats["fps_detected"] > 0
    assert 1.5 <= stats["fps_in"] / stats["fps_detected"] <= 2.1, stats
    assert 0 < stats["fps_shown"] <= stats["fps_detected"] * 1.2, stats
    latency = (stats["latency_p50_ms"], stats["latency_p95_ms"])
    assert latency[0] is not None and latency[1] is not None, stats
    assert 0 < latency[0] <= latency[1] < WAIT_S * 1000, stats
    drops = stats["drops_per_s"]
    assert drops["skipped"] == pytest.approx(stats["fps_in"] - stats["fps_detected"], abs=0.11)
    assert drops["skipped"] > 0 and drops["slow_client"] == drops["frame_trimmed"] == 0.0


async def test_ws_stats_of_a_stream_without_detections_are_zero_with_no_latency(
    gateway: Gateway, redis: Redis
) -> None:
    # given a text viewer of a live stream that no worker detects anything of
    await live_stream(redis, "idle")
    async with viewer(gateway.ws_url("idle", "?frames=0")) as ws:
        await hello(ws)
        # when a stats event comes, then every rate is 0 and the latency null
        stats = await next_stats(ws)
    assert stats == {
        "event": "stats", "sid": "idle", "window_s": 2.0,
        "fps_in": 0.0, "fps_detected": 0.0, "fps_shown": 0.0,
        "latency_p50_ms": None, "latency_p95_ms": None,
        "drops_per_s": {"skipped": 0.0, "slow_client": 0.0, "frame_trimmed": 0.0},
    }  # fmt: skip


async def test_ws_stats_count_the_frames_a_binary_viewer_lost_to_trimming(
    gateway: Gateway, redis: Redis
) -> None:
    # given a binary viewer, and detections of frames the frames stream no longer holds
    await live_stream(redis, "cam")
    async with viewer(gateway.ws_url("cam")) as ws:
        await hello(ws)
        for seq in range(4):
            await publish(redis, "cam", seq=seq, jpeg=b"", frame_id=f"{seq + 1}-0")
        # then its stats say so: detected, not shown, trimmed
        stats = await next_stats(ws, lambda s: s["fps_detected"] > 0)
    assert stats["fps_shown"] == 0.0 and stats["latency_p50_ms"] is None
    assert stats["drops_per_s"]["frame_trimmed"] == stats["fps_detected"] > 0


# ------------------------------------------------------------------ end of a stream


@pytest.mark.parametrize(
    ("state", "error"),
    [
        (StreamState.ENDED, None),
        (StreamState.FAILED, "no frames for 10 s from rtsp://***:***@cam/1"),
        (StreamState.STOPPED, None),
    ],
)
async def test_ws_sends_state_event_and_closes_1000_when_stream_is_over(
    gateway: Gateway, redis: Redis, state: StreamState, error: str | None
) -> None:
    # given a viewer of a live stream
    await live_stream(redis, "cam")
    async with viewer(gateway.ws_url("cam", "?frames=0")) as ws:
        await hello(ws)
        # when ingest records the stream's end
        await set_state(redis, "cam", state, error)
        # then a state event, then a normal close naming the state
        event = await recv_json(ws)
        assert event == {"event": "state", "sid": "cam", "state": state.value, "error": error}
        assert await closed(ws) == (1000, f"stream {state.value}")


async def test_ws_delivers_last_detections_before_closing_when_stream_ended(
    gateway: Gateway, redis: Redis
) -> None:
    await live_stream(redis, "cam")
    async with viewer(gateway.ws_url("cam", "?frames=0")) as ws:
        await hello(ws)
        await set_state(redis, "cam", StreamState.ENDED)
        await publish(redis, "cam", seq=9, jpeg=small_jpeg(9))
        messages = [await recv_json(ws), await recv_json(ws)]
        assert [m.get("seq", m.get("event")) for m in messages] == [9, "state"]
        assert await closed(ws) == (1000, "stream ended")


async def test_ws_sends_state_and_closes_at_once_when_stream_is_already_over(
    gateway: Gateway, redis: Redis
) -> None:
    await live_stream(redis, "cam")
    await set_state(redis, "cam", StreamState.FAILED, "cannot open source")
    async with viewer(gateway.ws_url("cam")) as ws:
        assert await recv_json(ws) == {
            "event": "state", "sid": "cam", "state": "failed", "error": "cannot open source",
        }  # fmt: skip
        assert await closed(ws) == (1000, "stream failed")


async def test_ws_viewers_are_closed_when_stream_is_deleted(gateway: Gateway, redis: Redis) -> None:
    # given a viewer of a live stream whose ingest is gone (no heartbeat: DELETE goes ahead)
    await live_stream(redis, "cam")
    async with viewer(gateway.ws_url("cam", "?frames=0")) as ws:
        await hello(ws)
        # when the stream is deleted through the API
        async with httpx.AsyncClient(base_url=gateway.http_url) as client:
            assert (await client.delete("/api/streams/cam")).status_code == 204
        # then the viewer is told and closed
        event = await recv_json(ws)
        assert (event["event"], event["state"]) == ("state", "deleted")
        assert await closed(ws) == (1000, "stream deleted")


async def _eventually(check: Callable[[], Any], what: str) -> None:
    async with asyncio.timeout(WAIT_S):
        while not await check():
            await asyncio.sleep(0.05)


async def test_ws_reader_stops_when_last_viewer_leaves(gateway: Gateway, redis: Redis) -> None:
    await live_stream(redis, "cam")
    async with viewer(gateway.ws_url("cam")) as a, viewer(gateway.ws_url("cam")) as b:
        await hello(a)
        await hello(b)
        assert await gateway.metric("pitchside_gateway_feeds") == 1, "one reader for both viewers"
        assert await gateway.metric("pitchside_gateway_viewers", stream="cam") == 2

    async def idle() -> bool:
        return await gateway.metric("pitchside_gateway_feeds") == 0 and (
            await gateway.metric("pitchside_gateway_viewers", stream="cam") == 0
        )

    await _eventually(idle, "the reader to stop after the last viewer left")


# ------------------------------------------------------------------ metrics


async def test_gateway_metrics_count_a_stream_frames_messages_viewers_and_latency(
    gateway: Gateway, redis: Redis
) -> None:
    # given one viewer of a live stream
    await live_stream(redis, "cam")
    async with viewer(gateway.ws_url("cam")) as ws:
        await hello(ws)
        # when three frames reach it
        for seq in range(3):
            await publish(redis, "cam", seq=seq, jpeg=small_jpeg(seq))
        for _ in range(3):
            await recv(ws)

        # then the frames, the messages sent and their end-to-end latency are counted
        async def sent() -> list[Any]:
            samples = await scrape(gateway.address)
            done = value(samples, "pitchside_gateway_messages_sent_total", stream="cam")
            return samples if done == 3 else []

        samples = await wait_until(sent, WAIT_S, "three messages counted")
        assert value(samples, "pitchside_gateway_frames_total", stream="cam") == 3
        assert value(samples, "pitchside_gateway_viewers", stream="cam") == 1
        assert value(samples, "pitchside_end_to_end_seconds_count", stream="cam") == 3
        latency_s = value(samples, "pitchside_end_to_end_seconds_sum", stream="cam") or 0
        assert 0 < latency_s < 3 * WAIT_S
        # and so is each stage the frames' stamps tell (capture, publish, infer_end...)
        for stage in ("ingest", "post", "gateway"):
            count = value(samples, "pitchside_frame_stage_seconds_count", stage=stage)
            assert count == 3, stage
        assert value(samples, "pitchside_frame_stage_seconds_count", stage="infer") is None


@pytest.mark.parametrize(
    ("read", "acked", "trim", "lag", "pending"),
    [
        (0, 0, None, 6, 0),  # nothing delivered yet
        (4, 1, None, 2, 3),  # counted from the seq of the last delivered entry
        (6, 6, None, 0, 0),  # all caught up
        (2, 0, 3, 3, 2),  # the last delivered entry was trimmed: every entry left is after it
    ],
)
async def test_gateway_measures_consumer_group_lag_and_pending_at_each_scrape(
    gateway: Gateway, redis: Redis, read: int, acked: int, trim: int | None, lag: int, pending: int
) -> None:
    # given a frames stream of six frames, a workers group and a consumer that read some
    await live_stream(redis, "lagging")
    key = frames_key("lagging")
    for seq in range(6):
        await redis.xadd(key, FrameMsg(seq, 0, now_ns(), now_ns(), 8, 8, b"jpeg").to_fields())
    await redis.xgroup_create(key, WORKERS_GROUP, id="0")
    if read:
        reply = await redis.xreadgroup(WORKERS_GROUP, "w1", {key: ">"}, count=read)
        ids = [entry_id for entry_id, _ in reply[0][1]]
        if acked:
            await redis.xack(key, WORKERS_GROUP, *ids[:acked])
    if trim is not None:
        await redis.xtrim(key, maxlen=trim, approximate=False)
    # when Prometheus scrapes the gateway
    samples = await scrape(gateway.address)
    # then lag and pending of the group are as Redis holds them
    labels = {"stream": "lagging", "group": WORKERS_GROUP}
    assert value(samples, "pitchside_consumer_group_lag", **labels) == lag
    assert value(samples, "pitchside_consumer_group_pending", **labels) == pending


async def test_gateway_forgets_a_stream_series_at_the_first_scrape_after_its_deletion(
    gateway: Gateway, redis: Redis
) -> None:
    # given a stream whose frame was trimmed (a drop) and whose group is measured
    await live_stream(redis, "gone")
    await redis.xgroup_create(frames_key("gone"), WORKERS_GROUP, id="0", mkstream=True)
    async with viewer(gateway.ws_url("gone")) as ws:
        await hello(ws)
        await publish(redis, "gone", seq=0, jpeg=b"", frame_id="1-0")
        await publish(redis, "gone", seq=1, jpeg=small_jpeg(1))
        await recv(ws)
    assert "gone" in streams(await scrape(gateway.address))
    # when it leaves the registry
    await registry.remove(redis, "gone")
    # then the next scrape has no series of it
    assert "gone" not in streams(await scrape(gateway.address))


def test_web_assets_are_local_only() -> None:
    """The viewer must not load anything from elsewhere (no CDN, no web fonts)."""
    web = Path(__file__).resolve().parents[2] / "gateway" / "web"
    for name in ("index.html", "viewer.js", "style.css"):
        text = (web / name).read_text()
        for marker in ("http://", "https://", "//cdn", "@import", "fonts.g"):
            assert marker not in text, f"{name} refers to {marker!r}"


@pytest.mark.parametrize("grafana_url", [None, "http://127.0.0.1:3000"])
async def test_api_config_tells_the_viewer_the_grafana_url_when_set(
    ws_settings: Settings, redis: Redis, grafana_url: str | None
) -> None:
    # given a gateway with or without PITCHSIDE_GRAFANA_URL
    async with serve(ws_settings.replace(grafana_url=grafana_url)) as gw:
        async with httpx.AsyncClient(base_url=gw.http_url) as client:
            # when the viewer asks for its config
            resp = await client.get("/api/config")
            spec = (await client.get("/openapi.json")).json()
    # then it has the URL (null when unset), as the OpenAPI document describes it
    assert resp.status_code == 200
    assert resp.json() == {"grafana_url": grafana_url}
    schema = spec["paths"]["/api/config"]["get"]["responses"]["200"]["content"]
    assert schema["application/json"]["schema"]["$ref"].endswith("/ViewerConfig")
