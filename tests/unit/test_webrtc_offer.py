"""WHIP offers: what ingest accepts from a publisher, and which addresses its ICE offers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aiortc
import pytest

from ingest.sources import parse
from ingest.sources.webrtc import (
    MAX_OFFER_CHARS,
    check_offer,
    ice_servers,
    restrict_host_addresses,
    start_bitrate_hint,
)
from pitchside.errors import OfferError, SourceError
from pitchside.settings import Settings


async def _offer(*transceivers: tuple[str, str]) -> str:
    """A real offer from aiortc with ``(kind, direction)`` transceivers, without candidates."""
    pc = aiortc.RTCPeerConnection(aiortc.RTCConfiguration(iceServers=[]))
    try:
        for kind, direction in transceivers:
            pc.addTransceiver(kind, direction=direction)
        return str((await pc.createOffer()).sdp)
    finally:
        await pc.close()


@pytest.fixture
def loopback_only() -> Iterator[None]:
    restrict_host_addresses(("127.0.0.1",))
    yield
    restrict_host_addresses(())


async def test_an_offer_that_sends_video_is_accepted() -> None:
    check_offer(await _offer(("video", "sendonly")))
    check_offer(await _offer(("audio", "sendonly"), ("video", "sendrecv")))


@pytest.mark.parametrize(
    ("transceivers", "says"),
    [
        ([("audio", "sendonly")], "sends no video"),
        ([("video", "recvonly")], "sends no video"),
    ],
    ids=["audio-only", "video-recvonly"],
)
async def test_an_offer_without_video_to_receive_is_refused(
    transceivers: list[tuple[str, str]], says: str
) -> None:
    with pytest.raises(OfferError, match=says) as caught:
        check_offer(await _offer(*transceivers))
    assert caught.value.status == 400


async def test_an_offer_whose_video_codecs_aiortc_cannot_decode_is_refused() -> None:
    # given a video offer whose only codec is AV1 (the payload types renamed)
    sdp = await _offer(("video", "sendonly"))
    lines = [line.replace("VP8/", "AV1/").replace("H264/", "AV1/") for line in sdp.splitlines()]
    with pytest.raises(OfferError, match="VP8 or H.264"):
        check_offer("\r\n".join(lines) + "\r\n")


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("", "not an SDP offer"),
        ("hello, I am a camera", "not an SDP offer"),
        ('{"type": "offer"}', "not an SDP offer"),
        ("v=0\r\nm=video\r\n", "malformed"),
        ("v=0\r\n" + "a=x\r\n" * (MAX_OFFER_CHARS // 5), "too long"),
    ],
    ids=["empty", "text", "json", "broken-m-line", "too-long"],
)
def test_a_body_that_is_no_usable_sdp_is_refused_with_400(body: str, says: str) -> None:
    with pytest.raises(OfferError, match=says) as caught:
        check_offer(body)
    assert (caught.value.status, caught.value.code) == (400, "bad_offer")


def test_a_whip_url_given_to_the_streams_api_says_where_publishers_go() -> None:
    with pytest.raises(SourceError, match=r"POST /whip/\{sid\}"):
        parse("whip://phone")


def test_ice_servers_are_exactly_the_configured_ones_with_turn_credentials() -> None:
    # with none configured, none: never aiortc's default public STUN server
    assert ice_servers(Settings()) == []
    settings = Settings(
        ice_servers=("stun:stun.example.org", "turn:turn.example.org?transport=tcp"),
        ice_username="pitch", ice_credential="s3cret",
    )  # fmt: skip
    stun, turn = ice_servers(settings)
    assert (stun.urls, stun.username, stun.credential) == ("stun:stun.example.org", None, None)
    assert (turn.username, turn.credential) == ("pitch", "s3cret")


@pytest.fixture
async def peer() -> AsyncIterator[aiortc.RTCPeerConnection]:
    pc = aiortc.RTCPeerConnection(aiortc.RTCConfiguration(iceServers=[]))
    yield pc
    await pc.close()


async def test_ice_offers_host_candidates_only_on_the_configured_addresses(
    loopback_only: None, peer: aiortc.RTCPeerConnection
) -> None:
    # given ICE restricted to loopback (aioice leaves loopback out by default)
    peer.addTransceiver("video", direction="sendonly")
    # when a description gathers its candidates
    await peer.setLocalDescription(await peer.createOffer())
    sdp = peer.localDescription.sdp
    # then every candidate is on 127.0.0.1
    candidates = [line for line in sdp.splitlines() if line.startswith("a=candidate:")]
    assert candidates and all(c.split()[4] == "127.0.0.1" for c in candidates), candidates


def test_restricting_to_no_addresses_restores_aioice_lookup() -> None:
    import aioice.ice

    original = aioice.ice.get_host_addresses
    restrict_host_addresses(("127.0.0.1", "::1"))
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False) == ["127.0.0.1"]
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1", "::1"]
    restrict_host_addresses(())
    assert aioice.ice.get_host_addresses is original


def test_the_answer_asks_a_browser_to_start_video_at_the_start_bitrate() -> None:
    answer = (
        "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 97 99 100\r\na=rtpmap:97 VP8/90000\r\n"
        "a=rtpmap:99 H264/90000\r\na=fmtp:99 packetization-mode=1\r\n"
        "a=rtpmap:100 rtx/90000\r\na=fmtp:100 apt=97\r\n"
    )
    hinted = start_bitrate_hint(answer, kbps=1500).split("\r\n")
    # VP8 had no fmtp line: it gets one; H.264's gets the hint appended; rtx is left alone
    assert (
        hinted[hinted.index("a=rtpmap:97 VP8/90000") + 1] == "a=fmtp:97 x-google-start-bitrate=1500"
    )
    assert "a=fmtp:99 packetization-mode=1;x-google-start-bitrate=1500" in hinted
    assert "a=fmtp:100 apt=97" in hinted
    assert sum("x-google-start-bitrate" in line for line in hinted) == 2


async def test_the_answer_negotiates_no_delay_based_estimate(loopback_only: None) -> None:
    # given a browser-like offer with the abs-send-time extension (aiortc's REMB relies on it)
    from ingest.sources.webrtc import WhipPeer

    offer = await _offer(("video", "sendonly"))
    assert "abs-send-time" in offer
    peer = WhipPeer(Settings(), "cam", "session-0123456789")
    try:
        answer = await peer.answer(offer)
    finally:
        await peer.close()
    # then the answer leaves it out, so ingest sends no REMB to throttle the publisher
    assert "abs-send-time" not in answer and "a=candidate:" in answer
    assert "x-google-start-bitrate" in answer
