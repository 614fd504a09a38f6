"""WebRTC publishers through the ingest service: a real aiortc peer sends the real clip.

The test plays the gateway (PUBLISH and STOP on the control stream, the answer on the reply
key) and the publisher (:class:`bench.publisher.Publisher`, aiortc encoding the clip to VP8).
Both peers offer host candidates on 127.0.0.1 only.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator

import pytest

from bench.publisher import Publisher
from ingest.sources.webrtc import SHOWN, restrict_host_addresses
from pitchside.errors import StreamNotFoundError
from pitchside.schema import Command, ControlMsg, ControlReply, StreamState
from tests.conftest import CLIP, require_asset
from tests.integration.test_ingest import (
    CLIP_SIZE,
    Ingest,
    IngestFactory,
    make_ingest_fixture,  # noqa: F401
    wait_until,
)

LOOPBACK = {"ice_addresses": ("127.0.0.1",)}
#: Bound on the first frames: ICE and DTLS on loopback, then VP8 both ways on 2 busy cores.
FIRST_FRAMES_S = 40.0


@pytest.fixture(autouse=True)
def loopback_only() -> Iterator[None]:
    """The publisher in this process offers 127.0.0.1 too (ingest sets it when it answers)."""
    restrict_host_addresses(("127.0.0.1",))
    yield
    restrict_host_addresses(())


def _session() -> str:
    return secrets.token_urlsafe(16)


async def _publish(ingest: Ingest, sid: str, offer: str, session: str) -> ControlReply:
    return await ingest.send(
        ControlMsg(Command.PUBLISH, sid, uuid.uuid4().hex, sdp=offer, session=session)
    )


async def _stop(ingest: Ingest, sid: str, session: str) -> ControlReply:
    return await ingest.send(ControlMsg(Command.STOP, sid, uuid.uuid4().hex, session=session))


async def test_a_publishers_video_becomes_a_live_stream_until_its_session_is_deleted(
    make_ingest: IngestFactory,
) -> None:
    # given an ingest service and a publisher sending the clip
    ingest = await make_ingest(**LOOPBACK)
    session = _session()
    async with Publisher(require_asset(CLIP)) as publisher:
        # when its offer is published as stream "phone" and it takes the answer
        reply = await _publish(ingest, "phone", await publisher.offer(), session)
        assert (reply.ok, reply.status) == (True, 201), reply
        assert reply.sdp is not None and reply.sdp.startswith("v=0")
        candidates = [x for x in reply.sdp.splitlines() if x.startswith("a=candidate:")]
        assert candidates and all(c.split()[4] == "127.0.0.1" for c in candidates), candidates
        await publisher.accept(reply.sdp)
        # then the stream goes live with the publisher's frames, in order, media time rising
        info = await ingest.wait_state("phone", StreamState.LIVE, timeout_s=FIRST_FRAMES_S)
        assert info.source == SHOWN and info.mode.value == "live"
        await ingest.wait_frames("phone", 25, timeout_s=FIRST_FRAMES_S)
        frames = await ingest.frames("phone")
        assert [f.seq for f in frames] == list(range(frames[0].seq, frames[0].seq + len(frames)))
        assert all(b.pts_ns > a.pts_ns for a, b in zip(frames, frames[1:], strict=False))
        assert all((f.w, f.h) == CLIP_SIZE for f in frames)
        # and a DELETE of another session ends nothing
        refused = await _stop(ingest, "phone", _session())
        assert (refused.ok, refused.status) == (False, 404), refused
        assert (await ingest.info("phone")).state is StreamState.LIVE
        # and the DELETE of its own session stops the stream and hangs up on the publisher
        assert (await _stop(ingest, "phone", session)).status == 200
        await ingest.wait_state("phone", StreamState.STOPPED)

        async def hung_up() -> bool:
            return publisher.state == "closed" or "failed" in publisher.states

        await wait_until(hung_up, 60, "the publisher to see the session end", every_s=0.1)


async def test_a_publisher_that_leaves_ends_its_stream_and_the_id_can_publish_again(
    make_ingest: IngestFactory,
) -> None:
    # given a live publisher
    ingest = await make_ingest(**LOOPBACK)
    async with Publisher(require_asset(CLIP)) as publisher:
        reply = await _publish(ingest, "leaver", await publisher.offer(), _session())
        assert reply.ok and reply.sdp, reply
        await publisher.accept(reply.sdp)
        await ingest.wait_frames("leaver", 5, timeout_s=FIRST_FRAMES_S)
        # while it publishes, the id is taken
        async with Publisher(CLIP) as second:
            taken = await _publish(ingest, "leaver", await second.offer(), _session())
        assert (taken.ok, taken.status) == (False, 409), taken
        # when the publisher hangs up
        await publisher.close()
    # then the stream ends (not failed: leaving is how a publisher says it is done)
    await ingest.wait_state("leaver", StreamState.ENDED, timeout_s=60)
    # and a new publisher can take the same id
    async with Publisher(CLIP) as again:
        reply = await _publish(ingest, "leaver", await again.offer(), _session())
        assert (reply.ok, reply.status) == (True, 201), reply
        assert (await _stop(ingest, "leaver", "")).status == 200


async def test_an_offer_without_video_is_refused_with_400_and_leaves_no_stream(
    make_ingest: IngestFactory,
) -> None:
    import aiortc

    ingest = await make_ingest(**LOOPBACK)
    pc = aiortc.RTCPeerConnection(aiortc.RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver("audio", direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        reply = await _publish(ingest, "mute", pc.localDescription.sdp, _session())
    finally:
        await pc.close()
    assert (reply.ok, reply.status) == (False, 400), reply
    assert "sends no video" in (reply.error or "")
    with pytest.raises(StreamNotFoundError):
        await ingest.info("mute")
    assert not (await _publish(ingest, "mute", "v=0\r\nm=video\r\n", _session())).ok


async def test_publishing_is_refused_with_403_when_whip_is_not_an_allowed_scheme(
    make_ingest: IngestFactory,
) -> None:
    ingest = await make_ingest(source_schemes=("file", "rtsp"), **LOOPBACK)
    async with Publisher(require_asset(CLIP)) as publisher:
        reply = await _publish(ingest, "nope", await publisher.offer(), _session())
    assert (reply.ok, reply.status) == (False, 403), reply
    assert "PITCHSIDE_SOURCE_SCHEMES" in (reply.error or "")


async def test_a_publisher_that_vanishes_before_connecting_fails_its_stream_at_the_watchdog(
    make_ingest: IngestFactory,
) -> None:
    # given an ingest whose no-frames watchdog is 3 s
    ingest = await make_ingest(watchdog_s=3.0, **LOOPBACK)
    async with Publisher(require_asset(CLIP)) as publisher:
        reply = await _publish(ingest, "gone", await publisher.offer(), _session())
        assert reply.ok, reply
        # when the publisher vanishes before it takes the answer (ICE never connects)
        await publisher.close()
    # then the stream does not wait forever: it fails, saying why, and frees its id
    info = await ingest.wait_state("gone", StreamState.FAILED, timeout_s=30)
    assert info.error == "no frame from the source for 3 s", info
    async with Publisher(CLIP) as again:
        assert (await _publish(ingest, "gone", await again.offer(), _session())).ok
        assert (await _stop(ingest, "gone", "")).status == 200
