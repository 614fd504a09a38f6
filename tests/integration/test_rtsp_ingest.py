"""RTSP cameras through the ingest service, against a real RTSP server (GStreamer's).

The server is ``tests/integration/rtsp.py``'s: ``/clip`` loops the real clip (whose only
keyframe is its first: a client that joins late waits for the next loop), ``/pattern`` is a
live pattern with a keyframe a second, as cameras send, ``/secure`` the same behind basic auth,
any other path answers 404; ``stop()`` and ``start()`` take the
camera away and bring it back on the same port. Everything is on 127.0.0.1.
"""

from __future__ import annotations

import logging

import pytest
from redis.asyncio import Redis

from pitchside.schema import Mode, StreamState, frames_key
from tests.integration.rtsp import PASSWORD, USER, RtspServer, rtsp_server_fixture  # noqa: F401
from tests.integration.test_ingest import (
    IngestFactory,
    make_ingest_fixture,  # noqa: F401
    wait_until,
)

#: Fast reconnection for tests: the backoff's first bound, its cap, the no-frames watchdog.
CAMERA = {
    "reconnect_initial_s": 0.2,
    "reconnect_max_s": 1.0,
    "watchdog_s": 3.0,
    "source_timeout_s": 3.0,
}
#: A reconnect happens within the backoff cap after the camera is back; opening the stream
#: takes FFmpeg about 1.3 s of probing; the rest is margin for 2 busy cores.
BACK_WITHIN_S = 20.0
WRONG = "guess-x7q"  # a wrong password, which must not show anywhere either


def _secret_in(text: str) -> bool:
    return PASSWORD in text or "s3cret" in text


async def test_rtsp_camera_streams_frames_with_increasing_media_time(
    make_ingest: IngestFactory, rtsp_server: RtspServer, caplog: pytest.LogCaptureFixture
) -> None:
    # given an ingest service and a camera behind credentials
    caplog.set_level(logging.DEBUG)
    ingest = await make_ingest(**CAMERA)
    url = rtsp_server.url("/secure", USER, PASSWORD)
    # when the camera is started as a stream
    reply = await ingest.start("cam", url)
    # then it is accepted, goes live and publishes frames whose seq and pts increase
    assert (reply.ok, reply.status) == (True, 201), reply
    info = await ingest.wait_state("cam", StreamState.LIVE)
    await ingest.wait_frames("cam", 30)
    frames = await ingest.frames("cam")
    assert [f.seq for f in frames] == list(range(frames[0].seq, frames[0].seq + len(frames)))
    assert all(b.pts_ns > a.pts_ns for a, b in zip(frames, frames[1:], strict=False))
    assert (frames[0].w, frames[0].h) == (640, 360)
    # and its credentials are nowhere: not in the registry, the reply or the log
    assert info.source == f"rtsp://***:***@127.0.0.1:{rtsp_server.port}/secure"
    assert not _secret_in(info.source) and not _secret_in(str(reply))
    assert not _secret_in(caplog.text), "a credential reached the log"
    assert (await ingest.stop_stream("cam")).status == 200


