"""Analysis jobs: the keeper that starts them, follows them and ends them.

A job lives in the results store, not in this process: ``POST /api/jobs`` records it
``queued`` and wakes the keeper, and every ``TICK_S`` the keeper looks at each queued or
running job and at its stream (``job-<id>``, in the registry):

- queued: it asks ingest to start the upload in analyse mode as the job's stream; ingest
  refusing fails the job with ingest's reason, no ingest answering leaves it queued for the
  next tick; once started it is running;
- running: its progress is the number of frame results the workers have stored; when ingest
  has ended the stream (so its frame count is final) and every frame has its result, the
  job is done, or failed when some frame could not be analysed; a stream that failed (its
  ingest lost, too), was stopped or disappeared for ``RESTORE_GRACE_S`` (Redis may have lost
  its data: ingest writes the entry again) fails the job with the reason.

So a gateway that restarts, or several gateways, pick the jobs up where they are: every
step is decided from the store and the registry, and a job that has ended never changes
(:meth:`~pitchside.results.ResultsStore.update_job` only changes queued and running ones).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway import control
from gateway.metrics import JobProgress, Metrics
from pitchside import registry
from pitchside.bus import RESTORE_GRACE_S
from pitchside.errors import IngestUnavailableError, PitchsideError, StreamNotFoundError
from pitchside.results import JobRecord, JobState, ResultsStore
from pitchside.schema import Mode, StreamInfo, StreamState, dets_key, frames_key, tracks_key
from pitchside.settings import Settings
from pitchside.uploads import job_sid, upload_source

log = logging.getLogger(__name__)

TICK_S = 0.5
MAX_ACTIVE = 1000  # jobs looked at per tick


class JobKeeper:
    """Drives the queued and running jobs of the store; one per gateway process.

    Args:
        settings: ``control_timeout_s`` bounds a start command.
        redis: the bus (registry, control stream).
        store: the results store holding the jobs and their frame results.
        metrics: the gateway's metrics: each running job's progress, the jobs ended.
    """

    def __init__(
        self, settings: Settings, redis: Redis, store: ResultsStore, metrics: Metrics
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.store = store
        self.metrics = metrics
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._missing: dict[str, float] = {}  # job id -> monotonic time its stream went missing

    def wake(self) -> None:
        """Look at the jobs now (a job was created or cancelled)."""
        self._wake.set()

    async def __aenter__(self) -> JobKeeper:
        self._task = asyncio.create_task(self._run(), name="gateway-jobs")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except (PitchsideError, RedisError, OSError) as exc:  # the store or Redis is away
                log.warning("jobs not followed this time: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), TICK_S)
            self._wake.clear()

    async def tick(self) -> None:
        """One look at every queued or running job."""
        jobs, _ = await asyncio.to_thread(self.store.list_jobs, MAX_ACTIVE, 0, True)
        running: dict[str, JobProgress] = {}
        for job in reversed(jobs):  # oldest first
            progress = await self._follow(job)
            if progress is not None:
                running[job_sid(job.id)] = progress
        self.metrics.set_running_jobs(running)

    async def _follow(self, job: JobRecord) -> JobProgress | None:
        """Take ``job`` one step on; its progress if it still runs."""
        sid = job_sid(job.id)
        info: StreamInfo | None
        try:
            info = await registry.get(self.redis, sid)
        except StreamNotFoundError:
            info = None
        if job.state is JobState.QUEUED:
            await self._start(job, info)
            return None
        done = await asyncio.to_thread(self.store.count_frames, job.id)
        if info is None:
            if self._missing_for(job.id) < RESTORE_GRACE_S:  # Redis may have lost its data
                return JobProgress(done, job.frames_total, job.updated.timestamp())
            await self._end(job, JobState.FAILED, done, "its stream disappeared from the registry")
            return None
        self._missing.pop(job.id, None)
        if info.state is StreamState.FAILED:
            await self._end(job, JobState.FAILED, done, f"the video failed: {info.error}")
        elif info.state is StreamState.STOPPED:
            await self._end(job, JobState.FAILED, done, "its stream was stopped")
        elif info.state is StreamState.ENDED and done >= info.frames:
            errors = await asyncio.to_thread(self.store.count_frame_errors, job.id)
            if errors:
                why = f"{errors} of {info.frames} frames could not be analysed"
                await self._end(job, JobState.FAILED, done, why, info.frames)
            else:
                await self._end(job, JobState.DONE, done, None, info.frames)
        else:  # frames still coming or being detected
            total = info.frames if info.state is StreamState.ENDED else None
            if done != job.frames_done or (total is not None and total != job.frames_total):
                started = job.started or (_now() if done else None)
                updated = await asyncio.to_thread(
                    self.store.update_job, job.id, frames_done=done, frames_total=total,
                    started=started,
                )  # fmt: skip
                job = updated or job
            expected = total if total is not None else job.frames_total
            return JobProgress(done, expected, job.updated.timestamp())
        return None

    def _missing_for(self, job_id: str) -> float:
        """Seconds since the stream of running job ``job_id`` was first found missing."""
        now = time.monotonic()
        return now - self._missing.setdefault(job_id, now)

    async def _start(self, job: JobRecord, info: StreamInfo | None) -> None:
        sid = job_sid(job.id)
        if info is None or not (info.state.active or info.state is StreamState.ENDED):
            try:
                reply = await control.start(
                    self.redis, sid, upload_source(job.upload_id), Mode.ANALYSE, False,
                    self.settings.control_timeout_s, job=job.id,
                )  # fmt: skip
            except IngestUnavailableError:
                log.warning("job %s stays queued: no ingest answered", job.id)
                return
            if not reply.ok and reply.status != 409:  # 409: another gateway started it
                await self._end(job, JobState.FAILED, 0, f"ingest refused it: {reply.error}")
                return
        await asyncio.to_thread(self.store.update_job, job.id, state=JobState.RUNNING)
        log.info("job %s running as stream %s", job.id, sid, extra={"sid": sid})

    async def _end(
        self,
        job: JobRecord,
        state: JobState,
        done: int,
        error: str | None,
        total: int | None = None,
    ) -> None:
        ended = await asyncio.to_thread(
            self.store.update_job, job.id, state=state, frames_done=done, frames_total=total,
            error=error, finished=_now(), started=job.started or _now(),
        )  # fmt: skip
        self._missing.pop(job.id, None)
        if ended is None:
            return  # it had ended already (cancelled meanwhile, or another gateway)
        self.metrics.job_ended(state.value)
        log.info(
            "job %s %s: %d frames%s", job.id, state.value, done, f" ({error})" if error else ""
        )
        await remove_stream(self.redis, job_sid(job.id))


async def remove_stream(redis: Redis, sid: str) -> None:
    """Forget a job's stream: its registry entry and keys (its results are in the store)."""
    await registry.remove(redis, sid)
    await redis.delete(frames_key(sid), dets_key(sid), tracks_key(sid))


def _now() -> datetime:
    return datetime.now(UTC)
