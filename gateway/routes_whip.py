"""WebRTC publishing over WHIP (RFC 9725): ``POST /whip/{sid}`` with an SDP offer.

The gateway holds no peer connection: it relays the offer to ingest over the control stream
(the reply-key pattern of :mod:`gateway.control`) and answers ``201 Created`` with ingest's
SDP answer and the session's ``Location``; ``DELETE`` on that URL ends the session. ICE is
not trickled (both descriptions carry every candidate), so ``PATCH`` answers 405.
"""

from __future__ import annotations

import logging
import re
import secrets
from typing import TYPE_CHECKING, cast

from fastapi import APIRouter, Request, Response

from gateway import control
from pitchside.errors import (
    IngestUnavailableError,
    OfferError,
    PitchsideError,
    StreamNotFoundError,
)
from pitchside.schema import validate_sid

if TYPE_CHECKING:
    from gateway.app import State

log = logging.getLogger(__name__)

router = APIRouter(prefix="/whip", tags=["webrtc"])

SDP = "application/sdp"
MAX_OFFER_BYTES = 64 * 1024  # as ingest's limit: a real offer is a few KB
_SESSION = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_ERROR = {"description": "{error, detail}", "content": {"application/json": {}}}


class UnsupportedMediaTypeError(PitchsideError):
    status = 415
    code = "unsupported_media_type"


class OfferTooLargeError(PitchsideError):
    status = 413
    code = "content_too_large"


def _state(request: Request) -> State:
    return cast("State", request.state)


async def _offer(request: Request) -> str:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != SDP:
        raise UnsupportedMediaTypeError(
            f"a WHIP offer must be sent as {SDP}, got {media_type or 'no Content-Type'}"
        )
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_OFFER_BYTES:
            raise OfferTooLargeError(f"the SDP offer is larger than {MAX_OFFER_BYTES} bytes")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise OfferError("the SDP offer is not UTF-8 text") from None


@router.post(
    "/{sid}",
    status_code=201,
    summary="Publish a camera over WebRTC (WHIP): send an SDP offer, get the answer",
    response_class=Response,
    responses={
        201: {"description": "the SDP answer; Location names the session", "content": {SDP: {}}},
        400: _ERROR | {"description": "the offer is malformed or sends no video"},
        403: _ERROR | {"description": "WebRTC publishing is turned off"},
        409: _ERROR | {"description": "a stream with this id is already running"},
        413: _ERROR,
        415: _ERROR,
        503: _ERROR | {"description": "no ingest service answered in time"},
    },
)
async def publish(sid: str, request: Request) -> Response:
    state = _state(request)
    redis, settings, metrics = state["redis"], state["settings"], state["metrics"]
    sid = validate_sid(sid)
    offer = await _offer(request)
    session = secrets.token_urlsafe(16)
    try:
        reply = await control.publish(redis, sid, session, offer, settings.control_timeout_s)
    except IngestUnavailableError:
        metrics.control.labels(cmd="publish", result="timeout").inc()
        raise
    metrics.control.labels(cmd="publish", result="ok" if reply.ok else "refused").inc()
    if not reply.ok or not reply.sdp:
        log.info("ingest refused WHIP stream %s: %s", sid, reply.error, extra={"sid": sid})
        raise control.refused(reply)
    return Response(
        reply.sdp,
        status_code=201,
        media_type=SDP,
        headers={"Location": f"/whip/{sid}/{session}"},
    )


@router.delete(
    "/{sid}/{session}",
    summary="End a WHIP session: the stream stops (it stays listed until deleted)",
    responses={404: _ERROR, 503: _ERROR | {"description": "ingest did not answer"}},
)
async def end_session(sid: str, session: str, request: Request) -> Response:
    state = _state(request)
    redis, settings, metrics = state["redis"], state["settings"], state["metrics"]
    sid = validate_sid(sid)
    if not _SESSION.match(session):
        raise StreamNotFoundError(f"no such WHIP session runs stream {sid!r}")
    try:
        reply = await control.stop(redis, sid, settings.control_timeout_s, session=session)
    except IngestUnavailableError:
        metrics.control.labels(cmd="stop", result="timeout").inc()
        raise
    metrics.control.labels(cmd="stop", result="ok" if reply.ok else "refused").inc()
    if not reply.ok:
        raise control.refused(reply)
    return Response(status_code=200)


@router.patch("/{sid}/{session}", include_in_schema=False)
async def patch_session(sid: str, session: str) -> Response:
    # RFC 9725 s4.3: a server without trickle ICE and ICE restarts answers PATCH with 405.
    return Response(status_code=405, headers={"Allow": "DELETE"})


@router.options("/{sid}", include_in_schema=False)
async def options(sid: str) -> Response:
    return Response(status_code=204, headers={"Allow": "POST, OPTIONS", "Accept-Post": SDP})
