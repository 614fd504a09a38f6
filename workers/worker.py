"""The worker consumer loop: frames in from the ``workers`` group, detections out.

Shaped like arq's ``Worker.main``/``_poll_iteration``: :meth:`Worker.run` calls one small
poll step in a loop, with counters on the object. Each iteration:

1. the intake (:mod:`workers.intake`) refreshes the streams, claims entries a dead worker
   left pending, reads with one ``XREADGROUP`` over all streams and, for live streams, keeps
   the newest entry per stream and acknowledges the older ones at once (counted as skipped);
2. the prepare thread (:mod:`workers.lanes`) decodes the JPEGs and letterboxes them into one
   batch, while up to ``lanes`` earlier batches infer side by side in the inference threads,
   each on its share of the CPU threads (analyse mode: most frames per second). A worker
   serving only live streams infers one batch at a time on every thread (lowest latency) and
   picks its next frames once the model is free, so they are the newest;
3. inference on that batch starts as soon as a lane is free; the batches that finished are
   post-processed, oldest first, and each one's detections and acknowledgements written in
   one Redis pipeline (:mod:`workers.publish`).

Analyse streams are processed in order and acknowledged only after their detections are
written; an entry this worker read is never dropped. When ``stop`` is set the worker
finishes the batches in flight, writes and acknowledges them in order, and returns. While it
runs it serves its metrics (:mod:`workers.metrics`) on its own endpoint, keeps its health key
alive (:class:`~pitchside.heartbeat.Heartbeat`, naming that endpoint and the model it serves)
and, for a registry alias, swaps in a newly promoted model between batches.

Redis going away is waited for, with backoff (:mod:`pitchside.bus`): the worker forgets what
it had read and not batched (those entries stay pending on its name, and are read again when
Redis is back, or published again by ingest if Redis lost them), joins the groups again, and
goes on; a batch whose detections could not be written is left pending the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from redis.asyncio import Redis

from pitchside.bus import BUS_ERRORS, BusWait, wait_for_redis
from pitchside.errors import PitchsideError, SettingsError
from pitchside.heartbeat import Heartbeat
from pitchside.models import resolve
from pitchside.redis_client import connect
from pitchside.service import instance_name
from pitchside.settings import Settings
from workers import metrics
from workers.batch import Batch, Inferred
from workers.engines import Detector, load_for_worker
from workers.intake import Intake
from workers.lanes import Lanes
from workers.model_source import ModelWatcher
from workers.publish import Publisher

log = logging.getLogger(__name__)

SERVICE = "worker"  # the service part of the health key and of the instance name


class Worker:
    """One detection consumer in the ``workers`` group.

    Args:
        settings: batch size and timeout, lanes, claim idle time, dets stream length.
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
        self._intake = Intake(settings, redis, name)
        self._publisher = Publisher(settings, redis, name)
        self._bus = BusWait(name)

    @property
    def frames_processed(self) -> int:
        return self._publisher.processed

    @property
    def frames_skipped(self) -> int:
        """Live frames acknowledged unprocessed (behind, or stale)."""
        return self._intake.skipped

    @property
    def frames_bad(self) -> int:
        return self._publisher.bad

    @property
    def batches(self) -> int:
        return self._publisher.batches

    # ---------------------------------------------------------------------------------------
    # Main loop

    async def run(self, stop: asyncio.Event, until_idle: bool = False) -> None:
        """Consume until ``stop`` is set, then finish the batches in flight and return.

        Args:
            stop: set it to stop; the batches being inferred are still written and
                acknowledged.
            until_idle: also return once nothing is left to read (no active stream has
                undelivered frames and nothing is in flight): deterministic tests.
        """
        if not await wait_for_redis(self.redis, self.name, stop):
            return
        log.info("worker %s serving %s", self.name, self.detector.model_id)
        metrics.serving(self.detector.model_id)
        async with metrics.exporter(self.settings) as exporter:
            heartbeat = Heartbeat(
                self.redis, SERVICE, self.name, metrics=exporter.address, model=self._model_id
            )
            async with heartbeat, Lanes(self.name, self.settings.lanes) as lanes, self._watching():
                try:
                    await self._main(stop, until_idle, lanes)
                finally:
                    await self._publisher.results.close()
        log.info(
            "worker %s stopped: %d frames processed, %d skipped, %d bad, %d batches",
            self.name,
            self.frames_processed,
            self.frames_skipped,
            self.frames_bad,
            self.batches,
        )

    async def _main(self, stop: asyncio.Event, until_idle: bool, lanes: Lanes) -> None:
        try:
            while not stop.is_set():
                try:
                    idle = await self._iteration(stop, lanes)
                except BUS_ERRORS as exc:
                    self._intake.lost_bus()
                    await self._bus.pause(exc, stop)
                    continue
                self._bus.back()
                if until_idle and idle:
                    return
            async for done in lanes.drain():
                try:
                    await self._publish(done, lanes)
                except BUS_ERRORS as exc:  # stopping: what is not written stays pending
                    self._bus.failed(exc)
        finally:
            if self._intake.backlog:
                log.info(
                    "worker %s leaves %d read frames pending for others to claim",
                    self.name,
                    self._intake.backlog,
                )

    async def _iteration(self, stop: asyncio.Event, lanes: Lanes) -> bool:
        """One poll step; whether there was nothing to do (nothing read, nothing in flight)."""
        if len(lanes) and self._intake.live_only():
            # Live: one batch at a time, on every thread; pick the next frames only
            # once the model is free, so they are the newest.
            async for done in lanes.drain():
                await self._publish(done, lanes)
        batch = await self._poll_iteration(stop, lanes)
        finished: list[Inferred] = []
        if batch is not None and batch.prepared is not None:
            finished += await lanes.submit(batch, self._lane_limit())
        elif batch is not None:  # only bad frames
            finished.append(Inferred(batch))
        finished += lanes.finished()
        for done in finished:
            await self._publish(done, lanes)  # NMS while the next batches infer
        return batch is None and not finished and len(lanes) == 0

    def _lane_limit(self) -> int:
        """Batches that may infer at once: one for live streams only, else ``lanes``."""
        return 1 if self._intake.live_only() else self.settings.lanes

    async def _poll_iteration(self, stop: asyncio.Event, lanes: Lanes) -> Batch | None:
        """Read, select and prepare the next batch; None when there is nothing to do."""
        frames = await self._intake.next_frames(stop)
        if not frames:
            return None
        # A batch infers on the session that fits what the worker serves now.
        detector = self.detector if self._intake.live_only() else self.lanes_detector
        return await lanes.prepare(frames, detector)

    async def _publish(self, done: Inferred, lanes: Lanes) -> None:
        """Post-process a batch in the prepare thread, then write and acknowledge it."""
        messages, results, post_s = await lanes.in_prep(self._publisher.messages, done)
        try:
            written = await self._publisher.write(done, messages, results, post_s)
        except BUS_ERRORS:
            # Not acknowledged: pending on this worker's name, to be read again (or, if
            # Redis lost them, published again by ingest).
            self._intake.release([*done.batch.frames, *(frame for frame, _ in done.batch.bad)])
            raise
        self._intake.release(written)

    def _model_id(self) -> str:
        return self.detector.model_id

    # ---------------------------------------------------------------------------------------
    # Model swaps

    @contextlib.asynccontextmanager
    async def _watching(self) -> AsyncIterator[None]:
        """Follow the watcher's alias, if it has one, while inside."""
        if self.watcher is None or not self.watcher.watching:
            yield
            return
        task = asyncio.create_task(self._watch_model(self.watcher), name=f"{self.name} model")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

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
            metrics.serving(detector.model_id)
            log.info("worker %s switched from %s to %s", self.name, old.model_id, detector.model_id)


async def serve(settings: Settings, stop: asyncio.Event, name: str | None = None) -> None:
    """Load the detector, connect to Redis and consume until ``stop`` is set.

    The model is loaded first, so that a bad model fails before anything else happens.
    ``name`` is the consumer name, its health key id and its Redis client name (default
    ``instance_name("worker")``, ``worker-<host>-<pid>``).

    Raises:
        ModelError: the model cannot be served.
        SettingsError: a bad provider list, or no ``REDIS_URL``.
    """
    name = name or instance_name(SERVICE)
    model = await asyncio.to_thread(resolve, settings.model_uri, settings)
    detector, lanes_detector = await asyncio.to_thread(load_for_worker, model, settings)
    if settings.redis_url is None:
        raise SettingsError(
            "a standalone worker needs REDIS_URL (only `pitchside up` starts an embedded Redis)"
        )
    redis = connect(settings.redis_url, name)
    try:
        watcher = ModelWatcher(model, settings)
        worker = Worker(settings, redis, detector, name, watcher, lanes_detector)
        await worker.run(stop)
    finally:
        await redis.aclose()