async def test_rtsp_camera_that_drops_out_reconnects_by_itself(
    make_ingest: IngestFactory, rtsp_server: RtspServer, caplog: pytest.LogCaptureFixture
) -> None:
    # given a live camera stream
    caplog.set_level(logging.DEBUG)
    ingest = await make_ingest(**CAMERA)
    assert (await ingest.start("drop", rtsp_server.url("/secure", USER, PASSWORD))).ok
    await ingest.wait_state("drop", StreamState.LIVE)
    before = await ingest.wait_frames("drop", 10)
    last_before = (await ingest.frames("drop"))[-1]
    # when the camera goes away
    rtsp_server.stop()
    # then the stream says it is reconnecting, why, and how often
    info = await ingest.wait_state("drop", StreamState.RECONNECTING)
    assert info.reconnects >= 1 and info.error, info
    assert not _secret_in(info.error or "")
    # and when the camera comes back, the stream resumes by itself within the bound
    rtsp_server.start()
    info = await ingest.wait_state("drop", StreamState.LIVE, timeout_s=BACK_WITHIN_S)

    async def resumed() -> int:
        n = await ingest.redis.xlen(frames_key("drop"))
        return n if n > before + 10 else 0

    await wait_until(resumed, BACK_WITHIN_S, "frames after the camera came back")
    after = [f for f in await ingest.frames("drop") if f.seq > last_before.seq]
    # with seq going on from where it was and media time still increasing
    assert after[0].seq == last_before.seq + 1
    assert after[0].pts_ns > last_before.pts_ns
    assert all(b.pts_ns > a.pts_ns for a, b in zip(after, after[1:], strict=False))
    assert info.reconnects >= 1
    assert not _secret_in(caplog.text), "a credential reached the log"
    assert (await ingest.stop_stream("drop")).status == 200


@pytest.mark.parametrize(
    ("path", "user", "password", "says"),
    [
        ("/nope", None, None, "404 not found"),
        ("/secure", USER, WRONG, "401 unauthorized"),
        ("/secure", None, None, "401 unauthorized"),
    ],
)
async def test_rtsp_camera_that_refuses_fails_with_the_reason_and_is_not_retried(
    make_ingest: IngestFactory,
    rtsp_server: RtspServer,
    caplog: pytest.LogCaptureFixture,
    path: str,
    user: str | None,
    password: str | None,
    says: str,
) -> None:
    # given a camera URL with a wrong path or wrong credentials
    caplog.set_level(logging.DEBUG)
    ingest = await make_ingest(**CAMERA)
    url = rtsp_server.url(path, user, password)
    # when it is started
    reply = await ingest.start("bad", url)
    # then it is refused with 422 and the camera's reason, FAILED, with no reconnect
    assert (reply.ok, reply.status) == (False, 422), reply
    assert reply.error is not None and says in reply.error, reply.error
    info = await ingest.info("bad")
    assert info.state is StreamState.FAILED and info.reconnects == 0
    # and the credentials appear nowhere
    for text in (reply.error, info.source, info.error or "", caplog.text):
        assert not _secret_in(text) and WRONG not in text


async def test_rtsp_camera_that_is_not_up_yet_is_accepted_and_joins_when_it_is(
    make_ingest: IngestFactory, rtsp_server: RtspServer
) -> None:
    # given a camera that is off
    rtsp_server.stop()
    ingest = await make_ingest(**CAMERA)
    # when its stream is started
    reply = await ingest.start("late", rtsp_server.url("/pattern"), Mode.LIVE)
    # then it is accepted and keeps trying
    assert (reply.ok, reply.status) == (True, 201), reply
    info = await ingest.wait_state("late", StreamState.RECONNECTING)
    assert info.error and "refused" in info.error.lower(), info.error
    # and once the camera is on, the stream goes live by itself
    rtsp_server.start()
    await ingest.wait_state("late", StreamState.LIVE, timeout_s=BACK_WITHIN_S)
    await ingest.wait_frames("late", 5, timeout_s=BACK_WITHIN_S)
    assert (await ingest.stop_stream("late")).status == 200


async def test_rtsp_over_udp_when_the_stream_asks_for_it(
    make_ingest: IngestFactory, rtsp_server: RtspServer, redis: Redis
) -> None:
    ingest = await make_ingest(**CAMERA, rtsp_transport="udp")
    assert (await ingest.start("udp", rtsp_server.url("/pattern"))).ok
    await ingest.wait_state("udp", StreamState.LIVE)
    await ingest.wait_frames("udp", 10)
    frames = await ingest.frames("udp")
    assert (frames[0].w, frames[0].h) == (640, 360)
    assert (await ingest.stop_stream("udp")).status == 200
