"""Commands to ingest over the control stream, and waiting for ingest's answer.

The gateway ``XADD``s a :class:`~pitchside.schema.ControlMsg` to ``pitchside:control``; one
ingest service of the ``ingest`` consumer group takes it and ``LPUSH``es a
:class:`~pitchside.schema.ControlReply` to ``reply_key(request_id)``, which the gateway pops
with ``BLPOP`` and a timeout.
"""

from __future__ import annotations

import logging
import uuid

from redis.asyncio import Redis

from pitchside.errors import IngestRefusedError, IngestUnavailableError
from pitchside.redact import redact_url
from pitchside.schema import CONTROL_KEY, Command, ControlMsg, ControlReply, Mode, reply_key

log = logging.getLogger(__name__)

# Commands are few and ingest reads them at once; the bound only stops a dead ingest from
# letting the control stream grow without end.
CONTROL_MAXLEN = 1000


def refused(reply: ControlReply) -> IngestRefusedError:
    """The error to answer with for ingest's refusal ``reply`` (its status and code)."""
    status = reply.status if 400 <= reply.status <= 599 else 502
    message = reply.error or f"ingest refused the command ({status})"
    return IngestRefusedError(message, status, reply.code or "ingest_error")


def new_request_id() -> str:
    return uuid.uuid4().hex


async def send_command(redis: Redis, msg: ControlMsg, timeout_s: float) -> ControlReply:
    """Send ``msg`` to ingest and wait up to ``timeout_s`` for its reply.

    Raises:
        IngestUnavailableError: no ingest service answered in time (HTTP 503).
        SchemaError: the reply is not a ControlReply.
    """
    await redis.xadd(CONTROL_KEY, msg.to_fields(), maxlen=CONTROL_MAXLEN, approximate=True)
    log.info(
        "sent %s for stream %s (source %s, request %s)",
        msg.cmd.value, msg.sid, redact_url(msg.source) or "-", msg.request_id,
        extra={"sid": msg.sid},
    )  # fmt: skip
    popped = await redis.blpop([reply_key(msg.request_id)], timeout=timeout_s)
    if popped is None:
        raise IngestUnavailableError(f"no ingest service answered within {timeout_s:g} s")
    reply = ControlReply.from_json(popped[1])
    log.info(
        "ingest answered %s for stream %s: ok=%s status=%d",
        msg.cmd.value, msg.sid, reply.ok, reply.status, extra={"sid": msg.sid},
    )  # fmt: skip
    return reply


async def start(
    redis: Redis,
    sid: str,
    source: str,
    mode: Mode,
    loop: bool,
    timeout_s: float,
    transport: str = "",
    job: str = "",
) -> ControlReply:
    """Ask ingest to start ``source`` as stream ``sid`` (``transport``: RTSP's, or ""; ``job``:
    the analysis job its frames belong to, or "")."""
    msg = ControlMsg(
        cmd=Command.START, sid=sid, request_id=new_request_id(), source=source, mode=mode,
        loop=loop, transport=transport, job=job,
    )  # fmt: skip
    return await send_command(redis, msg, timeout_s)


async def stop(redis: Redis, sid: str, timeout_s: float, session: str = "") -> ControlReply:
    """Ask ingest to stop stream ``sid`` (only if WHIP session ``session`` runs it, if given)."""
    msg = ControlMsg(cmd=Command.STOP, sid=sid, request_id=new_request_id(), session=session)
    return await send_command(redis, msg, timeout_s)


async def publish(
    redis: Redis, sid: str, session: str, offer: str, timeout_s: float
) -> ControlReply:
    """Hand a WebRTC publisher's SDP ``offer`` to ingest; its reply carries the answer."""
    msg = ControlMsg(
        cmd=Command.PUBLISH, sid=sid, request_id=new_request_id(), sdp=offer, session=session
    )
    return await send_command(redis, msg, timeout_s)
