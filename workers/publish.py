"""The end of a batch: NMS into one DetsMsg per frame, then one pipeline of XADD and XACK.

A batch's detections and the acknowledgements of its frames (bad ones included) go to Redis
in one round trip, after which the frames are done: an analyse entry is acknowledged only
once its detections are written. The counters and metrics of processed and bad frames are
kept here.
"""

from __future__ import annotations

import logging
import time

from redis.asyncio import Redis

from pitchside.schema import WORKERS_GROUP, DetsMsg, Fields, dets_key, now_ns
from pitchside.settings import Settings
from workers import metrics
from workers.batch import Frame, Inferred, ids_by_key

log = logging.getLogger(__name__)


class Publisher:
    """Writes one worker's detections.

    Args:
        settings: ``dets_maxlen``.
        redis: a client on the bus.
        name: the worker's name, stamped on each DetsMsg.
    """

    def __init__(self, settings: Settings, redis: Redis, name: str) -> None:
        self.settings = settings
        self.redis = redis
        self.name = name
        self.processed = 0
        self.bad = 0
        self.batches = 0

    def messages(self, done: Inferred) -> tuple[list[Fields], float]:
        """Prepare thread: NMS, boxes to source pixels, one DetsMsg per frame.

        Returns:
            The messages, in the order of ``done.batch.frames``, and the seconds it took.
        """
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

    async def write(self, done: Inferred, messages: list[Fields], post_s: float) -> list[Frame]:
        """Write a batch's detections and acknowledge its frames: one pipeline.

        Args:
            done: the batch; its bad frames are acknowledged, logged and counted too.
            messages: from :meth:`messages`.
            post_s: what :meth:`messages` took (``pitchside_worker_postprocess_seconds``).

        Returns:
            Every frame acknowledged.
        """
        batch = done.batch
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
