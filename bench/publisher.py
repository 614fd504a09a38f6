"""A WebRTC publisher as a phone is one: aiortc sends a clip's video, paced in real time.

It makes the SDP offer a WHIP client sends (every candidate in it, no trickle ICE), takes the
answer, and sends until it is closed. The benchmark's section (f) and the WHIP tests use it,
through ``POST /whip/{sid}`` or straight through ingest's control stream.

ICE offers only the addresses :func:`ingest.sources.webrtc.restrict_host_addresses` allows in
this process: both peers of a test on loopback.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import TracebackType
from typing import Any, Self

#: Bound on the connection reaching "connected" once the answer is set (ICE and DTLS).
CONNECT_S = 20.0


class Publisher:
    """The video of ``clip``, looped, sent by one aiortc peer connection.

    Use it as an async context manager: :meth:`offer`, then :meth:`accept` with the answer.
    """

    def __init__(self, clip: Path) -> None:
        self.clip = clip
        self._pc: Any = None
        self._player: Any = None
        self._connected = asyncio.Event()
        self.states: list[str] = []  # every connection state it went through, in order

    async def __aenter__(self) -> Self:
        from aiortc import RTCConfiguration, RTCPeerConnection
        from aiortc.contrib.media import MediaPlayer

        self._pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self._pc.on("connectionstatechange", self._state_changed)
        self._player = MediaPlayer(str(self.clip), loop=True)
        self._pc.addTransceiver(self._player.video, direction="sendonly")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        await self.close()

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
        if self._player is not None and self._player.video is not None:
            self._player.video.stop()
        if self._pc is not None:
            await self._pc.close()

    async def _state_changed(self) -> None:
        self.states.append(self.state)
        if self.state == "connected":
            self._connected.set()
