"""WebRTC publishing (WHIP, RFC 9725): a browser's or phone's camera as a source.

The gateway relays a publisher's SDP offer to ingest over the control stream
(:attr:`~pitchside.schema.Command.PUBLISH`); ingest answers it with a :class:`WhipPeer`,
whose aiortc peer connection lives in the ingest process, and runs the peer's video track
through the same :class:`~ingest.runner.StreamRunner` as any camera: :attr:`WhipPeer.spec`
is a source of a kind of its own, real-time and not reconnected (a publisher that leaves
ends its stream; a new offer starts it again).

aiortc decodes on a thread of its own and queues every frame. Ingest keeps only the newest
one that has not been taken yet (a frame the pipeline was too slow for is dropped and counted,
as the workers drop stale frames), so a slow moment never turns into a growing lag.

ICE: the peer offers host candidates on the addresses in ``PITCHSIDE_ICE_ADDRESSES`` (aioice
has no option for it: :func:`restrict_host_addresses` replaces its address lookup for the
process) and uses the STUN/TURN servers in ``PITCHSIDE_ICE_SERVERS``; with none, no server is
contacted (aiortc's own default is a public STUN server).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Generator
from typing import Any

from ingest import metrics
from ingest.sources import MediaClock, SourceKind, SourceSpec
from ingest.sources.info import SourceInfo
from ingest.sources.threaded import DecodedFrame
from pitchside.errors import OfferError, SourceError
from pitchside.settings import Settings

log = logging.getLogger(__name__)

#: What aiortc decodes: an offer must send one of them.
VIDEO_CODECS = ("video/VP8", "video/H264")
SENDING = ("sendonly", "sendrecv")
SCHEME = "whip"  # its name in PITCHSIDE_SOURCE_SCHEMES
SHOWN = "WebRTC publisher (WHIP)"  # the source as the registry and the viewer show it
WAIT_S = 0.1  # the decode thread checks its stop event this often while waiting for frames
STEP_NS = 40_000_000  # media time step of a frame without a timestamp (25 fps)
MAX_OFFER_CHARS = 64 * 1024  # far above a real offer (a few KB), far below harm
START_KBPS = 1500  # what a browser publisher is asked to start at (x-google-start-bitrate)


def check_offer(sdp: str) -> None:
    """Refuse an offer that is not SDP or sends no video aiortc can decode.

    Raises:
        OfferError: (400) what is wrong with it.
    """
    from aiortc.sdp import SessionDescription

    if len(sdp) > MAX_OFFER_CHARS:
        raise OfferError(f"the SDP offer is too long ({len(sdp)} characters)")
    if not sdp.lstrip().startswith("v=0"):
        raise OfferError("the body is not an SDP offer (it must start with v=0)")
    try:
        description = SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises whatever its line splitting meets
        raise OfferError(f"the SDP offer is malformed: {type(exc).__name__}: {exc}") from exc
    for media in description.media:
        codecs = {codec.mimeType for codec in media.rtp.codecs}
        if (
            media.kind == "video"
            and media.port != 0
            and media.direction in SENDING
            and codecs.intersection(VIDEO_CODECS)
        ):
            return
    raise OfferError("the SDP offer sends no video (it must send a VP8 or H.264 video track)")


def start_bitrate_hint(answer: str, kbps: int = START_KBPS) -> str:
    """``answer`` asking a browser to start sending video at ``kbps`` (Chromium's fmtp hint).

    Without a delay-based estimate (see :meth:`WhipPeer.answer`) a browser starts at ~300
    kbps and climbs by a few percent a second: half a minute of blurred players.
    """
    lines = answer.splitlines()
    video = {
        line.split()[0].removeprefix("a=rtpmap:")
        for line in lines
        if line.startswith("a=rtpmap:") and line.split()[1].upper().startswith(("VP8/", "H264/"))
    }
    with_fmtp = {
        line.split()[0].removeprefix("a=fmtp:") for line in lines if line.startswith("a=fmtp:")
    }
    hint = f"x-google-start-bitrate={kbps}"
    out: list[str] = []
    for line in lines:
        head = line.split(" ", 1)[0]
        if head.startswith("a=fmtp:") and head.removeprefix("a=fmtp:") in video:
            line += f";{hint}"
        out.append(line)
        pt = head.removeprefix("a=rtpmap:")
        if head.startswith("a=rtpmap:") and pt in video and pt not in with_fmtp:
            out.append(f"a=fmtp:{pt} {hint}")
    return "\r\n".join(out) + "\r\n"


_aioice_host_addresses: Any = None  # aioice's own lookup, kept to restore it


def restrict_host_addresses(addresses: tuple[str, ...]) -> None:
    """Make ICE offer host candidates on exactly ``addresses`` (all but loopback when empty).

    For the whole process: aioice looks the addresses up through a module function.
    """
    import aioice.ice

    global _aioice_host_addresses
    if _aioice_host_addresses is None:
        _aioice_host_addresses = aioice.ice.get_host_addresses
    if not addresses:
        aioice.ice.get_host_addresses = _aioice_host_addresses
        return

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in addresses if (use_ipv6 if ":" in a else use_ipv4)]

    aioice.ice.get_host_addresses = host_addresses


def ice_servers(settings: Settings) -> list[Any]:
    """The ``RTCIceServer`` list of a peer (empty: none, never aiortc's public default)."""
    from aiortc import RTCIceServer

    return [
        RTCIceServer(url, settings.ice_username, settings.ice_credential)
        if url.lower().startswith("turn")
        else RTCIceServer(url)
        for url in settings.ice_servers
    ]


class WhipPeer:
    """One WHIP session: the peer connection, its video track, and the newest frame.

    :meth:`answer` negotiates; :attr:`spec` is then the source the runner opens (once);
    :meth:`close` ends the session.
    """

    def __init__(self, settings: Settings, sid: str, session: str) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection

        self.sid = sid
        self.session = session
        self._pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers(settings)))
        self._pc.on("connectionstatechange", self._state_changed)
        self._cond = threading.Condition()
        self._latest: Any = None  # the newest av.VideoFrame not taken yet
        self._ended = False  # the track ended: no frame will come
        self._failure: str | None = None  # why the connection failed, if it did
        self._pump_task: asyncio.Task[None] | None = None
        self._log_extra = {"sid": sid}
        self.spec = SourceSpec(
            SourceKind(SCHEME, True, False, self._probe, self._frames), SCHEME, session, SHOWN
        )

    async def answer(self, offer: str) -> str:
        """The SDP answer to ``offer``, with every local candidate in it (no trickle ICE).

        Raises:
            OfferError: (400) the offer is not SDP, sends no video, or cannot be negotiated.
        """
        from aiortc import RTCSessionDescription

        check_offer(offer)
        # Without abs-send-time aiortc computes no delay-based estimate (REMB). Computed in a
        # busy event loop, that estimate read its own lag as congestion and held Chromium at
        # 190 kbps and 424x239 on loopback; without it the browser's loss-based control
        # starts at START_KBPS and sends the camera's full size.
        offer = "".join(
            line
            for line in offer.splitlines(keepends=True)
            if not (line.startswith("a=extmap:") and "abs-send-time" in line)
        )
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        except ValueError as exc:  # aiortc's way of saying what the offer lacks
            raise OfferError(f"the SDP offer cannot be negotiated: {exc}") from exc
        track = next(
            (t.receiver.track for t in self._pc.getTransceivers() if t.kind == "video"), None
        )
        if track is None:
            raise OfferError("the SDP offer sends no video track")
        await self._pc.setLocalDescription(await self._pc.createAnswer())
        self._pump_task = asyncio.create_task(self._pump(track), name=f"whip-{self.sid}")
        return start_bitrate_hint(str(self._pc.localDescription.sdp))

    async def close(self) -> None:
        """Close the peer connection (the publisher sees it end) and stop taking frames."""
        if self._pump_task is not None:
            self._pump_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump_task
        await self._pc.close()
        self._end()

    # -- on the event loop -------------------------------------------------------------------

    async def _pump(self, track: Any) -> None:
        """Take every frame aiortc decodes, keeping only the newest for the decode thread."""
        from aiortc.mediastreams import MediaStreamError

        try:
            while True:
                frame = await track.recv()
                with self._cond:
                    if self._latest is not None:
                        metrics.dropped(self.sid, metrics.REASON_STALE)
                    self._latest = frame
                    self._cond.notify()
        except MediaStreamError:  # the publisher left, or the connection closed
            log.info("stream %s: the publisher's track ended", self.sid, extra=self._log_extra)
        finally:
            self._end()

    async def _state_changed(self) -> None:
        state = self._pc.connectionState
        log.info("stream %s: WebRTC connection %s", self.sid, state, extra=self._log_extra)
        if state == "failed":  # ICE or DTLS gave up: fail the stream rather than wait forever
            self._failure = "the WebRTC connection failed (ICE or DTLS): no media path"
            await self._pc.close()

    def _end(self) -> None:
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    # -- on the decode thread ----------------------------------------------------------------

    def _probe(self, spec: SourceSpec) -> SourceInfo:
        raise SourceError("a WebRTC publisher is not probed: its offer says what it sends")

    def _frames(
        self, spec: SourceSpec, clock: MediaClock, stop: threading.Event
    ) -> Generator[DecodedFrame]:
        """The publisher's frames until its track ends or ``stop`` is set."""
        clock.new_connection()
        while not stop.is_set():
            with self._cond:
                if self._latest is None and not self._ended:
                    self._cond.wait(WAIT_S)
                frame, self._latest = self._latest, None
                ended = self._ended
            if frame is None:
                if ended and self._failure:
                    raise SourceError(self._failure)  # the stream fails with the reason
                if ended:
                    return  # the publisher left: the stream ends
                continue
            started = time.perf_counter()
            bgr = frame.to_ndarray(format="bgr24")
            raw_ns = None
            if frame.pts is not None and frame.time_base is not None:
                raw_ns = int(frame.pts * frame.time_base * 1_000_000_000)
            pts_ns = clock.media_time(raw_ns, STEP_NS)
            yield DecodedFrame(bgr, pts_ns, time.time_ns(), time.perf_counter() - started)
