"""Bad input as people send it: oversized and deep JSON, unknown fields, ids with path
characters, bytes that are not UTF-8, wrong content types, and WebSockets that send garbage or
never read. Every answer is a 4xx in the error shape (``{"error", "detail"}``), or the
documented close of that one connection; the gateway keeps serving everyone else.

Unknown fields: the request bodies (``StartRequest``, ``JobRequest``) forbid them, so a field
the API does not know is refused with 422 naming it, never silently ignored.

HTTP cases go through httpx's ASGI transport (the app's lifespan entered for real); those the
HTTP parser sees first (raw bytes in paths and headers) and the WebSocket cases go to a real
uvicorn on a loopback port. Redis is the session's real redis-server.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from gateway import protocol
from gateway.app import create_app
from gateway.limits import MAX_BODY_BYTES
from pitchside.schema import StreamState
from pitchside.settings import Settings
from tests.integration.test_gateway_api import serving
from tests.integration.test_ws import (
    WAIT_S,
    Gateway,
    closed,
    hello,
    live_stream,
    publish,
    recv,
    serve,
    set_state,
    small_jpeg,
    viewer,
)

TRACEBACK = re.compile(r'Traceback \(most recent call last\)|File "/|\w+Error\(')


@pytest.fixture
def bad_settings(settings: Settings) -> Settings:
    return settings.replace(control_timeout_s=0.2, ws_queue=4, upload_max_mb=1, predict_max_mb=1)


@pytest.fixture
async def client(bad_settings: Settings, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(bad_settings)) as c:
        yield c


@pytest.fixture
async def gateway(bad_settings: Settings, redis: Redis) -> AsyncIterator[Gateway]:
    async with serve(bad_settings) as gw:
        yield gw


def refused(resp: httpx.Response, *statuses: int) -> dict[str, Any]:
    """Assert a 4xx among ``statuses`` in the error shape, with no traceback; its body."""
    assert resp.status_code in statuses, f"{resp.status_code}: {resp.text[:300]}"
    assert not TRACEBACK.search(resp.text), resp.text[:300]
    body = resp.json()
    assert set(body) == {"error", "detail"}, body
    assert isinstance(body["detail"], str) and body["detail"], body
    return dict(body)


# ------------------------------------------------------------------ oversized and deep JSON


async def test_oversized_json_body_is_refused_413_before_it_is_read(
    client: httpx.AsyncClient,
) -> None:
    # given a JSON body of 1 MiB, its size declared
    body = json.dumps({"source": "x" * 2**20}).encode()
    # when it is posted
    resp = await client.post(
        "/api/streams", content=body, headers={"content-type": "application/json"}
    )
    # then 413, saying how much is taken
    got = refused(resp, 413)
    assert got["error"] == "content_too_large"
    assert f"{MAX_BODY_BYTES:,} bytes" in got["detail"], got


async def test_oversized_json_body_without_a_length_is_cut_off_at_the_limit(
    client: httpx.AsyncClient,
) -> None:
    # given a body of 64 MiB sent in chunks, with no Content-Length
    chunk = b" " * 8192
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"source": "'
        for _ in range(64 * 2**20 // len(chunk)):
            sent += len(chunk)
            yield chunk

    # when it is posted
    resp = await client.post(
        "/api/jobs", content=endless(), headers={"content-type": "application/json"}
    )
    # then 413, and the gateway stopped reading just past the limit
    assert refused(resp, 413)["error"] == "content_too_large"
    assert sent <= MAX_BODY_BYTES + 2 * len(chunk), f"{sent:,} bytes were read"


@pytest.mark.parametrize(
    "body",
    [
        "[" * 30_000 + "]" * 30_000,
        '{"a":' * 10_000 + "1" + "}" * 10_000,
        '{"source": ' + "[" * 20_000 + "]" * 20_000 + "}",
        '{"upload": ' + '{"a":' * 5_000 + "1" + "}" * 5_001,
    ],
    ids=["lists", "objects", "deep-source", "deep-upload"],
)
@pytest.mark.parametrize("path", ["/api/streams", "/api/jobs"])
async def test_deeply_nested_json_is_refused_4xx_and_the_gateway_carries_on(
    client: httpx.AsyncClient, path: str, body: str
) -> None:
    # given JSON nested thousands deep, under the size limit
    assert len(body) < MAX_BODY_BYTES
    # when it is posted
    resp = await client.post(path, content=body, headers={"content-type": "application/json"})
    # then a 4xx (400: too deep to parse; 422: parsed, not a request), and nothing broke
    refused(resp, 400, 422)
    assert (await client.get("/healthz")).status_code == 200


# ------------------------------------------------------------------ unknown fields


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/streams", {"source": "/videos/a.mp4", "colour": "red"}, "colour"),
        ("/api/streams", {"source": "/videos/a.mp4", "Mode": "live"}, "Mode"),
        ("/api/jobs", {"upload": "0123456789abcdef", "priority": 1}, "priority"),
    ],
)
async def test_unknown_fields_are_refused_422_naming_the_field(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], field: str
) -> None:
    resp = await client.post(path, json=body)
    got = refused(resp, 422)
    assert got["error"] == "invalid_request"
    assert field in got["detail"] and "not permitted" in got["detail"], got


# ------------------------------------------------------------------ ids with path characters

BAD_IDS = [
    "..",
    "../../etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f%2e%2e%2fsecret",
    "a%00b",
    "%00",
    "name%5C..%5Cx",
    "a" * 5000,
    "%FF%FE",
]


@pytest.mark.parametrize("raw_id", BAD_IDS, ids=lambda s: s[:24])
@pytest.mark.parametrize(
    ("method", "template"),
    [
        ("GET", "/api/streams/{}"),
        ("DELETE", "/api/streams/{}"),
        ("GET", "/api/uploads/{}"),
        ("DELETE", "/api/uploads/{}"),
        ("GET", "/api/jobs/{}"),
        ("DELETE", "/api/jobs/{}"),
        ("GET", "/api/jobs/{}/results.csv"),
        ("GET", "/api/jobs/{}/video.mp4"),
        ("GET", "/api/history/{}"),
        ("DELETE", "/whip/{}/0123456789abcdef0123"),
    ],
)
async def test_ids_with_path_characters_are_refused_and_touch_no_file(
    client: httpx.AsyncClient, bad_settings: Settings, tmp_path: Path,
    method: str, template: str, raw_id: str,
) -> None:  # fmt: skip
    # given a file beside the data folder that a traversal would reach
    victim = tmp_path / "passwd"
    victim.write_text("keep me")
    before = sorted(p.name for p in tmp_path.iterdir())
    # when an id with path characters is sent, already percent-encoded as a client would
    resp = await client.request(method, template.format(raw_id))
    # then a 4xx in the error shape (404 when the path no longer names a route at all)
    refused(resp, 404, 405, 422)
    assert len(resp.text) < 2000, "an id must not be echoed back whole"
    # and nothing outside the data folder was touched
    assert victim.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == before


async def test_job_for_an_upload_id_with_path_characters_is_refused_422(
    client: httpx.AsyncClient,
) -> None:
    resp = await client.post("/api/jobs", json={"upload": "../../../../etc/passwd"})
    assert "16 hex digits" in refused(resp, 422)["detail"]


async def test_stream_id_with_path_characters_in_a_body_is_refused_422(
    client: httpx.AsyncClient,
) -> None:
    resp = await client.post("/api/streams", json={"source": "/videos/a.mp4", "id": "../x"})
    assert "stream id" in refused(resp, 422)["detail"]


# ------------------------------------------------------------------ bytes that are not UTF-8


@pytest.mark.parametrize("path", ["/api/streams", "/api/jobs"])
@pytest.mark.parametrize(
    "body",
    [b'{"source": "\xff\xfe/videos/a.mp4"}', b'{"upload": "\xc3\x28"}', b"\xff" * 100],
    ids=["in-source", "bad-sequence", "all-bad"],
)
async def test_json_body_that_is_not_utf8_is_refused_4xx(
    client: httpx.AsyncClient, path: str, body: bytes
) -> None:
    resp = await client.post(path, content=body, headers={"content-type": "application/json"})
    refused(resp, 400, 422)


async def test_sdp_offer_that_is_not_utf8_is_refused_400(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/whip/cam", content=b"v=0\r\n\xff\xfe", headers={"content-type": "application/sdp"}
    )
    assert refused(resp, 400)["error"] == "bad_offer"


async def raw_http(gateway: Gateway, request: bytes) -> tuple[int, bytes]:
    """Send ``request`` as it is on a new connection; the status and body of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(WAIT_S):
            answer = await reader.read()  # every request says Connection: close
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, body


