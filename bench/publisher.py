"""A WebRTC publisher as a phone is one: aiortc sends a clip's video, paced in real time.

It makes the SDP offer a WHIP client sends (every candidate in it, no trickle ICE), takes the
answer, and sends until it is closed. The benchmark's section (f) and the WHIP tests use it,
through ``POST /whip/{sid}`` or straight through ingest's control stream.

ICE offers only the addresses :func:`ingest.sources.webrtc.restrict_host_addresses` allows in
this process: both peers of a test on loopback.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import av
import cv2
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

#: Bound on the connection reaching "connected" once the answer is set (ICE and DTLS).
CONNECT_S = 20.0
CLOCK_RATE = 90_000  # RTP's video clock
TIME_BASE = Fraction(1, CLOCK_RATE)


#: The frame stamp: the frame's number in STAMP_BITS blocks of STAMP_PX pixels, white for 1,
#: along the top-left edge, and below them the same bits inverted (a check that survives VP8).
STAMP_BITS = 16
STAMP_PX = 16


def draw_stamp(bgr: np.ndarray, number: int) -> None:
    """Write ``number`` (mod 2**STAMP_BITS) into the top-left corner of ``bgr``, in place."""
    for bit in range(STAMP_BITS):
        on = (number >> bit) & 1
        x = bit * STAMP_PX
        bgr[:STAMP_PX, x : x + STAMP_PX] = 255 * on
        bgr[STAMP_PX : 2 * STAMP_PX, x : x + STAMP_PX] = 255 * (1 - on)


def read_stamp(jpeg: bytes) -> int | None:
    """The number :func:`draw_stamp` wrote into a frame, or None where it does not read back."""
    gray = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
    if gray is None or gray.shape[0] < 2 * STAMP_PX or gray.shape[1] < STAMP_BITS * STAMP_PX:
        return None
    inner = slice(STAMP_PX // 4, STAMP_PX - STAMP_PX // 4)  # away from the blocks' edges
    number = 0
    for bit in range(STAMP_BITS):
        x = bit * STAMP_PX
        top = gray[inner, x : x + STAMP_PX][:, inner].mean() > 128
        bottom = gray[STAMP_PX:, x : x + STAMP_PX][inner, inner].mean() > 128
        if top == bottom:  # the check row disagrees: not a stamp, or too blurred to trust
            return None
        number |= int(top) << bit
    return number


class ClipTrack(MediaStreamTrack):
    """A clip's frames at its own rate, looped, with timestamps that keep rising.

    aiortc's ``MediaPlayer(loop=True)`` restarts the timestamps at each loop, which its VP8
    encoder refuses (``avcodec_send_frame``: invalid data): a camera's time never goes back.
    With ``stamp``, each frame carries its number (:func:`draw_stamp`) and :attr:`sent_ns`
    when it was handed to the encoder: a viewer that reads the number back knows how long the
    frame took from the publisher to it, encoding and decoding included.
    """

    kind = "video"

    def __init__(self, clip: Path, stamp: bool = False) -> None:
        super().__init__()
        self._clip = clip
        self._stamp = stamp
        self.sent_ns: dict[int, int] = {}  # stamp number -> time.time_ns() when sent
        with av.open(str(clip)) as container:
            rate = container.streams.video[0].average_rate
        self._step = 1 / float(rate or 25)
        self._frames = self._decode()
        self._started: float | None = None
        self._n = 0

    def _decode(self) -> Iterator[av.VideoFrame]:
        while True:
            with av.open(str(self._clip)) as container:
                yield from container.decode(video=0)

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._started is None:
            self._started = time.monotonic()
        await asyncio.sleep(max(0.0, self._started + self._n * self._step - time.monotonic()))
        frame = next(self._frames)
        if self._stamp:
            bgr = frame.to_ndarray(format="bgr24")
            number = self._n % 2**STAMP_BITS
            draw_stamp(bgr, number)
            frame = av.VideoFrame.from_ndarray(bgr, format="bgr24")
            self.sent_ns[number] = time.time_ns()
        frame.pts, frame.time_base = round(self._n * self._step * CLOCK_RATE), TIME_BASE
        self._n += 1
        return frame


class Publisher:
    """The video of ``clip``, looped, sent by one aiortc peer connection.

    Use it as an async context manager: :meth:`offer`, then :meth:`accept` with the answer.
    """

    def __init__(self, clip: Path, stamp: bool = False) -> None:
        self.clip = clip
        self.stamp = stamp
        self._pc: Any = None
        self._track: ClipTrack | None = None
        self._connected = asyncio.Event()
        self.states: list[str] = []  # every connection state it went through, in order

    async def __aenter__(self) -> Self:
        from aiortc import RTCConfiguration, RTCPeerConnection

        self._pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self._pc.on("connectionstatechange", self._state_changed)
        self._track = ClipTrack(self.clip, self.stamp)
        self._pc.addTransceiver(self._track, direction="sendonly")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        await self.close()

    def sent_ns(self, number: int) -> int | None:
        """When the frame stamped ``number`` was sent (``stamp=True``), epoch ns."""
        return self._track.sent_ns.get(number) if self._track is not None else None

    @property
    def state(self) -> str:
        return str(self._pc.connectionState)

    async def offer(self) -> str:
        """The SDP offer, once every local candidate is gathered (aiortc waits for them)."""
        await self._pc.setLocalDescription(await self._pc.createOffer())
        return str(self._pc.localDescription.sdp)

    async def accept(self, answer: str) -> None:
        """Set the server's SDP answer; media flows once ICE and DTLS connect."""
        from aiortc import RTCSessionDescription

        await self._pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))

    async def connected(self, timeout_s: float = CONNECT_S) -> None:
        """Wait for the connection to be ``connected``.

        Raises:
            TimeoutError: it was not within ``timeout_s``.
        """
        await asyncio.wait_for(self._connected.wait(), timeout_s)

    async def close(self) -> None:
        """Stop sending and close the connection (the server sees the publisher leave)."""
        if self._track is not None:
            self._track.stop()
        if self._pc is not None:
            await self._pc.close()

    async def _state_changed(self) -> None:
        self.states.append(self.state)
        if self.state == "connected":
            self._connected.set()
