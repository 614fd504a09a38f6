"""The real clip through the real stack: ingest -> redis-server -> worker -> gateway -> a
WebSocket client that receives frames with detections of people on a football pitch."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import cv2
import httpx
import numpy as np
import pytest
import websockets

from bench.publisher import Publisher
from gateway.protocol import decode_binary
from ingest.sources.webrtc import SHOWN, restrict_host_addresses
from tests.conftest import CLIP
from tests.integration.conftest import Stack
from tests.integration.rtsp import RtspServer, rtsp_server_fixture  # noqa: F401

pytestmark = pytest.mark.slow

WANT_FRAMES = 25


async def collect(url: str, want: int, timeout_s: float = 60.0) -> list[tuple[dict, bytes]]:
    frames: list[tuple[dict, bytes]] = []
    async with asyncio.timeout(timeout_s), websockets.connect(url, max_size=None) as ws:
        while len(frames) < want:
            message = await ws.recv()
            if isinstance(message, bytes):
                frames.append(decode_binary(message))
    return frames


async def test_clip_flows_from_ingest_through_worker_to_websocket(stack: Stack):
    # given the real clip started as a looping live stream
    response = await asyncio.to_thread(stack.start_stream, "e2e", CLIP, True)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == "/api/streams/e2e"
    # when a viewer connects
    frames = await collect(f"{stack.ws_url}/ws/streams/e2e", WANT_FRAMES)
    # then each message carries the JPEG ingest made and that frame's detections
    seqs = [meta["seq"] for meta, _ in frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
    people_per_frame = []
    for meta, jpeg in frames:
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape[:2] == (meta["h"], meta["w"]) == (478, 848)
        assert meta["sid"] == "e2e" and meta["model"] == "yolov8n_int8.onnx"
        for det in meta["detections"]:
            x1, y1, x2, y2 = det["box"]
            assert 0 <= x1 < x2 <= 848 and 0 <= y1 < y2 <= 478, det
            assert 0.25 <= det["score"] <= 1.0
        people_per_frame.append(sum(d["label"] == "person" for d in meta["detections"]))
        stamps = meta["timings"]
        assert (
            stamps["capture"]
            <= stamps["infer_start"]
            <= stamps["infer_end"]
            <= stamps["gateway_send"]
        )
    # and people are found on the pitch in every frame, several per frame
    assert min(people_per_frame) >= 1, people_per_frame
    assert np.median(people_per_frame) >= 5, people_per_frame
    # and the registry shows the stream live, with the clip's size and rate
    info = httpx.get(f"{stack.base_url}/api/streams/e2e", timeout=5).json()
    assert info["state"] == "live" and (info["width"], info["height"]) == (848, 478)
    assert 24 < info["fps"] < 26
    # and the API names the model each worker serves
    workers = httpx.get(f"{stack.base_url}/api/workers", timeout=5).json()
    assert workers["models"] == ["yolov8n_int8.onnx"], workers
    assert len(workers["workers"]) == 1 and workers["workers"][0]["name"].startswith("worker")


async def test_bad_source_is_refused_and_marked_failed_without_disturbing_a_live_stream(
    stack: Stack, tmp_path
):
    # given a live stream and a text file dressed as a video
    response = await asyncio.to_thread(stack.start_stream, "steady", CLIP, True)
    assert response.status_code == 201, response.text
    fake = tmp_path / "match.mp4"
    fake.write_text("not a video")
    # when both a missing file and the fake are started
    missing = await asyncio.to_thread(stack.start_stream, "missing", tmp_path / "nope.mp4")
    bogus = await asyncio.to_thread(stack.start_stream, "bogus", fake)
    # then each gets a 422 with a reason, and is listed as failed
    assert missing.status_code == 422 and "no video 'nope.mp4'" in missing.json()["detail"]
    assert bogus.status_code == 422 and "not a video" in bogus.json()["detail"]
    listed = {s["sid"]: s for s in httpx.get(f"{stack.base_url}/api/streams").json()["streams"]}
    assert listed["missing"]["state"] == listed["bogus"]["state"] == "failed"
    # and the live stream still delivers frames with detections
    frames = await collect(f"{stack.ws_url}/ws/streams/steady", 5)
    assert all(meta["detections"] for meta, _ in frames)
    # and an unknown stream is a 404 for REST and a reasoned close for WebSocket
    assert httpx.get(f"{stack.base_url}/api/streams/nobody").status_code == 404
    async with websockets.connect(f"{stack.ws_url}/ws/streams/nobody") as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await ws.recv()
    assert closed.value.rcvd.code == 4404 and "nobody" in closed.value.rcvd.reason
    json.dumps(listed)  # the registry entries are plain JSON


async def test_rtsp_camera_flows_through_the_stack_to_a_websocket_with_detections(
    stack: Stack, rtsp_server: RtspServer
) -> None:
    # given the real clip served by a real RTSP server, behind credentials it does not need
    url = rtsp_server.url("/clip")
    # when it is started through the API, as a camera
    response = await asyncio.to_thread(
        lambda: httpx.post(
            f"{stack.base_url}/api/streams", json={"source": url, "id": "cam"}, timeout=30
        )
    )
    assert response.status_code == 201, response.text
    # then a viewer receives its frames, in order, with people detected on the pitch
    frames = await collect(f"{stack.ws_url}/ws/streams/cam", WANT_FRAMES)
    seqs = [meta["seq"] for meta, _ in frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
    assert all((meta["w"], meta["h"]) == (848, 478) for meta, _ in frames)
    people = [sum(d["label"] == "person" for d in meta["detections"]) for meta, _ in frames]
    assert np.median(people) >= 5, people
    info = httpx.get(f"{stack.base_url}/api/streams/cam", timeout=5).json()
    assert info["state"] == "live" and info["reconnects"] == 0, info
    assert httpx.delete(f"{stack.base_url}/api/streams/cam", timeout=30).status_code == 204


@pytest.fixture
def loopback_publisher() -> Iterator[None]:
    """The test's WebRTC publisher offers 127.0.0.1 only, as the stack's ingest does."""
    restrict_host_addresses(("127.0.0.1",))
    yield
    restrict_host_addresses(())


def _whip(stack: Stack, method: str, path: str, **kwargs: object) -> httpx.Response:
    return httpx.request(method, f"{stack.base_url}{path}", timeout=30, **kwargs)  # type: ignore[arg-type]


async def test_webrtc_publisher_flows_through_the_stack_over_whip(
    stack: Stack, loopback_publisher: None
) -> None:
    async with Publisher(CLIP) as publisher:
        # given a WebRTC publisher sending the real clip
        offer = await publisher.offer()
        # when it publishes over WHIP
        response = await asyncio.to_thread(
            _whip, stack, "POST", "/whip/phone", content=offer,
            headers={"content-type": "application/sdp"},
        )  # fmt: skip
        # then it gets 201, the SDP answer and the session's URL
        assert response.status_code == 201, response.text
        assert response.headers["content-type"] == "application/sdp"
        location = response.headers["location"]
        assert location.startswith("/whip/phone/") and len(location) > len("/whip/phone/") + 16
        await publisher.accept(response.text)
        # and a viewer receives its frames, in order, with people detected on the pitch
        frames = await collect(f"{stack.ws_url}/ws/streams/phone", WANT_FRAMES)
        seqs = [meta["seq"] for meta, _ in frames]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
        assert all((meta["w"], meta["h"]) == (848, 478) for meta, _ in frames)
        # (fewer than from the file: the publisher's VP8 starts at 500 kbps and stays under
        # 1.5 Mbps, as a browser's does, and every loop of the clip is a cut it must recover from)
        people = [sum(d["label"] == "person" for d in meta["detections"]) for meta, _ in frames]
        assert max(people) >= 5 and sum(p > 0 for p in people) >= 0.6 * len(people), people
        info = httpx.get(f"{stack.base_url}/api/streams/phone", timeout=5).json()
        assert (info["state"], info["source"], info["mode"]) == ("live", SHOWN, "live"), info
        # and while it runs, the id is taken, another session's URL is unknown, PATCH is 405
        async with Publisher(CLIP) as second:
            taken = await asyncio.to_thread(
                _whip, stack, "POST", "/whip/phone", content=await second.offer(),
                headers={"content-type": "application/sdp"},
            )  # fmt: skip
        assert taken.status_code == 409 and taken.json()["error"] == "stream_exists", taken.text
        other = await asyncio.to_thread(_whip, stack, "DELETE", "/whip/phone/" + "x" * 22)
        assert other.status_code == 404, other.text
        assert (await asyncio.to_thread(_whip, stack, "PATCH", location)).status_code == 405
        # when its session is deleted
        ended = await asyncio.to_thread(_whip, stack, "DELETE", location)
        # then the stream stops, and that URL is gone
        assert ended.status_code == 200, ended.text
        info = httpx.get(f"{stack.base_url}/api/streams/phone", timeout=5).json()
        assert info["state"] == "stopped", info
        again = await asyncio.to_thread(_whip, stack, "DELETE", location)
        assert again.status_code == 404, again.text


@pytest.mark.parametrize(
    ("headers", "body", "status", "error"),
    [
        ({"content-type": "application/json"}, b'{"sdp": "v=0"}', 415, "unsupported_media_type"),
        ({}, b"v=0", 415, "unsupported_media_type"),
        ({"content-type": "application/sdp"}, b"v=0\r\n" * 20_000, 413, "content_too_large"),
        ({"content-type": "application/sdp"}, b"\xff\xfe", 400, "bad_offer"),
        ({"content-type": "application/sdp"}, b"hello", 400, "bad_offer"),
        ({"content-type": "application/sdp"}, b"v=0\r\nm=audio 9 RTP/AVP 0\r\n", 400, "bad_offer"),
    ],
    ids=["json", "no-type", "too-large", "not-utf8", "not-sdp", "audio-only"],
)
def test_whip_refuses_what_is_no_video_offer_with_a_clear_status(
    stack: Stack, headers: dict[str, str], body: bytes, status: int, error: str
) -> None:
    response = _whip(stack, "POST", "/whip/refused", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error and response.json()["detail"]
    assert httpx.get(f"{stack.base_url}/api/streams/refused", timeout=5).status_code == 404