@pytest.mark.parametrize(
    "target",
    [b"/api/streams/\xff\xfe", b"/api/uploads/\xc3\x28", b"/api/jobs/%FF%FE/results.csv"],
    ids=["raw-ff", "raw-bad-sequence", "encoded-ff"],
)
async def test_path_that_is_not_utf8_is_refused_4xx(gateway: Gateway, target: bytes) -> None:
    status, body = await raw_http(
        gateway, b"GET " + target + b" HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"
    )
    assert 400 <= status < 500, (status, body[:300])
    assert not TRACEBACK.search(body.decode("latin-1")), body[:300]


async def test_header_that_is_not_utf8_is_harmless(gateway: Gateway) -> None:
    # given a request whose headers carry bytes that are not UTF-8, the content type included
    request = (
        b"POST /api/streams HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n"
        b"X-Name: \xff\xfe\xc3\x28\r\nContent-Type: application/json; charset=\xff\xfe\r\n"
        b'Content-Length: 2\r\n\r\n{}'
    )  # fmt: skip
    # when it is sent, then a 4xx (the body lacks its source), never a 500
    status, body = await raw_http(gateway, request)
    assert 400 <= status < 500, (status, body[:300])
    assert not TRACEBACK.search(body.decode("latin-1")), body[:300]
    # and a GET with the same header is answered as usual
    status, _ = await raw_http(
        gateway, b"GET /healthz HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nX-N: \xff\r\n\r\n"
    )
    assert status == 200


