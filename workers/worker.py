"""The worker consumer loop: frames in from the ``workers`` group, detections out.

Shaped like arq's ``Worker.main``/``_poll_iteration``: :meth:`Worker.run` calls one small
poll step in a loop, with counters on the object. Each iteration:

1. every ``REFRESH_S`` re-reads the registry and joins the group on each new frames stream;
   every ``claim_interval`` takes over entries a dead worker left pending (``XAUTOCLAIM``);
2. reads with one ``XREADGROUP`` over all streams; for live streams keeps the newest entry
   per stream and acknowledges the older ones at once (counted as skipped);
3. decodes the JPEGs and letterboxes them into one batch in the prepare thread, while up to
   ``lanes`` earlier batches infer side by side in the inference threads, each on its share
   of the CPU threads (analyse mode: most frames per second). A worker serving only live
   streams infers one batch at a time on every thread (lowest latency) and picks its next
   frames once the model is free, so they are the newest;
4. starts inference on that batch as soon as a lane is free, then post-processes the
   batches that finished, oldest first, and writes each one's detections and
   acknowledgements in one Redis pipeline.

Analyse streams are processed in order and acknowledged only after their detections are
written; an entry this worker read is never dropped. When ``stop`` is set the worker
finishes the batches in flight, writes and acknowledges them in order, and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from pitchside import registry
from pitchside.errors import PitchsideError, SchemaError, SettingsError
from pitchside.schema import (
    HEALTH_TTL_S,
    WORKERS_GROUP,
    DetsMsg,
    FrameMsg,
    Mode,
    StreamInfo,
    StreamState,
    WorkerBeat,
    dets_key,
    frames_key,
    health_key,
    now_ns,
    sid_from_frames_key,
)
from pitchside.settings import Settings
from workers import metrics
from workers.batch import Batch, Frame, Inferred, decode_jpeg, ids_by_key, round_robin
from workers.engines import Detector, load_for_worker
from workers.model_source import ModelWatcher, resolve
from workers.skip import newest_per_stream

log = logging.getLogger(__name__)

SERVICE = "worker"  # the service part of the health key
REFRESH_S = 0.5  # registry re-read period
HEARTBEAT_S = HEALTH_TTL_S / 3
LIVE_READ_COUNT = 64  # entries per live stream per read: more than a bounded stream holds
IDLE_WAIT_S = 0.1  # sleep between registry polls while no stream is active


class Worker:
    """One detection consumer in the ``workers`` group.

    Args:
        settings: batch size and timeout, claim idle time, dets stream length.
        redis: a client on the bus, with ``decode_responses=False`` (frames hold bytes).
        detector: the model with every thread, for live streams (one batch at a time).
        name: this consumer's name in the group, and its health key id.
        watcher: re-reads a registry alias and hands over newly promoted models.
        lanes_detector: the same model with each lane's share of the threads, for analyse
            streams (``settings.lanes`` batches side by side); default ``detector``.
    """

    def __init__(
        self,
        settings: Settings,
        redis: Redis,
        detector: Detector,
        name: str,
        watcher: ModelWatcher | None = None,
        lanes_detector: Detector | None = None,
    ) -> None:
        self.settings = settings
        self.redis = redis
        # Both replaced between batches when the watcher sees a new model.
        self.detector = detector
        self.lanes_detector = lanes_detector or detector
        self.name = name
        self.watcher = watcher
        self.model_swaps = 0
        self.frames_processed = 0
        self.frames_skipped = 0  # live frames acknowledged unprocessed (behind or stale)
        self.frames_bad = 0
        self.batches = 0
        self._streams: dict[str, StreamInfo] = {}  # frames key -> registry entry
        self._grouped: set[str] = set()  # frames keys whose group this worker ensured
        self._backlog: list[Frame] = []  # read, not yet in a batch
        self._held: set[tuple[str, str]] = set()  # (key, id) read and not yet acknowledged
        self._next_refresh = 0.0
        self._next_claim = 0.0
        self._claim_interval_s = max(REFRESH_S, settings.claim_idle_ms / 2000)
        self._block_ms = max(1, int(settings.batch_timeout_ms))
        self._prep_pool: ThreadPoolExecutor | None = None
        self._infer_pool: ThreadPoolExecutor | None = None

    # ---------------------------------------------------------------------------------------
    # Main loop

    async def run(self, stop: asyncio.Event, until_idle: bool = False) -> None:
        """Consume until ``stop`` is set, then finish the batch in flight and return.

        Args:
            stop: set it to stop; the batch being inferred is still written and acknowledged.
            until_idle: also return once nothing is left to read (no active stream has
                undelivered frames and nothing is in flight): deterministic tests.
        """
        log.info("worker %s serving %s", self.name, self.detector.model_id)
        self._prep_pool = ThreadPoolExecutor(1, thread_name_prefix=f"{self.name}-prep")
        self._infer_pool = ThreadPoolExecutor(
            self.settings.lanes, thread_name_prefix=f"{self.name}-infer"
        )
        background = [asyncio.create_task(self._heartbeat())]
        if self.watcher is not None and self.watcher.watching:
            background.append(asyncio.create_task(self._watch_model(self.watcher)))
        try:
            await self._main(stop, until_idle)
        finally:
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._prep_pool.shutdown(wait=False, cancel_futures=True)
            self._infer_pool.shutdown(wait=False, cancel_futures=True)
            try:
                await self.redis.delete(health_key(SERVICE, self.name))
            except RedisError as exc:
                log.warning("worker %s could not remove its health key: %s", self.name, exc)
        log.info(
            "worker %s stopped: %d frames processed, %d skipped, %d bad, %d batches",
            self.name,
            self.frames_processed,
            self.frames_skipped,
            self.frames_bad,
            self.batches,
        )

    async def _main(self, stop: asyncio.Event, until_idle: bool) -> None:
        inflight: deque[asyncio.Task[Inferred]] = deque()  # oldest first: published in order
        try:
            while not stop.is_set():
                if self._live_only():
                    # Live: one batch at a time, on every thread; pick the next frames only
                    # once the model is free, so they are the newest.
                    while inflight:
                        await self._publish(await inflight.popleft())
                batch = await self._poll_iteration(stop)
                finished: list[Inferred] = []
                if batch is not None and batch.prepared is not None:
                    while len(inflight) >= self._lanes():
                        finished.append(await inflight.popleft())
                    inflight.append(asyncio.create_task(self._infer(batch)))
                elif batch is not None:  # only bad frames
                    finished.append(Inferred(batch))
                while inflight and inflight[0].done():
                    finished.append(inflight.popleft().result())
                for done in finished:
                    await self._publish(done)  # post-processes while the next batches infer
                if until_idle and batch is None and not finished and not inflight:
                    return
            while inflight:
                await self._publish(await inflight.popleft())
        finally:
            for task in inflight:  # an error elsewhere: the threads finish on their own
                task.cancel()
            if self._backlog:
                log.info(
                    "worker %s leaves %d read frames pending for others to claim",
                    self.name,
                    len(self._backlog),
                )

    def _live_only(self) -> bool:
        """Every stream read now is live: freshness beats overlapping prepare and infer."""
        return all(info.mode == Mode.LIVE for info in self._streams.values())

    def _lanes(self) -> int:
        """Batches that may infer at once: one for live streams only, else ``lanes``."""
        return 1 if self._live_only() else self.settings.lanes

    async def _poll_iteration(self, stop: asyncio.Event) -> Batch | None:
        """Read, select and prepare the next batch; None when there is nothing to do."""
        await self._refresh_streams()
        await self._claim_stale()
        if not self._streams and not self._backlog:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), IDLE_WAIT_S)
            return None
        await self._read()
        frames = await self._select()
        if not frames:
            return None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._prep_pool, self._prepare, frames)

    # ---------------------------------------------------------------------------------------
    # Streams, reads, claims

    async def _refresh_streams(self) -> None:
        now = time.monotonic()
        if now < self._next_refresh:
            return
        self._next_refresh = now + REFRESH_S
        infos = await registry.get_all(self.redis)
        # ENDED streams stay readable: an uploaded match keeps its unread frames to finish.
        streams = {
            frames_key(i.sid): i for i in infos if i.state.active or i.state is StreamState.ENDED
        }
        new = [key for key in streams if key not in self._grouped]
        if new:
            pipe = self.redis.pipeline(transaction=False)
            for key in new:
                pipe.xgroup_create(key, WORKERS_GROUP, id="0", mkstream=True)
            for key, result in zip(new, await pipe.execute(raise_on_error=False), strict=True):
                if isinstance(result, Exception) and "BUSYGROUP" not in str(result):
                    log.warning("cannot join group on %s: %s", key, result)
                    continue
                self._grouped.add(key)
        if streams.keys() != self._streams.keys():
            log.info("worker %s reads %d streams", self.name, len(streams))
        self._streams = streams
        self._grouped &= streams.keys()

    async def _read(self) -> None:
        """One XREADGROUP over the streams; new entries go to the backlog."""
        live = [k for k, i in self._streams.items() if i.mode is Mode.LIVE]
        analyse = [k for k, i in self._streams.items() if i.mode is Mode.ANALYSE]
        waiting = sum(1 for f in self._backlog if f.mode is Mode.ANALYSE)
        keys = live + (analyse if waiting < self.settings.batch_max else [])
        keys = [k for k in keys if k in self._grouped]
        if not keys:
            if not self._backlog:  # nothing to read or prepare: do not spin
                await asyncio.sleep(self._block_ms / 1000)
            return
        try:
            reply = await self.redis.xreadgroup(
                WORKERS_GROUP,
                self.name,
                {key: ">" for key in keys},
                count=LIVE_READ_COUNT if live else self.settings.batch_max,
                block=None if self._backlog else self._block_ms,
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            log.warning("a frames stream lost its group, joining again: %s", exc)
            self._grouped.clear()
            self._next_refresh = 0.0
            return
        self._add(reply.items() if isinstance(reply, dict) else reply or [])

    def _add(self, reply: Iterable[Any]) -> None:
        dequeue_ns = now_ns()
        for raw_key, entries in reply:
            key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
            info = self._streams.get(key)
            mode = info.mode if info is not None else Mode.ANALYSE  # unknown: never skip
            for raw_id, fields in entries:
                if raw_id is None:  # deleted while pending: nothing to process or acknowledge
                    continue
                entry_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
                if (key, entry_id) in self._held:
                    continue
                self._held.add((key, entry_id))
                sid = sid_from_frames_key(key)
                self._backlog.append(Frame(key, sid, entry_id, mode, fields or {}, dequeue_ns))

    async def _claim_stale(self) -> None:
        """Take over entries idle for ``claim_idle_ms`` in another consumer's pending list.

        Analyse entries join the backlog; live ones are stale by then and are only
        acknowledged (counted as skipped, reason ``stale``).
        """
        now = time.monotonic()
        if now < self._next_claim:
            return
        self._next_claim = now + self._claim_interval_s
        stale: list[Frame] = []
        for key, info in list(self._streams.items()):
            if key not in self._grouped:
                continue
            reply = await self.redis.xautoclaim(
                key,
                WORKERS_GROUP,
                self.name,
                min_idle_time=self.settings.claim_idle_ms,
                start_id="0-0",
                count=self.settings.batch_max if info.mode is Mode.ANALYSE else LIVE_READ_COUNT,
            )
            before = len(self._backlog)
            self._add([(key, reply[1])])  # entries this worker already holds are left out
            if len(self._backlog) == before:
                continue
            log.info(
                "worker %s claimed %d idle entries of %s",
                self.name,
                len(self._backlog) - before,
                key,
            )
            if info.mode is Mode.LIVE:
                stale.extend(self._backlog[before:])
                del self._backlog[before:]
        if stale:
            await self._ack(stale)
            self._count_skipped(len(stale), metrics.REASON_STALE)

    async def _select(self) -> list[Frame]:
        """Apply the live skip policy and cut the next batch from the backlog."""
        live = [f for f in self._backlog if f.mode is Mode.LIVE]
        analyse = [f for f in self._backlog if f.mode is not Mode.LIVE]
        keep, skipped = newest_per_stream((f.key, [(f.entry_id, f)]) for f in live)
        if skipped:
            behind = [frame for entries in skipped.values() for _, frame in entries]
            await self._ack(behind)
            self._count_skipped(len(behind), metrics.REASON_BEHIND)
        newest = sorted((frame for _, frame in keep.values()), key=lambda f: f.dequeue_ns)
        ordered = newest + round_robin(analyse)
        n = self.settings.batch_max
        self._backlog = ordered[n:]
        return ordered[:n]

    async def _ack(self, frames: Sequence[Frame]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for key, ids in ids_by_key(frames).items():
            pipe.xack(key, WORKERS_GROUP, *ids)
        await pipe.execute()
        self._held.difference_update((f.key, f.entry_id) for f in frames)

    def _count_skipped(self, n: int, reason: str) -> None:
        self.frames_skipped += n
        metrics.FRAMES_DROPPED.labels(metrics.STAGE, reason).inc(n)

    # ---------------------------------------------------------------------------------------
    # Prepare, infer, publish

    def _prepare(self, frames: Sequence[Frame]) -> Batch:
        """Prepare thread: parse, decode and letterbox; unusable frames go to ``bad``."""
        start = time.perf_counter()
        live = self._live_only()  # a batch infers on the session that fits what it serves
        batch = Batch(detector=self.detector if live else self.lanes_detector)
        images: list[np.ndarray] = []
        for frame in frames:
            try:
                msg = FrameMsg.from_fields(frame.fields)
            except SchemaError as exc:
                batch.bad.append((frame, str(exc)))
                continue
            image = decode_jpeg(msg.img)
            if image is None:
                batch.bad.append((frame, "image is not a decodable JPEG"))
                continue
            batch.frames.append(frame)
            batch.msgs.append(msg)
            images.append(image)
        if images:
            batch.prepared = batch.detector.prepare(images)
        batch.decode_s = time.perf_counter() - start
        return batch

    async def _infer(self, batch: Batch) -> Inferred:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._infer_pool, self._infer_sync, batch)

    def _infer_sync(self, batch: Batch) -> Inferred:
        """Inference thread: run the model on one prepared batch."""
        if batch.prepared is None or batch.detector is None:
            raise ValueError("a batch without images cannot be inferred")
        start_ns, start = now_ns(), time.perf_counter()
        raw = batch.detector.infer(batch.prepared)
        return Inferred(batch, raw, start_ns, now_ns(), time.perf_counter() - start)

    def _messages(self, done: Inferred) -> tuple[list[dict[str, Any]], float]:
        """Prepare thread: NMS, boxes to source pixels, one DetsMsg per frame."""
        batch = done.batch
        if done.raw is None or batch.prepared is None or batch.detector is None:
            return [], 0.0
        start = time.perf_counter()
        detector = batch.detector
        per_image = detector.postprocess(done.raw, batch.prepared)
        publish_ns = now_ns()
        out = []
        for frame, msg, lb, dets in zip(
            batch.frames, batch.msgs, batch.prepared.letterboxes, per_image, strict=True
        ):
            h, w = lb.src_hw
            timings = {
                "capture": msg.ts_capture,
                "publish": msg.ts_publish,
                "dequeue": frame.dequeue_ns,
                "infer_start": done.infer_start_ns,
                "infer_end": done.infer_end_ns,
                "dets_publish": publish_ns,
            }
            out.append(
                DetsMsg(
                    seq=msg.seq,
                    frame_id=frame.entry_id,
                    ts_capture=msg.ts_capture,
                    w=w,
                    h=h,
                    model=detector.model_id,
                    detections=[d.to_dict() for d in dets],
                    timings=timings,
                    worker=self.name,
                    batch=len(batch.frames),
                ).to_fields()
            )
        return out, time.perf_counter() - start

    async def _publish(self, done: Inferred) -> None:
        """Write the detections of a batch and acknowledge its frames: one pipeline."""
        batch = done.batch
        loop = asyncio.get_running_loop()
        messages, post_s = await loop.run_in_executor(self._prep_pool, self._messages, done)
        pipe = self.redis.pipeline(transaction=False)
        for frame, fields in zip(batch.frames, messages, strict=True):
            pipe.xadd(
                dets_key(frame.sid), fields, maxlen=self.settings.dets_maxlen, approximate=True
            )
        bad = [frame for frame, _ in batch.bad]
        for key, ids in ids_by_key([*batch.frames, *bad]).items():
            pipe.xack(key, WORKERS_GROUP, *ids)
        await pipe.execute()
        self._held.difference_update((f.key, f.entry_id) for f in (*batch.frames, *bad))
        for frame, reason in batch.bad:
            log.warning(
                "bad frame %s of stream %s acknowledged unprocessed: %s",
                frame.entry_id,
                frame.sid,
                reason,
                extra={"sid": frame.sid},
            )
        if bad:
            self.frames_bad += len(bad)
            metrics.FRAMES_DROPPED.labels(metrics.STAGE, metrics.REASON_BAD_FRAME).inc(len(bad))
        n = len(batch.frames)
        if n:
            self.frames_processed += n
            self.batches += 1
            metrics.FRAMES_PROCESSED.labels(metrics.STAGE).inc(n)
            metrics.BATCH_SIZE.observe(n)
            metrics.STAGE_SECONDS.labels("decode").observe(batch.decode_s)
            metrics.STAGE_SECONDS.labels("infer").observe(done.infer_s)
            metrics.STAGE_SECONDS.labels("post").observe(post_s)

    async def _watch_model(self, watcher: ModelWatcher) -> None:
        """Load a newly promoted model off the loop and swap it in; batches keep their own."""
        while True:
            await asyncio.sleep(self.settings.model_poll_s)
            latest = await asyncio.to_thread(watcher.poll)
            if latest is None:
                continue
            try:
                detector, lanes_detector = await asyncio.to_thread(
                    load_for_worker, latest, self.settings
                )
            except PitchsideError as exc:
                log.error("worker %s keeps %s: %s", self.name, self.detector.model_id, exc)
                continue
            old = self.detector
            self.detector, self.lanes_detector = detector, lanes_detector
            self.model_swaps += 1
            log.info("worker %s switched from %s to %s", self.name, old.model_id, detector.model_id)

    async def _heartbeat(self) -> None:
        key = health_key(SERVICE, self.name)
        while True:
            try:
                beat = WorkerBeat(ts=now_ns(), model=self.detector.model_id)
                await self.redis.set(key, beat.to_json(), ex=HEALTH_TTL_S)
            except RedisError as exc:
                log.warning("worker %s heartbeat failed: %s", self.name, exc)
            await asyncio.sleep(HEARTBEAT_S)


def default_name() -> str:
    """A consumer name unique on this host: ``worker-<hostname>-<pid>``."""
    return f"worker-{socket.gethostname()}-{os.getpid()}"


async def serve(settings: Settings, stop: asyncio.Event, name: str | None = None) -> None:
    """Load the detector, connect to Redis and consume until ``stop`` is set.

    The model is loaded first, so that a bad model fails before anything else happens.
    ``name`` is the consumer name (default :func:`default_name`).

    Raises:
        ModelError: the model cannot be served.
        SettingsError: a bad provider list, or no ``REDIS_URL``.
    """
    model = await asyncio.to_thread(resolve, settings.model_uri, settings)
    detector, lanes_detector = await asyncio.to_thread(load_for_worker, model, settings)
    if settings.redis_url is None:
        raise SettingsError(
            "a standalone worker needs REDIS_URL (only `pitchside up` starts an embedded Redis)"
        )
    redis = Redis.from_url(settings.redis_url)
    try:
        watcher = ModelWatcher(model, settings)
        worker = Worker(settings, redis, detector, name or default_name(), watcher, lanes_detector)
        await worker.run(stop)
    finally:
        await redis.aclose()
