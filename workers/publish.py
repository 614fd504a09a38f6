"""The end of a batch: NMS into one DetsMsg per frame, the frame results of analysis jobs
into the results store, then one pipeline of XADD and XACK.

A batch's detections and the acknowledgements of its frames (bad ones included) go to Redis
in one round trip, after which the frames are done: an analyse entry is acknowledged only
once its detections are written, and a job's frame only once its result is stored (a bad
frame of a job is stored too, with the reason, so that the job can end). The counters and
metrics of processed and bad frames are kept here.
"""

from __future__ import annotations

import logging
import time

from redis.asyncio import Redis

from pitchside.errors import ResultsStoreError
from pitchside.results import FrameRecord
from pitchside.schema import WORKERS_GROUP, DetsMsg, Fields, dets_key, now_ns
from pitchside.settings import Settings
from workers import metrics
from workers.batch import Frame, Inferred, ids_by_key
from workers.results import ResultsWriter

#: ``(job id, record)``: a frame result to store before the frame is acknowledged.
JobResult = tuple[str, FrameRecord]

log = logging.getLogger(__name__)


class Publisher:
    """Writes one worker's detections.

    Args:
        settings: ``dets_maxlen``.
        redis: a client on the bus.
        name: the worker's name, stamped on each DetsMsg.
    """

    def __init__(
        self, settings: Settings, redis: Redis, name: str, results: ResultsWriter | None = None
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.name = name
        self.results = results or ResultsWriter(settings)
        self.processed = 0
        self.bad = 0
        self.batches = 0

    def messages(self, done: Inferred) -> tuple[list[Fields], list[JobResult], float]:
        """Prepare thread: NMS, boxes to source pixels, one DetsMsg per frame.

        Returns:
            The messages, in the order of ``done.batch.frames``, the results of the frames
            that belong to a job, and the seconds it took.
        """
        batch = done.batch
        if done.raw is None or batch.prepared is None or batch.detector is None:
            return [], [], 0.0
        start = time.perf_counter()
        detector = batch.detector
        per_image = detector.postprocess(done.raw, batch.prepared)
        publish_ns = now_ns()
        out = []
        results: list[JobResult] = []
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
            detections = [d.to_dict() for d in dets]
            if frame.job is not None:
                results.append((frame.job, FrameRecord(msg.seq, msg.pts_ns, detections)))
            out.append(
                DetsMsg(
                    seq=msg.seq,
                    frame_id=frame.entry_id,
                    ts_capture=msg.ts_capture,
                    w=w,
                    h=h,
                    model=detector.model_id,
                    detections=detections,
                    timings=timings,
                    worker=self.name,
                    batch=len(batch.frames),
                ).to_fields()
            )
        return out, results, time.perf_counter() - start

    async def write(
        self, done: Inferred, messages: list[Fields], results: list[JobResult], post_s: float
    ) -> list[Frame]:
        """Store a batch's job results, then write its detections and acknowledge its
        frames: one pipeline.

        Args:
            done: the batch; its bad frames are acknowledged, logged and counted too.
            messages: from :meth:`messages`.
            results: from :meth:`messages`.
            post_s: what :meth:`messages` took (``pitchside_worker_postprocess_seconds``).

        Returns:
            Every frame this worker is done with: acknowledged, or, when the results store
            is unavailable, left pending (to be claimed again after ``claim_idle_ms``).
        """
        batch = done.batch
        results = results + [r for frame, why in batch.bad if (r := _bad_result(frame, why))]
        try:
            await self.results.write(results)
        except ResultsStoreError as exc:
            frames = [*batch.frames, *(frame for frame, _ in batch.bad)]
            log.error(
                "worker %s leaves %d frames pending, their results not stored: %s",
                self.name, len(frames), exc,
            )  # fmt: skip
            return frames
        pipe = self.redis.pipeline(transaction=False)
        for frame, fields in zip(batch.frames, messages, strict=True):
            pipe.xadd(
                dets_key(frame.sid), fields, maxlen=self.settings.dets_maxlen, approximate=True
            )
        acked = [*batch.frames, *(frame for frame, _ in batch.bad)]
        for key, ids in ids_by_key(acked).items():
            pipe.xack(key, WORKERS_GROUP, *ids)
        await pipe.execute()
        for frame, reason in batch.bad:
            log.warning(
                "bad frame %s of stream %s acknowledged unprocessed: %s",
                frame.entry_id,
                frame.sid,
                reason,
                extra={"sid": frame.sid},
            )
        self.bad += len(batch.bad)
        metrics.dropped((frame.sid for frame, _ in batch.bad), metrics.REASON_BAD_FRAME)
        if batch.frames:
            self.processed += len(batch.frames)
            self.batches += 1
            model = batch.detector.model_id if batch.detector is not None else ""
            sids = (frame.sid for frame in batch.frames)
            metrics.batch_done(sids, model, batch.decode_s, done.infer_s, post_s)
        return acked


def _bad_result(frame: Frame, reason: str) -> JobResult | None:
    """The result of a job's frame that cannot be analysed: no detections, the reason.
    None when the frame is no job's, or its entry lacks even its ``seq`` and ``pts``."""
    if frame.job is None:
        return None
    try:
        seq, pts = int(frame.fields[b"seq"]), int(frame.fields[b"pts"])
    except (KeyError, ValueError):
        log.error(
            "frame %s of job %s has no seq: no result can be stored", frame.entry_id, frame.job
        )
        return None
    return frame.job, FrameRecord(seq, pts, [], error=f"not analysed: {reason}")