# ------------------------------------------------------------------ wrong content types


@pytest.mark.parametrize(
    ("path", "content_type", "body", "statuses"),
    [
        ("/api/streams", "text/plain", b'{"source": "/videos/a.mp4"}', (415, 422)),
        ("/api/streams", "application/x-www-form-urlencoded", b"source=%2Fa.mp4", (415, 422)),
        ("/api/jobs", "multipart/form-data; boundary=x", b"--x--\r\n", (415, 422)),
        ("/api/predict", "application/json", b"{}", (415,)),
        ("/api/classify", "application/json", b"{}", (415,)),
        ("/api/uploads", "image/jpeg", b"\xff\xd8\xff", (415,)),
        ("/api/uploads", "multipart/form-data", b"no boundary", (400, 415)),
        ("/whip/cam", "application/json", b"{}", (415,)),
        ("/whip/cam", "", b"v=0", (415,)),
    ],
)
async def test_wrong_content_type_is_refused_4xx(
    client: httpx.AsyncClient, path: str, content_type: str, body: bytes, statuses: tuple[int]
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    resp = await client.post(path, content=body, headers=headers)
    refused(resp, *statuses)


# ------------------------------------------------------------------ WebSockets


async def test_ws_garbage_messages_are_ignored_and_the_viewer_still_served(
    gateway: Gateway, redis: Redis
) -> None:
    # given a live stream, a quiet viewer and one that sends garbage after its hello
    await live_stream(redis, "cam")
    async with viewer(gateway.ws_url("cam")) as quiet, viewer(gateway.ws_url("cam")) as noisy:
        await hello(quiet)
        await hello(noisy)
        # when the noisy one sends text that is no JSON, random binary, and a 1 MiB message
        await noisy.send("{not json \x00 \ufffd")
        await noisy.send(os.urandom(4096))
        await noisy.send(b"\x00" * 2**20)
        await noisy.send(json.dumps({"event": "subscribe", "sid": "../other"}))
        # then both still get every frame published after it
        for seq in range(3):
            await publish(redis, "cam", seq=seq, jpeg=small_jpeg(seq))
            for ws in (quiet, noisy):
                meta, _ = protocol.decode_binary(await recv(ws))  # type: ignore[arg-type]
                assert meta["seq"] == seq


WS_KEY = base64.b64encode(b"pitchside-tests!").decode()


async def ws_handshake(gateway: Gateway, sid: str, sock: socket.socket | None = None) -> Any:
    """A WebSocket opened by hand; (reader, writer) after the 101."""
    if sock is None:
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    else:
        reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(
        f"GET /ws/streams/{sid} HTTP/1.1\r\nHost: {gateway.address}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {WS_KEY}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    async with asyncio.timeout(WAIT_S):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def close_code(reader: asyncio.StreamReader) -> int | None:
    """Read server frames until its close frame (its code) or the end of the connection."""
    async with asyncio.timeout(WAIT_S):
        while True:
            try:
                first, second = await reader.readexactly(2)
            except asyncio.IncompleteReadError:
                return None
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await reader.readexactly(8))
            payload = await reader.readexactly(length)
            if first & 0x0F == 0x8:
                return int(struct.unpack("!H", payload[:2])[0]) if len(payload) >= 2 else None


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x81\x05hello",  # an unmasked text frame: clients must mask theirs
        b"\x8f\x80\x00\x00\x00\x00",  # a masked frame with a reserved opcode
        b"\xf1\x80\x00\x00\x00\x00",  # reserved bits set
        b"\x81\x84abcd" + bytes(c ^ k for c, k in zip(b"\xff\xfe\xfd\xfc", b"abcd", strict=True)),
    ],
    ids=["unmasked", "reserved-opcode", "reserved-bits", "text-not-utf8"],
)
async def test_ws_protocol_garbage_closes_that_socket_alone(
    gateway: Gateway, redis: Redis, garbage: bytes
) -> None:
    # given a live stream, a well-behaved viewer and a hand-made WebSocket
    await live_stream(redis, "cam")
    async with viewer(gateway.ws_url("cam")) as good:
        await hello(good)
        reader, writer = await ws_handshake(gateway, "cam")
        try:
            # when the hand-made one sends bytes that break the WebSocket protocol
            writer.write(garbage)
            await writer.drain()
            # then the server closes it, with a protocol (1002) or data (1007) error when it
            # says why at all
            assert await close_code(reader) in (1002, 1007, None)
        finally:
            writer.close()
        # and the good viewer is still served
        await publish(redis, "cam", seq=0, jpeg=small_jpeg(0))
        meta, _ = protocol.decode_binary(await recv(good))  # type: ignore[arg-type]
        assert meta["seq"] == 0


