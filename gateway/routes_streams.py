"""The streams resource: list, inspect, start and delete streams (``/api/streams``).

Starting and stopping are ingest's work: the gateway sends a command on the control stream and
answers with what ingest replied. The registry, written by ingest, is what GET shows.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Literal, cast

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from gateway import control
from gateway.hub import DELETED
from gateway.routes_health import count_heartbeats
from pitchside import registry
from pitchside.errors import (
    IngestUnavailableError,
    InvalidRequestError,
    StreamExistsError,
    StreamNotFoundError,
)
from pitchside.redact import redact_url
from pitchside.schema import (
    Mode,
    StreamInfo,
    dets_key,
    frames_key,
    tracks_key,
    validate_sid,
)

if TYPE_CHECKING:
    from gateway.app import State

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/streams", tags=["streams"])

SOURCE_MAX_CHARS = 2048
_ERROR = {"description": "{error, detail}", "content": {"application/json": {}}}


class StartRequest(BaseModel):
    """Body of ``POST /api/streams``."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(
        min_length=1,
        max_length=SOURCE_MAX_CHARS,
        description="A video file path on the ingest host, or a URL (rtsp://, http(s)://, ...)",
        examples=["/videos/match.mp4", "rtsp://user:secret@camera.local/stream1"],
    )
    id: str | None = Field(
        default=None,
        description="Stream id: 1-63 of a-z, 0-9, '-', '_'. Generated (12 hex digits) if absent.",
        examples=["pitch-1"],
    )
    mode: Mode = Field(
        default=Mode.LIVE,
        description="live: paced, newest frame wins; analyse: every frame, as fast as possible",
    )
    loop: bool = Field(default=False, description="Start a file again when it ends")
    rtsp_transport: Literal["tcp", "udp"] | None = Field(
        default=None,
        description="RTSP cameras: receive over TCP (interleaved) or UDP; default "
        "PITCHSIDE_RTSP_TRANSPORT (tcp)",
    )


class StreamList(BaseModel):
    streams: list[StreamInfo]


def _state(request: Request) -> State:
    return cast("State", request.state)


def new_sid() -> str:
    """A fresh stream id: 12 hex digits."""
    return secrets.token_hex(6)


@router.get("", summary="Every stream in the registry, oldest first")
async def list_streams(request: Request) -> StreamList:
    return StreamList(streams=await registry.get_all(_state(request)["redis"]))


@router.get(
    "/{sid}",
    summary="One stream",
    responses={404: _ERROR, 422: _ERROR | {"description": "not a stream id"}},
)
async def get_stream(sid: str, request: Request) -> StreamInfo:
    return await registry.get(_state(request)["redis"], validate_sid(sid))


@router.post(
    "",
    status_code=201,
    summary="Start a stream from a file or a URL",
    responses={
        409: _ERROR | {"description": "a stream with this id is already running"},
        422: _ERROR | {"description": "invalid request, or ingest cannot open the source"},
        503: _ERROR | {"description": "no ingest service answered in time"},
    },
)
async def start_stream(body: StartRequest, request: Request, response: Response) -> StreamInfo:
    state = _state(request)
    redis, settings, metrics = state["redis"], state["settings"], state["metrics"]
    if not body.source.strip():
        raise InvalidRequestError("source must be a file path or a URL, got only whitespace")
    sid = validate_sid(body.id) if body.id is not None else new_sid()
    try:
        existing: StreamInfo | None = await registry.get(redis, sid)
    except StreamNotFoundError:
        existing = None
    if existing is not None and existing.state.active:
        raise StreamExistsError(f"stream {sid!r} is already {existing.state.value}")
    try:
        reply = await control.start(
            redis, sid, body.source, body.mode, body.loop, settings.control_timeout_s,
            transport=body.rtsp_transport or "",
        )  # fmt: skip
    except IngestUnavailableError:
        metrics.control.labels(cmd="start", result="timeout").inc()
        raise
    metrics.control.labels(cmd="start", result="ok" if reply.ok else "refused").inc()
    if not reply.ok:
        log.info("ingest refused stream %s: %s", sid, reply.error, extra={"sid": sid})
        raise control.refused(reply)
    try:
        info = await registry.get(redis, sid)
    except StreamNotFoundError:  # ingest should have written it before replying; be lenient
        info = StreamInfo(sid=sid, source=redact_url(body.source), mode=body.mode, loop=body.loop)
    response.headers["Location"] = f"/api/streams/{sid}"
    return info


@router.delete(
    "/{sid}",
    status_code=204,
    summary="Stop a stream (if it runs), close its viewers and remove it with its data",
    responses={
        404: _ERROR,
        422: _ERROR | {"description": "not a stream id"},
        503: _ERROR | {"description": "ingest did not answer the stop"},
    },
)
async def delete_stream(sid: str, request: Request) -> Response:
    state = _state(request)
    redis, settings, metrics = state["redis"], state["settings"], state["metrics"]
    info = await registry.get(redis, validate_sid(sid))
    if info.state.active:
        try:
            reply = await control.stop(redis, sid, settings.control_timeout_s)
        except IngestUnavailableError:
            metrics.control.labels(cmd="stop", result="timeout").inc()
            if await count_heartbeats(redis, "ingest"):
                raise  # an ingest is alive but silent: the stream may still run
            log.warning(
                "no ingest is alive: removing stream %s without stopping it", sid,
                extra={"sid": sid},
            )  # fmt: skip
        else:
            metrics.control.labels(cmd="stop", result="ok" if reply.ok else "refused").inc()
            if not reply.ok and reply.status != 404:  # 404: ingest no longer runs it; fine
                raise control.refused(reply)
    closed = await state["hub"].close_stream(sid, DELETED)
    await registry.remove(redis, sid)
    await redis.delete(frames_key(sid), dets_key(sid), tracks_key(sid))
    log.info("deleted stream %s (%d viewers closed)", sid, closed, extra={"sid": sid})
    return Response(status_code=204)
