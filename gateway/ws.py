"""The viewer WebSocket: ``/ws/streams/{sid}?frames=1``.

One connection views one stream. After the handshake the gateway sends a ``hello`` event once
the viewer is subscribed, then one message per analysed frame (binary, or the JSON alone with
``?frames=0``), a ``stats`` event about once a second (sent by the same sender between frames,
so it never overtakes one), and, when the stream is over, a ``state`` event before closing
with 1000. See gateway/protocol.py and docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, cast

from fastapi import APIRouter, WebSocket
from redis.exceptions import RedisError
from starlette.websockets import WebSocketDisconnect

from gateway import protocol
from gateway.hub import Closing, Hub, Queued, Viewer
from gateway.metrics import Metrics
from pitchside import registry
from pitchside.errors import InvalidRequestError, SchemaError, StreamNotFoundError
from pitchside.schema import now_ns, validate_sid

if TYPE_CHECKING:
    from gateway.app import State

log = logging.getLogger(__name__)

router = APIRouter()

_FRAMES_VALUES = {"1": True, "true": True, "0": False, "false": False}
STATS_INTERVAL_S = 1.0  # a stats event to each viewer this often
# A viewer that takes no message for this long (its socket buffers full: it stopped reading)
# is let go: the hub drops frames for it meanwhile, but its sender and its place would stay.
SEND_TIMEOUT_S = 5.0


def _state(websocket: WebSocket) -> State:
    return cast("State", websocket.state)


@router.websocket("/ws/streams/{sid}")
async def stream_socket(websocket: WebSocket, sid: str) -> None:
    state = _state(websocket)
    await websocket.accept()
    raw_frames = websocket.query_params.get("frames", "1")
    frames = _FRAMES_VALUES.get(raw_frames.lower())
    if frames is None:
        reason = f"frames must be 0 or 1, got {raw_frames!r}"
        await websocket.close(protocol.CLOSE_BAD_REQUEST, protocol.close_reason(reason))
        return
    try:
        info = await registry.get(state["redis"], validate_sid(sid))
    except (StreamNotFoundError, InvalidRequestError, SchemaError):
        reason = protocol.close_reason(f"unknown stream '{sid}'")
        await websocket.close(protocol.CLOSE_UNKNOWN_STREAM, reason)
        return
    except RedisError as exc:
        log.warning("viewer of %s refused: redis: %s", sid, exc, extra={"sid": sid})
        await websocket.close(protocol.CLOSE_INTERNAL, "redis unavailable")
        return
    if not info.state.active:
        await websocket.send_text(protocol.state_event(sid, info.state.value, info.error))
        await websocket.close(protocol.CLOSE_NORMAL, f"stream {info.state.value}")
        return
    await _serve(websocket, state["hub"], state["metrics"], sid, frames, info.state.value)


async def _serve(
    websocket: WebSocket, hub: Hub, metrics: Metrics, sid: str, frames: bool, state: str
) -> None:
    try:
        viewer = await hub.subscribe(sid, frames=frames)
    except RedisError as exc:
        log.warning("viewer of %s refused: redis: %s", sid, exc, extra={"sid": sid})
        await websocket.close(protocol.CLOSE_INTERNAL, "redis unavailable")
        return
    metrics.viewer_joined(sid)
    log.info("viewer joined %s (frames=%s)", sid, frames, extra={"sid": sid})
    tasks: list[asyncio.Task[None]] = []
    try:
        # The hello goes first: a client may rely on every later dets entry reaching it.
        await websocket.send_text(protocol.hello_event(sid, state, frames))
        tasks = [
            asyncio.create_task(_send_loop(websocket, viewer, metrics), name=f"ws-send:{sid}"),
            asyncio.create_task(_receive_loop(websocket), name=f"ws-recv:{sid}"),
        ]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if not task.cancelled() and (failure := task.exception()) is not None:
                if not _is_disconnect(failure):
                    log.error("viewer of %s failed", sid, exc_info=failure, extra={"sid": sid})
    except (WebSocketDisconnect, OSError, RuntimeError):
        pass  # gone before the hello: nothing to clean up beyond the finally
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await hub.unsubscribe(viewer)
        metrics.viewer_left(sid)
        log.info(
            "viewer left %s (%d messages dropped for it)", sid, viewer.dropped,
            extra={"sid": sid},
        )  # fmt: skip


async def _send_loop(websocket: WebSocket, viewer: Viewer, metrics: Metrics) -> None:
    try:
        await _send_all(websocket, viewer, metrics)
    except TimeoutError:
        log.warning(
            "viewer of %s took no message for %.0f s; letting it go", viewer.sid, SEND_TIMEOUT_S,
            extra={"sid": viewer.sid},
        )  # fmt: skip


async def _send_all(websocket: WebSocket, viewer: Viewer, metrics: Metrics) -> None:
    """Send the viewer's messages until its stream closes it; TimeoutError when one send
    takes longer than SEND_TIMEOUT_S."""
    loop = asyncio.get_running_loop()
    stats_at = loop.time() + STATS_INTERVAL_S
    while True:
        item: Queued | Closing | None = None
        try:
            async with asyncio.timeout_at(stats_at):
                item = await viewer.get()  # cancelled only while it waits: nothing is lost
        except TimeoutError:
            pass
        if loop.time() >= stats_at and not isinstance(item, Closing):
            stats_at = loop.time() + STATS_INTERVAL_S
            async with asyncio.timeout(SEND_TIMEOUT_S):
                await websocket.send_text(protocol.stats_event(viewer.sid, viewer.stats.snapshot()))
        if item is None:
            continue
        async with asyncio.timeout(SEND_TIMEOUT_S):
            if isinstance(item, Closing):
                if item.event is not None:
                    await websocket.send_text(item.event)
                await websocket.close(item.code, item.reason)
                return
            if isinstance(item.payload, bytes):
                await websocket.send_bytes(item.payload)
            else:
                await websocket.send_text(item.payload)
        sent_ns = now_ns()
        metrics.sent_to_viewer(viewer.sid, item.ts_capture, sent_ns)
        viewer.stats.sent(item.ts_capture, sent_ns)


async def _receive_loop(websocket: WebSocket) -> None:
    """Read until the client goes; what it sends is ignored (the protocol is one-way)."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


def _is_disconnect(exc: BaseException) -> bool:
    # uvicorn raises ClientDisconnected (an OSError) when sending to a closed socket; starlette
    # raises RuntimeError when sending after a close was received.
    return isinstance(exc, (WebSocketDisconnect, OSError, RuntimeError))