def _tiny_socket(port: int) -> socket.socket:
    """A connected socket with a tiny receive buffer, so unread messages back up at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(WAIT_S)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


async def test_ws_viewer_that_never_reads_loses_messages_and_costs_others_nothing(
    gateway: Gateway, bad_settings: Settings, redis: Redis
) -> None:
    # given a live stream, a viewer that reads and one that never reads a byte after the 101
    n, frame_bytes = 40, 512 * 1024
    await live_stream(redis, "cam")
    frames = [os.urandom(frame_bytes) for _ in range(2)]
    async with viewer(gateway.ws_url("cam")) as fast:
        await hello(fast)
        _, writer = await ws_handshake(gateway, "cam", _tiny_socket(gateway.port))
        try:
            assert await _viewers(gateway, "cam") == 2
            # when n big frames are published, each read by the fast viewer before the next
            loop = asyncio.get_running_loop()
            started = loop.time()
            for seq in range(n):
                await publish(redis, "cam", seq=seq, jpeg=frames[seq % 2])
                meta, jpeg = protocol.decode_binary(await recv(fast))  # type: ignore[arg-type]
                assert meta["seq"] == seq and jpeg == frames[seq % 2]
            elapsed = loop.time() - started
            # then the fast viewer got every frame, without waiting on the other (each recv is
            # bounded by WAIT_S; the whole run by a few seconds)
            assert elapsed < WAIT_S, f"{n} frames took {elapsed:.1f} s"
            # and the gateway kept at most its queue (ws_queue) and what the sockets' buffers
            # hold (4 MiB on loopback at most) for the reader that never reads: the rest it
            # dropped and counted, rather than holding n frames for it
            held_max = bad_settings.ws_queue + (4 * 2**20) // frame_bytes + 4
            dropped = await gateway.metric(
                "pitchside_frames_dropped_total", stage="gateway", reason="slow_client",
                stream="cam",
            )  # fmt: skip
            assert dropped >= n - held_max, f"only {dropped:.0f} of {n} dropped"
        finally:
            writer.close()
        # and when it goes, the gateway forgets it
        await _until(lambda: _viewers(gateway, "cam"), 1, "the gone viewer is forgotten")


async def test_ws_stream_end_closes_readers_even_beside_one_that_never_reads(
    gateway: Gateway, redis: Redis
) -> None:
    # given a stream with a reading viewer and one that never reads, its buffers full
    await live_stream(redis, "cam")
    async with viewer(gateway.ws_url("cam")) as fast:
        await hello(fast)
        _, writer = await ws_handshake(gateway, "cam", _tiny_socket(gateway.port))
        try:
            big = os.urandom(512 * 1024)
            for seq in range(12):
                await publish(redis, "cam", seq=seq, jpeg=big)
                await recv(fast)
            # when the stream ends
            await set_state(redis, "cam", StreamState.ENDED)
            # then the reading viewer gets its state event and a normal close at once
            event = protocol.decode_text(await recv(fast))
            assert event["event"] == "state" and event["state"] == "ended", event
            assert (await closed(fast))[0] == 1000
        finally:
            writer.close()


async def _viewers(gateway: Gateway, sid: str) -> float:
    return await gateway.metric("pitchside_gateway_viewers", stream=sid)


async def _until(read: Any, want: float, what: str) -> None:
    async with asyncio.timeout(WAIT_S):
        while (got := await read()) != want:
            await asyncio.sleep(0.05)
    assert got == want, what


async def test_ws_viewer_that_never_reads_is_dropped_within_a_bound(
    gateway: Gateway, redis: Redis
) -> None:
    # given a live stream and a viewer that never reads, its socket buffers full
    await live_stream(redis, "cam")
    async with viewer(gateway.ws_url("cam")) as fast:
        await hello(fast)
        _, writer = await ws_handshake(gateway, "cam", _tiny_socket(gateway.port))
        try:
            big = os.urandom(512 * 1024)
            for seq in range(12):
                await publish(redis, "cam", seq=seq, jpeg=big)
                await recv(fast)
            # when the stream ends and the reading viewer has gone
            await set_state(redis, "cam", StreamState.ENDED)
            await recv(fast)
            await closed(fast)
            # then the gateway lets go of the one that never reads too, within WAIT_S
            with contextlib.suppress(TimeoutError):
                await _until(lambda: _viewers(gateway, "cam"), 0, "never-reader dropped")
            assert await _viewers(gateway, "cam") == 0, "the never-reading viewer is held"
        finally:
            writer.close()
