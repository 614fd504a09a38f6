"""The ingest service: obey start/stop commands from the control stream, run one task per stream.

Commands arrive on ``pitchside:control`` (consumer group ``ingest``, one consumer per
process); each gets one :class:`~pitchside.schema.ControlReply` on its reply key and is
acknowledged, malformed ones included. The service announces itself with a heartbeat key
(``health_key("ingest", name)``, a :class:`~pitchside.schema.Beat` naming its ``/metrics``
address), first written once its consumer group exists: a client that sees the heartbeat may
send commands. It serves its metrics (:mod:`ingest.metrics`) on its own endpoint while it runs,
and forgets a stream's series within ``METRICS_SWEEP_S`` of the stream leaving the registry.
On stop, every running stream ends STOPPED and its task and decode thread end within
``STOP_DEADLINE_S``.

Each stream it runs names it as ``owner`` in the registry, and its heartbeat is the lease on
them: every ``OWNERS_SWEEP_S`` each ingest instance marks the active streams whose owner has no
heartbeat FAILED ("ingest lost"), so that their ids can be started again and their jobs end,
within about ``HEALTH_TTL_S`` of the owner's death. Redis going away is waited for
(:mod:`pitchside.bus`); when it comes back without its data, the service creates its group
again, beats, and writes the registry entry of every stream it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from ingest import metrics
from ingest.access import check_allowed
from ingest.runner import StreamRunner
from ingest.sources import SourceInfo, SourceSpec, parse, probe_in_thread
from ingest.sources.webrtc import SCHEME as WHIP_SCHEME
from ingest.sources.webrtc import SHOWN as WHIP_SHOWN
from ingest.sources.webrtc import WhipPeer, restrict_host_addresses
from pitchside import registry
from pitchside.bus import BUS_ERRORS, BusWait, bus_epoch, wait_for_redis
from pitchside.embedded_redis import redis_url_or_embedded
from pitchside.errors import (
    ForbiddenError,
    InvalidRequestError,
    PitchsideError,
    SchemaError,
    SourceError,
    StreamExistsError,
    StreamNotFoundError,
)
from pitchside.heartbeat import Heartbeat, read_beats
from pitchside.redact import redact_url
from pitchside.redis_client import connect, stream_entries
from pitchside.schema import (
    CONTROL_KEY,
    HEALTH_TTL_S,
    INGEST_GROUP,
    REPLY_TTL_S,
    Command,
    ControlMsg,
    ControlReply,
    Mode,
    StreamInfo,
    StreamState,
    reply_key,
    validate_sid,
)
from pitchside.service import instance_name
from pitchside.settings import Settings

log = logging.getLogger(__name__)

SERVICE = "ingest"  # the service part of its health key
STOP_DEADLINE_S = 5.0  # a stopping stream gets this long before its task is cancelled
READ_BLOCK_MS = 500  # XREADGROUP block: also how fast the service notices its stop event
READ_COUNT = 16
METRICS_SWEEP_S = 5.0  # how often the series of streams no longer in the registry are removed
OWNERS_SWEEP_S = HEALTH_TTL_S / 3  # how often the owners of active streams are looked at
INGEST_LOST = "ingest lost"  # the error of a stream whose ingest instance died


@dataclass(slots=True)
class _Running:
    runner: StreamRunner
    task: asyncio.Task[StreamState]
    session: str = ""  # a WebRTC publisher's WHIP session; "" for other sources


class IngestService:
    """Consumes control commands and runs the streams they start.

    A failure in one stream (or one command) never disturbs the others.
    """

    def __init__(self, settings: Settings, redis: Redis, name: str) -> None:
        """Create the service.

        Args:
            settings: passed down to every stream.
            redis: client of the bus (not closed by the service).
            name: consumer name in the ``ingest`` group and heartbeat id; unique per process.
        """
        self._settings = settings
        self._redis = redis
        self._name = name
        self._runs: dict[str, _Running] = {}
        self._swept_at = 0.0  # monotonic time of the last metrics sweep
        self._owners_at = 0.0  # ... and of the last look at the owners of active streams
        self._bus = BusWait(name)
        self._epoch = ""  # of the bus the group, the beat and the streams were written to
        self._connected_at = time.monotonic()  # since when Redis answers (after an outage)
        self._group_lost = False  # the control group was missing: Redis may have lost its data

    @property
    def running(self) -> list[str]:
        """Ids of the streams this service is running now."""
        return sorted(self._runs)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve commands until ``stop`` is set, then stop every stream and clean up."""
        if not await wait_for_redis(self._redis, self._name, stop):
            return
        self._epoch = await bus_epoch(self._redis)
        await self._ensure_group()  # before the first beat: who sees it may send commands
        await self._sweep_metrics()  # before the first beat too: no series of a stream gone
        async with metrics.exporter(self._settings) as exporter:
            beat = Heartbeat(self._redis, SERVICE, self._name, metrics=exporter.address)
            async with beat:
                log.info("ingest %s ready", self._name)
                try:
                    while not stop.is_set():
                        try:
                            await self._serve_once(beat)
                        except BUS_ERRORS as exc:
                            await self._bus.pause(exc, stop)
                finally:
                    await self.shutdown()
        log.info("ingest %s stopped", self._name)

    async def _serve_once(self, beat: Heartbeat) -> None:
        """Read and handle the next commands, and sweep; first, after an outage, restore."""
        if self._bus.lost or self._group_lost:
            await self._restore(beat)
        for entry_id, fields in await self._read():
            await self._handle(entry_id, fields)
        if self._bus.back():
            self._connected_at = time.monotonic()
        await self._sweep_metrics()
        await self._sweep_owners()

    async def _restore(self, beat: Heartbeat) -> None:
        """Redis answers again: when it lost its data, write again what this service owns."""
        self._group_lost = False
        epoch = await bus_epoch(self._redis)
        if epoch == self._epoch:
            return
        log.warning(
            "ingest %s: Redis lost its data; writing the group, the heartbeat and %d streams "
            "again", self._name, len(self._runs),
        )  # fmt: skip
        await self._ensure_group()
        await beat.beat()
        for running in list(self._runs.values()):
            await registry.put(self._redis, running.runner.info)
            running.runner.publisher.bus_may_have_reset()
        self._epoch = epoch

    async def shutdown(self) -> None:
        """Stop every running stream (STOPPED) within the deadline."""
        runs = list(self._runs.values())
        if runs:
            log.info("stopping %d streams", len(runs))
            await asyncio.gather(*(self._stop_stream(r) for r in runs))

    async def _sweep_metrics(self) -> None:
        """Every METRICS_SWEEP_S, forget the series of the streams deleted from the registry."""
        if time.monotonic() - self._swept_at < METRICS_SWEEP_S:
            return
        self._swept_at = time.monotonic()
        try:
            metrics.keep_only(await registry.ids(self._redis) | self._runs.keys())
        except RedisError as exc:  # not worth stopping for: try again at the next sweep
            log.warning("metrics sweep failed: %s", exc)

    async def _sweep_owners(self) -> None:
        """Every OWNERS_SWEEP_S, mark FAILED the active streams whose ingest has died."""
        if time.monotonic() - self._owners_at < OWNERS_SWEEP_S:
            return
        self._owners_at = time.monotonic()
        infos = await registry.get_all(self._redis)
        if not any(info.state.active for info in infos):
            return
        alive = {beat.name for beat in await read_beats(self._redis, SERVICE)}
        for info in infos:
            if self._owner_lost(info, alive):
                await self._mark_lost(info)

    def _owner_lost(self, info: StreamInfo, alive: set[str]) -> bool:
        """Whether ``info`` is active but its owner is not running it any more."""
        if not info.state.active or info.owner is None:  # None: written by an older ingest
            return False
        if info.owner == self._name:  # a former process of this name, or a stream gone
            return info.sid not in self._runs
        # Right after an outage every heartbeat may have expired: give the owners a beat.
        recent = time.monotonic() - self._connected_at < HEALTH_TTL_S
        return info.owner not in alive and not recent

    async def _mark_lost(self, info: StreamInfo) -> None:
        log.warning(
            "stream %s: its ingest %s is gone; marked failed", info.sid, info.owner,
            extra={"sid": info.sid},
        )  # fmt: skip
        info.state, info.error = StreamState.FAILED, f"{INGEST_LOST} ({info.owner})"
        await registry.put(self._redis, info)

    # -- control stream ----------------------------------------------------------------------

    async def _ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(CONTROL_KEY, INGEST_GROUP, id="$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _read(self) -> list[tuple[bytes, dict[bytes, bytes]]]:
        try:
            reply = await self._redis.xreadgroup(
                INGEST_GROUP, self._name, {CONTROL_KEY: ">"}, count=READ_COUNT, block=READ_BLOCK_MS
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            log.warning("control stream or group vanished; creating it again")
            await self._ensure_group()
            self._group_lost = True
            return []
        return [entry for _key, entries in stream_entries(reply) for entry in entries]

    async def _handle(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        request_id = _request_id(fields)
        try:
            try:
                msg = ControlMsg.from_fields(fields)
            except SchemaError as exc:
                log.warning("malformed control entry %s: %s", entry_id.decode(), exc)
                reply = ControlReply(ok=False, error=str(exc), status=400, code=exc.code)
            else:
                reply = await self._dispatch(msg)
            if request_id:
                await self._reply(request_id, reply)
        except Exception:  # one bad command must not stop the service
            log.exception("control entry %s failed", entry_id.decode())
            if request_id:
                with contextlib.suppress(Exception):
                    await self._reply(request_id, ControlReply(False, "internal error", 500))
        finally:
            await self._redis.xack(CONTROL_KEY, INGEST_GROUP, entry_id)

    async def _dispatch(self, msg: ControlMsg) -> ControlReply:
        try:
            if msg.cmd is Command.START:
                return await self._start(msg)
            if msg.cmd is Command.PUBLISH:
                return await self._publish(msg)
            return await self._stop(msg)
        except PitchsideError as exc:
            return ControlReply(ok=False, error=str(exc), status=exc.status, code=exc.code)

    async def _reply(self, request_id: str, reply: ControlReply) -> None:
        key = reply_key(request_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.lpush(key, reply.to_json())
            pipe.expire(key, REPLY_TTL_S)
            await pipe.execute()

    # -- commands ----------------------------------------------------------------------------

    async def _check_free(self, sid: str) -> None:
        """Raise StreamExistsError (409) when ``sid`` runs, here or in another ingest; a
        stream whose ingest is gone is marked so, and is free."""
        if sid in self._runs:
            raise StreamExistsError(f"stream {sid!r} is already running")
        with contextlib.suppress(StreamNotFoundError):
            known = await registry.get(self._redis, sid)
            if not known.state.active:
                return
            alive = {beat.name for beat in await read_beats(self._redis, SERVICE)}
            if not self._owner_lost(known, alive):
                raise StreamExistsError(f"stream {sid!r} is already {known.state.value}")
            await self._mark_lost(known)

    def _run(self, runner: StreamRunner, peer: WhipPeer | None = None) -> None:
        sid = runner.sid

        async def run() -> StreamState:
            try:
                return await runner.run()
            finally:
                if peer is not None:
                    await peer.close()

        task = asyncio.create_task(run(), name=f"ingest-stream-{sid}")
        self._runs[sid] = _Running(runner, task, peer.session if peer else "")
        task.add_done_callback(lambda done: self._forget(sid, done))

    async def _start(self, msg: ControlMsg) -> ControlReply:
        sid = validate_sid(msg.sid)
        extra = {"sid": sid}
        await self._check_free(sid)
        info = StreamInfo(
            sid=sid, source=redact_url(msg.source), mode=msg.mode, loop=msg.loop,
            job=msg.job or None, owner=self._name,
        )  # fmt: skip
        spec: SourceSpec | None = None
        probed: SourceInfo | None = None
        try:
            spec = check_allowed(
                parse(
                    msg.source,
                    loop=msg.loop,
                    transport=msg.transport or self._settings.rtsp_transport,
                    timeout_s=self._settings.source_timeout_s,
                ),
                self._settings,
            )
            probed = await probe_in_thread(spec)
        except SourceError as exc:
            if spec is None or not (exc.retryable and spec.kind.reconnects):
                info.state, info.error = StreamState.FAILED, str(exc)
                metrics.STATES.set(sid, info.state)
                await registry.put(self._redis, info)
                log.warning("stream %s refused: %s", sid, exc, extra=extra)
                raise
            # A camera that does not answer yet is accepted: it is tried until it does.
            info.error = str(exc)
            log.warning("stream %s accepted, its camera not answering: %s", sid, exc, extra=extra)
        metrics.STATES.set(sid, info.state)
        await registry.put(self._redis, info)
        self._run(StreamRunner(self._redis, self._settings, info, spec, probed))
        shape = f"{probed.width}x{probed.height} {probed.codec}" if probed else "not probed"
        log.info(
            "stream %s accepted: %s (%s), %s, %s",
            sid, info.source, spec.kind.name, msg.mode.value, shape, extra=extra,
        )  # fmt: skip
        return ControlReply(ok=True, status=201)

    async def _publish(self, msg: ControlMsg) -> ControlReply:
        """Answer a WebRTC publisher's offer and run its video as stream ``msg.sid``."""
        sid = validate_sid(msg.sid)
        if WHIP_SCHEME not in self._settings.source_schemes:
            raise ForbiddenError("WebRTC publishing is turned off here (PITCHSIDE_SOURCE_SCHEMES)")
        if not msg.session:
            raise InvalidRequestError("a publish command needs a session id")
        await self._check_free(sid)
        restrict_host_addresses(self._settings.ice_addresses)
        peer = WhipPeer(self._settings, sid, msg.session)
        try:
            answer = await peer.answer(msg.sdp)
        except BaseException:
            await peer.close()
            raise
        info = StreamInfo(sid=sid, source=WHIP_SHOWN, mode=Mode.LIVE, owner=self._name)
        metrics.STATES.set(sid, info.state)
        await registry.put(self._redis, info)
        self._run(StreamRunner(self._redis, self._settings, info, peer.spec), peer)
        log.info("stream %s accepted: a WebRTC publisher", sid, extra={"sid": sid})
        return ControlReply(ok=True, status=201, sdp=answer)

    async def _stop(self, msg: ControlMsg) -> ControlReply:
        sid = validate_sid(msg.sid)
        running = self._runs.get(sid)
        if msg.session and (running is None or running.session != msg.session):
            # A WHIP DELETE: only its own session may be ended, and one that is over is gone.
            raise StreamNotFoundError(f"no such WHIP session runs stream {sid!r}")
        if running is not None:
            await self._stop_stream(running)
            return ControlReply(ok=True, status=200)
        known = await registry.get(self._redis, sid)  # StreamNotFoundError -> 404
        if known.state.active:
            raise StreamNotFoundError(f"stream {sid!r} is {known.state.value} but not run here")
        return ControlReply(ok=True, status=200)  # already over: nothing to stop

    async def _stop_stream(self, running: _Running) -> None:
        sid = running.runner.sid
        running.runner.stop.set()
        done, _ = await asyncio.wait({running.task}, timeout=STOP_DEADLINE_S)
        if not done:
            log.warning(
                "stream %s ignored stop for %.0f s; cancelling",
                sid,
                STOP_DEADLINE_S,
                extra={"sid": sid},
            )
            running.task.cancel()
            await asyncio.wait({running.task}, timeout=STOP_DEADLINE_S)

    def _forget(self, sid: str, task: asyncio.Task[StreamState]) -> None:
        current = self._runs.get(sid)
        if current is not None and current.task is task:
            del self._runs[sid]
        if not task.cancelled() and task.exception() is not None:
            log.error("stream %s task raised", sid, exc_info=task.exception(), extra={"sid": sid})


def _request_id(fields: dict[bytes, bytes]) -> str:
    raw = fields.get(b"request_id", b"")
    try:
        return raw.decode().strip()
    except UnicodeDecodeError:
        return ""


async def serve(settings: Settings, stop: asyncio.Event, name: str | None = None) -> None:
    """Run an ingest service until ``stop`` is set (the body of ``python -m ingest``).

    Connects to ``settings.redis_url``, or starts an embedded redis-server when it is None.

    Args:
        settings: the process's settings.
        stop: set by a signal handler (or a test) to drain and return.
        name: consumer and heartbeat name; default ``instance_name("ingest")``.
    """
    async with contextlib.AsyncExitStack() as stack:
        url = stack.enter_context(redis_url_or_embedded(settings.redis_url))
        name = name or instance_name(SERVICE)
        redis = connect(url, name)
        stack.push_async_callback(redis.aclose)
        await IngestService(settings, redis, name).run(stop)
