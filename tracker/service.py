"""The tracker service: owns streams by lease, tracks their detections, writes their tracks.

Every ``lease_s / 3`` the service looks at the registry: it renews the leases of the streams
it tracks (a stream whose lease it lost, or that left the registry, stopped or failed, is let
go), and takes the lease of streams nobody tracks: a new one (no tracks yet) up to its fair
share (the active streams over the live trackers, from their heartbeats), so that several
trackers spread the streams; an orphan (tracks, but no lease: its tracker died) at once, so
that a dead tracker's streams are taken over as soon as its leases expire.

Each owned stream has one task: ``XREAD`` on its detections from where it starts (live: the
newest; analyse: the oldest still held, after the frames already tracked), the
:class:`~tracker.reorder.Reorder` buffer, the :class:`~tracker.stream.StreamTracker` in a
thread (it is CPU work), and ``XADD`` of each frame's :class:`~pitchside.schema.TracksMsg`.
A stream that ended is followed until its last detections stop coming.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, cast

import cv2
import numpy as np
from redis.asyncio import Redis
from redis.exceptions import RedisError

from pitchside import registry
from pitchside.backoff import Backoff
from pitchside.bus import wait_for_redis
from pitchside.errors import SchemaError, SettingsError, StreamNotFoundError
from pitchside.heartbeat import Heartbeat, read_beats
from pitchside.redis_client import Entry, connect, stream_entries
from pitchside.schema import (
    DetsMsg,
    FrameMsg,
    Mode,
    StreamInfo,
    StreamState,
    TracksMsg,
    dets_key,
    frames_key,
    now_ns,
    tracks_key,
)
from pitchside.service import instance_name
from pitchside.settings import Settings
from tracker import metrics
from tracker.association import Detected
from tracker.lease import Leases
from tracker.reorder import Reorder
from tracker.stream import StreamTracker

log = logging.getLogger(__name__)

SERVICE = "tracker"
XREAD_COUNT = 64  # dets entries per read at most
BLOCK_MAX_S = 0.2  # the longest read, so that a held frame's deadline is kept
ENDED_IDLE_S = 2.0  # an ended stream is let go this long after its last detections
DEFAULT_FPS = 25.0
DEFAULT_WIDTH = 1920
RETRY_FIRST_S, RETRY_CAP_S = 0.5, 10.0  # waiting for Redis to answer again


class TrackerService:
    """One tracker process.

    Args:
        settings: ``tracker_lease_s``, ``tracker_wait_ms``, ``tracker_analyse_wait_s``,
            ``dets_maxlen`` (the tracks streams are bounded alike).
        redis: the bus.
        name: this instance's name: its leases' value and its health key id.
    """

    def __init__(self, settings: Settings, redis: Redis, name: str) -> None:
        self.settings = settings
        self.redis = redis
        self.name = name
        self.leases = Leases(redis, name, settings.tracker_lease_s)
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def owned(self) -> frozenset[str]:
        """The streams this instance tracks now."""
        return frozenset(self._tasks)

    async def run(self, stop: asyncio.Event) -> None:
        if not await wait_for_redis(self.redis, self.name, stop):
            return
        async with metrics.exporter(self.settings) as exporter:
            async with Heartbeat(self.redis, SERVICE, self.name, metrics=exporter.address):
                log.info("%s ready (lease %.1f s)", self.name, self.settings.tracker_lease_s)
                try:
                    await self._keep_leases(stop)
                finally:
                    await self._let_go_all()

    async def _keep_leases(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.tick()
            except RedisError as exc:  # the bus went away; try again next time
                log.warning("%s: looking at the streams failed: %s", self.name, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.tracker_lease_s / 3)

    async def tick(self) -> None:
        """Renew, let go and take leases, once."""
        infos = {info.sid: info for info in await registry.get_all(self.redis)}
        for sid, task in list(self._tasks.items()):
            info = infos.get(sid)
            gone = info is None or info.state in (StreamState.STOPPED, StreamState.FAILED)
            if task.done() or gone or not await self.leases.renew(sid):
                await self._let_go(sid, "its lease was lost" if not (task.done() or gone) else "")
        wanted = [i for i in infos.values() if i.state.active and i.sid not in self._tasks]
        if not wanted:
            metrics.owned(len(self._tasks))
            return
        trackers = max(1, len(await read_beats(self.redis, SERVICE)))
        fair = math.ceil(sum(1 for i in infos.values() if i.state.active) / trackers)
        for info in sorted(wanted, key=lambda i: i.created_ns):
            # a new stream goes to a tracker under its fair share; one that has tracks but no
            # owner lost its tracker, and the first to see it takes it, at once
            orphan = bool(await self.redis.exists(tracks_key(info.sid)))
            if len(self._tasks) >= fair and not orphan:
                continue
            if await self.leases.acquire(info.sid):
                metrics.lease_taken()
                log.info(
                    "tracker %s tracks stream %s", self.name, info.sid, extra={"sid": info.sid}
                )
                self._tasks[info.sid] = asyncio.create_task(
                    self._track(info), name=f"track {info.sid}"
                )
        metrics.owned(len(self._tasks))

    async def _let_go(self, sid: str, why: str) -> None:
        task = self._tasks.pop(sid)
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            try:
                await task
            except Exception:
                log.exception("stream %s: tracking failed", sid, extra={"sid": sid})
        if why:
            log.warning("tracker %s lets stream %s go: %s", self.name, sid, why, extra={"sid": sid})
        with contextlib.suppress(RedisError):
            await self.leases.release(sid)
        metrics.forget(sid)

    async def _let_go_all(self) -> None:
        for sid in list(self._tasks):
            await self._let_go(sid, "")

    # ---------------------------------------------------------------- one stream

    async def _track(self, info: StreamInfo) -> None:
        sid = info.sid
        analyse = info.mode is Mode.ANALYSE
        wait_s = (
            self.settings.tracker_analyse_wait_s
            if analyse
            else self.settings.tracker_wait_ms / 1000
        )
        reorder = Reorder(max_wait_s=wait_s)
        stream = StreamTracker(info.fps or DEFAULT_FPS, info.width or DEFAULT_WIDTH)
        last_id, after_seq = await self._start_point(sid, analyse)
        loop = asyncio.get_running_loop()
        ended_since: float | None = None
        retries = Backoff(RETRY_FIRST_S, RETRY_CAP_S)
        while True:
            try:
                held = reorder.wait_s(time.monotonic())
                block_s = BLOCK_MAX_S if held is None else min(BLOCK_MAX_S, held)
                reply = await self.redis.xread(
                    {dets_key(sid): last_id}, count=XREAD_COUNT, block=max(1, int(block_s * 1000))
                )
                retries.reset()
                entries = [e for _key, batch in stream_entries(reply) for e in batch]
                now = time.monotonic()
                for entry_id, fields in entries:
                    last_id = entry_id
                    try:
                        dets = DetsMsg.from_fields(fields)
                    except SchemaError:
                        metrics.dropped(sid, metrics.REASON_BAD_MESSAGE)
                        continue
                    if dets.seq <= after_seq:
                        continue  # tracked before this tracker took the stream over
                    if not reorder.push(dets, now):
                        metrics.dropped(sid, metrics.REASON_LATE)
                ready = reorder.pop_ready(time.monotonic())
                if ready:
                    await self._process(sid, stream, ready)
                if entries:
                    ended_since = None
                elif await self._ended(sid):
                    ended_since = ended_since or loop.time()
                    if loop.time() - ended_since > ENDED_IDLE_S and not len(reorder):
                        log.info("stream %s ended: tracking done", sid, extra={"sid": sid})
                        return
            except RedisError as exc:
                delay = retries.next_s()
                log.warning(
                    "stream %s: Redis failed (%s); retrying in %.1f s", sid, exc, delay,
                    extra={"sid": sid},
                )  # fmt: skip
                await asyncio.sleep(delay)

    async def _start_point(self, sid: str, analyse: bool) -> tuple[bytes | str, int]:
        """Where to read the detections from, and the last frame already tracked."""
        last = cast(list[Entry], await self.redis.xrevrange(tracks_key(sid), count=1))
        after_seq = -1
        if last:
            with contextlib.suppress(SchemaError):
                after_seq = TracksMsg.from_fields(last[0][1]).dets.seq
        if analyse:
            return "0-0", after_seq
        newest = cast(list[Entry], await self.redis.xrevrange(dets_key(sid), count=1))
        return (newest[0][0] if newest else "0-0"), after_seq

    async def _ended(self, sid: str) -> bool:
        try:
            info = await registry.get(self.redis, sid)
        except StreamNotFoundError:
            return True
        return not info.state.active

    async def _process(self, sid: str, stream: StreamTracker, batch: Sequence[DetsMsg]) -> None:
        jpeg = await self._jpeg(sid, batch[0]) if stream.wants_pixels() else None
        results = await asyncio.to_thread(_track_batch, stream, batch, jpeg, self.name)
        async with self.redis.pipeline(transaction=False) as pipe:
            for msg, _ in results:
                stamped = replace(
                    msg.dets, timings={**msg.dets.timings, "tracks_publish": now_ns()}
                )
                pipe.xadd(
                    tracks_key(sid), replace(msg, dets=stamped).to_fields(),
                    maxlen=self.settings.dets_maxlen, approximate=True,
                )  # fmt: skip
            await pipe.execute()
        metrics.tracked(sid, [s for _, s in results], len(stream.association.active_ids()))

    async def _jpeg(self, sid: str, dets: DetsMsg) -> bytes | None:
        found = cast(
            list[Entry], await self.redis.xrange(frames_key(sid), dets.frame_id, dets.frame_id)
        )
        if not found:
            return None  # trimmed already
        try:
            return FrameMsg.from_fields(found[0][1]).img
        except SchemaError:
            return None


def _track_batch(
    stream: StreamTracker, batch: Sequence[DetsMsg], jpeg: bytes | None, name: str
) -> list[tuple[TracksMsg, float]]:
    """Track each frame of ``batch`` in order (in a thread); ``jpeg`` is the first one's."""
    out: list[tuple[TracksMsg, float]] = []
    for i, dets in enumerate(batch):
        start = time.perf_counter()
        image = (lambda data=jpeg: _decode(data)) if i == 0 and jpeg is not None else None
        tracked = stream.update(_detections(dets), dets.ts_capture / 1e9, image)
        msg = TracksMsg(
            dets=replace(dets, timings={**dets.timings, "track_start": now_ns()}),
            tracks=[t.to_dict() for t in tracked.tracks],
            ball=tracked.ball_dict(),
            possession=tracked.possession_dict(),
            teams=tracked.teams,
            tracker=name,
        )
        out.append((msg, time.perf_counter() - start))
    return out


def _detections(dets: DetsMsg) -> list[Detected]:
    found = []
    for d in dets.detections:
        box: Any = tuple(float(v) for v in d["box"])
        found.append(Detected(box, float(d["score"]), int(d["cls"]), str(d["label"])))
    return found


def _decode(jpeg: bytes | None) -> np.ndarray | None:
    if jpeg is None:
        return None
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    return image if image is not None else None


async def serve(settings: Settings, stop: asyncio.Event, name: str | None = None) -> None:
    """Connect to Redis and track until ``stop`` is set.

    Raises:
        SettingsError: no ``REDIS_URL``.
    """
    name = name or instance_name(SERVICE)
    if settings.redis_url is None:
        raise SettingsError(
            "a standalone tracker needs REDIS_URL (only `pitchside up` starts an embedded Redis)"
        )
    redis = connect(settings.redis_url, name)
    try:
        await TrackerService(settings, redis, name).run(stop)
    finally:
        await redis.aclose()
