"""The worker loop against a real redis-server, the real COCO model and real clip frames."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from redis.asyncio import Redis

from pitchside import registry
from pitchside.results import NewUpload, ResultsStore
from pitchside.schema import (
    WORKERS_GROUP,
    Beat,
    DetsMsg,
    FrameMsg,
    Mode,
    StreamInfo,
    StreamState,
    dets_key,
    frames_key,
    health_key,
    now_ns,
)
from pitchside.settings import Settings
from tests.conftest import CLIP, COCO_ONNX, require_asset
from tests.integration.scrape import scrape, value
from tests.integration.test_ingest import wait_until
from workers import metrics
from workers.engines import Detector, Prepared, load_detector
from workers.worker import Worker, serve

RUN_TIMEOUT_S = 120  # bound on any one worker run; a run normally takes a few seconds
STAGES = ["capture", "publish", "dequeue", "infer_start", "infer_end", "dets_publish"]


@pytest.fixture(scope="module")
def detector() -> Detector:
    settings = Settings.from_env({}).replace(threads=2)
    return load_detector(str(require_asset(COCO_ONNX)), settings)


@pytest.fixture(scope="module")
def jpegs() -> list[bytes]:
    """Twelve real 848x478 frames of the clip, JPEG-encoded as ingest would."""
    capture = cv2.VideoCapture(str(require_asset(CLIP)))
    out = []
    try:
        while len(out) < 12:
            ok, frame = capture.read()
            assert ok, f"{CLIP} has fewer than 12 frames"
            out.append(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes())
    finally:
        capture.release()
    return out


@pytest.fixture
def make_worker(settings: Settings, redis: Redis, detector: Detector) -> Callable[..., Worker]:
    def create(name: str = "w1", **changes: Any) -> Worker:
        return Worker(settings.replace(**changes), redis, detector, name)

    return create


async def _stream(redis: Redis, sid: str, mode: Mode) -> None:
    await registry.put(
        redis, StreamInfo(sid=sid, source="clip.mp4", mode=mode, state=StreamState.LIVE)
    )


async def _publish(redis: Redis, sid: str, images: list[bytes], first_seq: int = 0) -> list[str]:
    ids = []
    for i, img in enumerate(images):
        stamp = now_ns()
        msg = FrameMsg(first_seq + i, i * 40_000_000, stamp, stamp, 848, 478, img)
        ids.append((await redis.xadd(frames_key(sid), msg.to_fields())).decode())
    return ids


async def _dets(redis: Redis, sid: str) -> list[tuple[str, DetsMsg]]:
    return [
        (entry_id.decode(), DetsMsg.from_fields(fields))
        for entry_id, fields in await redis.xrange(dets_key(sid))
    ]


async def _pending(redis: Redis, sid: str) -> int:
    return int((await redis.xpending(frames_key(sid), WORKERS_GROUP))["pending"])


async def _run_until_idle(worker: Worker) -> None:
    await asyncio.wait_for(worker.run(asyncio.Event(), until_idle=True), RUN_TIMEOUT_S)


def _dropped(reason: str, stream: str) -> float:
    labels = {"stage": metrics.STAGE, "reason": reason, "stream": stream}
    return metrics.REGISTRY.get_sample_value("pitchside_frames_dropped_total", labels) or 0.0


async def test_worker_writes_dets_for_each_live_frame_when_it_keeps_up(
    redis: Redis, make_worker: Callable[..., Worker], jpegs: list[bytes]
) -> None:
    # given a live stream in the registry
    await _stream(redis, "cam1", Mode.LIVE)
    worker = make_worker()
    frame_ids = []
    # when three frames arrive one at a time and the worker keeps up with each
    for seq in range(3):
        frame_ids += await _publish(redis, "cam1", [jpegs[seq]], first_seq=seq)
        await _run_until_idle(worker)
    # then each frame has one dets message, in order, with people found on the pitch
    dets = await _dets(redis, "cam1")
    assert [m.seq for _, m in dets] == [0, 1, 2]
    assert [m.frame_id for _, m in dets] == frame_ids, "frame_id is the frames entry id"
    for _, msg in dets:
        people = [d for d in msg.detections if d["label"] == "person"]
        assert len(people) >= 3, f"expected players on the pitch, got {msg.detections}"
        assert all(0 <= d["box"][0] < d["box"][2] <= 848 for d in people), "source pixels"
        assert (msg.w, msg.h) == (848, 478)
        assert msg.model == "yolov8n_int8.onnx" and msg.worker == "w1" and msg.batch == 1
        stamps = [msg.timings[s] for s in STAGES]
        assert stamps == sorted(stamps), f"timings must follow the pipeline: {msg.timings}"
    assert worker.frames_processed == 3 and worker.frames_skipped == 0
    assert await _pending(redis, "cam1") == 0, "every frame is acknowledged"


async def test_worker_batches_frames_of_two_live_streams_together(
    redis: Redis, make_worker: Callable[..., Worker], jpegs: list[bytes]
) -> None:
    # given two live streams with one frame each
    for sid, img in (("cam1", jpegs[0]), ("cam2", jpegs[5])):
        await _stream(redis, sid, Mode.LIVE)
        await _publish(redis, sid, [img])
    worker = make_worker(batch_max=4)
    # when the worker runs
    await _run_until_idle(worker)
    # then one batch of two wrote one message to each stream's dets
    for sid in ("cam1", "cam2"):
        ((_, msg),) = await _dets(redis, sid)
        assert msg.batch == 2 and msg.detections, f"{sid}: {msg}"
    assert worker.batches == 1 and worker.frames_processed == 2


async def test_worker_processes_newest_and_acks_9_skipped_when_10_live_frames_queued(
    redis: Redis, make_worker: Callable[..., Worker], jpegs: list[bytes]
) -> None:
    # given a live stream with 10 frames queued
    await _stream(redis, "cam1", Mode.LIVE)
    ids = await _publish(redis, "cam1", jpegs[:10])
    before = _dropped(metrics.REASON_BEHIND, "cam1")
    worker = make_worker()
    # when the worker runs
    await _run_until_idle(worker)
    # then only the newest is processed, the 9 older ones are acknowledged and counted
    ((_, msg),) = await _dets(redis, "cam1")
    assert (msg.seq, msg.frame_id) == (9, ids[-1])
    assert worker.frames_processed == 1 and worker.frames_skipped == 9
    assert _dropped(metrics.REASON_BEHIND, "cam1") - before == 9
    assert await _pending(redis, "cam1") == 0, "skipped frames must be acknowledged too"


async def test_worker_processes_every_analyse_frame_once_in_order(
    redis: Redis, make_worker: Callable[..., Worker], jpegs: list[bytes]
) -> None:
    # given an analyse stream with 7 frames queued and batches of up to 3
    await _stream(redis, "match", Mode.ANALYSE)
    ids = await _publish(redis, "match", jpegs[:7])
    worker = make_worker(batch_max=3)
    # when the worker runs, and runs again
    await _run_until_idle(worker)
    await _run_until_idle(worker)
    # then every frame has exactly one dets message, in order, in batches of at most 3
    dets = await _dets(redis, "match")
    assert [m.frame_id for _, m in dets] == ids
    assert [m.seq for _, m in dets] == list(range(7))
    assert all(m.batch <= 3 for _, m in dets)
    assert worker.frames_processed == 7 and worker.frames_skipped == 0 and worker.batches == 3
    assert await _pending(redis, "match") == 0


async def test_worker_claims_analyse_frames_left_pending_by_a_dead_worker(
    redis: Redis, make_worker: Callable[..., Worker], jpegs: list[bytes]
) -> None:
    # given an analyse stream whose first 3 frames a worker read and then died holding
    await _stream(redis, "match", Mode.ANALYSE)
    ids = await _publish(redis, "match", jpegs[:5])
    await redis.xgroup_create(frames_key("match"), WORKERS_GROUP, id="0")
    await redis.xreadgroup(WORKERS_GROUP, "dead", {frames_key("match"): ">"}, count=3)
    await asyncio.sleep(0.3)  # they are now idle for longer than claim_idle_ms
    worker = make_worker(claim_idle_ms=100)
    # when a live worker runs
    await _run_until_idle(worker)
    # then it processes the 2 unread frames and claims and processes the 3 stale ones
    dets = await _dets(redis, "match")
    assert sorted(m.frame_id for _, m in dets) == sorted(ids), "each frame exactly once"
    assert await _pending(redis, "match") == 0


async def test_worker_acks_and_counts_bad_frames_without_crashing(
    redis: Redis, make_worker: Callable[..., Worker], jpegs: list[bytes]
) -> None:
    # given an analyse stream with a non-JPEG frame, a malformed message and a good frame
    await _stream(redis, "match", Mode.ANALYSE)
    key = frames_key("match")
    not_jpeg = FrameMsg(0, 0, now_ns(), now_ns(), 848, 478, b"\x00not a jpeg at all")
    await redis.xadd(key, not_jpeg.to_fields())
    await redis.xadd(key, {"v": 1, "seq": "one"})
    (good_id,) = await _publish(redis, "match", [jpegs[0]], first_seq=2)
    before = _dropped(metrics.REASON_BAD_FRAME, "match")
    worker = make_worker()
    # when the worker runs
    await _run_until_idle(worker)
    # then both bad entries are acknowledged and counted, and the good one is processed
    ((_, msg),) = await _dets(redis, "match")
    assert msg.frame_id == good_id
    assert worker.frames_bad == 2 and worker.frames_processed == 1
    assert _dropped(metrics.REASON_BAD_FRAME, "match") - before == 2
    assert await _pending(redis, "match") == 0


class _StopOnFirstInfer:
    """A detector that sets ``stop`` as its first inference starts (from the infer thread)."""

    def __init__(self, inner: Detector, stop: asyncio.Event) -> None:
        self._inner, self._stop = inner, stop
        self._loop = asyncio.get_running_loop()
        self.model_id = inner.model_id

    def prepare(self, images: list[np.ndarray]) -> Prepared:
        return self._inner.prepare(images)

    def infer(self, prepared: Prepared) -> np.ndarray:
        self._loop.call_soon_threadsafe(self._stop.set)
        return self._inner.infer(prepared)

    def postprocess(self, raw: np.ndarray, prepared: Prepared) -> Any:
        return self._inner.postprocess(raw, prepared)


async def test_worker_finishes_batch_in_flight_when_stopped(
    redis: Redis, settings: Settings, detector: Detector, jpegs: list[bytes]
) -> None:
    # given 10 analyse frames and a stop that comes while the first batch infers
    await _stream(redis, "match", Mode.ANALYSE)
    await _publish(redis, "match", jpegs[:10])
    stop = asyncio.Event()
    wrapped: Any = _StopOnFirstInfer(detector, stop)
    worker = Worker(settings.replace(batch_max=2), redis, wrapped, "w1")
    # when the worker runs until stopped
    await asyncio.wait_for(worker.run(stop), RUN_TIMEOUT_S)
    # then it returned early, and every frame it read was written and acknowledged
    dets = await _dets(redis, "match")
    assert 2 <= worker.frames_processed < 10, "the batch in flight is finished, not the stream"
    assert len(dets) == worker.frames_processed
    assert await _pending(redis, "match") == 0, "nothing read is left unacknowledged"


async def test_worker_heartbeat_is_set_while_running_and_removed_on_stop(
    redis: Redis, make_worker: Callable[..., Worker]
) -> None:
    # given a worker running with nothing to do
    worker = make_worker("w-beat")
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    key = health_key("worker", "w-beat")
    # when it has started (bounded wait for the first heartbeat)
    for _ in range(200):
        if await redis.exists(key):
            break
        await asyncio.sleep(0.05)
    # then its health key exists with a TTL, and it is gone after a clean stop
    assert await redis.exists(key), "no heartbeat within 10 s"
    beat = Beat.from_json(await redis.get(key))
    assert (beat.service, beat.name, beat.model) == ("worker", "w-beat", "yolov8n_int8.onnx")
    assert 0 < await redis.ttl(key) <= 6
    stop.set()
    await asyncio.wait_for(task, RUN_TIMEOUT_S)
    assert not await redis.exists(key)


async def test_worker_serves_its_metrics_on_the_address_its_heartbeat_announces(
    redis: Redis, make_worker: Callable[..., Worker], jpegs: list[bytes]
) -> None:
    # given a running worker and a live stream
    await _stream(redis, "metered", Mode.LIVE)
    worker = make_worker("w-metrics")
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    key = health_key("worker", "w-metrics")

    async def announced() -> Beat | None:
        raw = await redis.get(key)
        return Beat.from_json(raw) if raw is not None else None

    beat = await wait_until(announced, 30, "the worker's heartbeat")
    assert beat.metrics, f"the worker's heartbeat names no metrics address: {beat}"
    try:
        # when it has detected three frames, one at a time, and its endpoint is scraped
        for seq in range(3):
            await _publish(redis, "metered", [jpegs[seq]], first_seq=seq)

            async def detected(n: int = seq + 1) -> bool:
                return await redis.xlen(dets_key("metered")) >= n

            await wait_until(detected, RUN_TIMEOUT_S, f"detections of frame {seq}")
        samples = await scrape(beat.metrics)
    finally:
        stop.set()
        await asyncio.wait_for(task, RUN_TIMEOUT_S)
    # then it counts the frames by stream and model, and times its batches and frames
    inferred = value(
        samples,
        "pitchside_worker_frames_inferred_total",
        stream="metered",
        model="yolov8n_int8.onnx",
    )
    assert inferred == 3
    assert (value(samples, "pitchside_worker_batch_size_count") or 0) >= 3
    for per_batch in ("preprocess", "inference", "postprocess"):
        count = value(samples, f"pitchside_worker_{per_batch}_seconds_count") or 0
        total = value(samples, f"pitchside_worker_{per_batch}_seconds_sum") or 0
        assert count >= 3 and 0 < total < count * 5, f"{per_batch}: {total} s in {count}"
    per_frame = value(samples, "pitchside_worker_inference_frame_seconds_count") or 0
    assert per_frame >= 3
    model = value(samples, "pitchside_worker_model_info", name="yolov8n_int8.onnx", version="")
    assert model == 1
    assert (value(samples, "process_resident_memory_bytes") or 0) > 10_000_000
    # and the endpoint is closed once the worker stopped
    with pytest.raises(httpx.ConnectError):
        await scrape(beat.metrics)


async def test_serve_consumes_until_stop_then_removes_its_health_key(
    redis: Redis, settings: Settings, jpegs: list[bytes]
) -> None:
    # given a live stream with a frame, and the service entry point with the COCO model
    await _stream(redis, "cam1", Mode.LIVE)
    await _publish(redis, "cam1", [jpegs[0]])
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings.replace(threads=2), stop, name="w-serve"))
    # when it has written the frame's detections (bounded wait)
    for _ in range(600):
        if await redis.xlen(dets_key("cam1")) or task.done():
            break
        await asyncio.sleep(0.05)
    assert await redis.exists(health_key("worker", "w-serve")), "heartbeat while serving"
    stop.set()
    await asyncio.wait_for(task, RUN_TIMEOUT_S)
    # then the frame was processed and the worker left no trace
    ((_, msg),) = await _dets(redis, "cam1")
    assert msg.worker == "w-serve" and msg.seq == 0
    assert not await redis.exists(health_key("worker", "w-serve"))


class _SlowFirstInfer:
    """A detector whose first inference takes longer; it counts inferences running at once."""

    def __init__(self, inner: Detector, delay_s: float) -> None:
        self._inner, self._delay_s = inner, delay_s
        self._lock = threading.Lock()
        self._running = 0
        self.calls = 0
        self.most_at_once = 0
        self.model_id = inner.model_id

    def prepare(self, images: list[np.ndarray]) -> Prepared:
        return self._inner.prepare(images)

    def infer(self, prepared: Prepared) -> np.ndarray:
        with self._lock:
            self.calls += 1
            first = self.calls == 1
            self._running += 1
            self.most_at_once = max(self.most_at_once, self._running)
        try:
            if first:
                time.sleep(self._delay_s)
            return self._inner.infer(prepared)
        finally:
            with self._lock:
                self._running -= 1

    def postprocess(self, raw: np.ndarray, prepared: Prepared) -> Any:
        return self._inner.postprocess(raw, prepared)


async def test_worker_lanes_infer_side_by_side_and_publish_in_order(
    redis: Redis, settings: Settings, detector: Detector, jpegs: list[bytes]
) -> None:
    # given an analyse stream of 6 frames, two lanes of one frame each, and a first
    # inference slow enough that the second lane finishes before it
    await _stream(redis, "match", Mode.ANALYSE)
    ids = await _publish(redis, "match", jpegs[:6])
    slow: Any = _SlowFirstInfer(detector, delay_s=1.0)
    worker = Worker(settings.replace(lanes=2, batch_max=1), redis, slow, "w1")
    # when the worker runs
    await _run_until_idle(worker)
    # then two inferences ran at once, and the detections are still written in frame order
    assert slow.most_at_once == 2
    dets = await _dets(redis, "match")
    assert [m.frame_id for _, m in dets] == ids
    assert [m.seq for _, m in dets] == list(range(6))
    assert await _pending(redis, "match") == 0


async def test_worker_with_one_lane_never_infers_two_batches_at_once(
    redis: Redis, settings: Settings, detector: Detector, jpegs: list[bytes]
) -> None:
    # given an analyse stream of 4 frames and a single lane
    await _stream(redis, "match", Mode.ANALYSE)
    ids = await _publish(redis, "match", jpegs[:4])
    slow: Any = _SlowFirstInfer(detector, delay_s=0.3)
    worker = Worker(settings.replace(lanes=1, batch_max=1), redis, slow, "w1")
    # when the worker runs
    await _run_until_idle(worker)
    # then inferences ran one at a time and every frame was written in order
    assert slow.most_at_once == 1
    assert [m.frame_id for _, m in await _dets(redis, "match")] == ids


async def test_worker_serves_live_streams_on_the_live_detector_one_batch_at_a_time(
    redis: Redis, settings: Settings, detector: Detector, jpegs: list[bytes]
) -> None:
    # given a worker with two lanes, its two sessions counted, and a live stream
    live: Any = _SlowFirstInfer(detector, delay_s=0.0)
    lanes: Any = _SlowFirstInfer(detector, delay_s=0.0)
    worker = Worker(settings.replace(lanes=2), redis, live, "w1", lanes_detector=lanes)
    await _stream(redis, "cam1", Mode.LIVE)
    # when frames arrive one at a time
    for seq in range(3):
        await _publish(redis, "cam1", [jpegs[seq]], first_seq=seq)
        await _run_until_idle(worker)
    # then the live detector (every thread) ran them, one at a time
    assert live.calls == 3 and live.most_at_once == 1
    assert lanes.calls == 0


async def test_worker_serves_analyse_streams_on_the_lanes_detector(
    redis: Redis, settings: Settings, detector: Detector, jpegs: list[bytes]
) -> None:
    # given a worker with two lanes, its two sessions counted, and an analyse stream
    live: Any = _SlowFirstInfer(detector, delay_s=0.0)
    lanes: Any = _SlowFirstInfer(detector, delay_s=0.5)
    worker = Worker(settings.replace(lanes=2, batch_max=1), redis, live, "w1", lanes_detector=lanes)
    await _stream(redis, "match", Mode.ANALYSE)
    ids = await _publish(redis, "match", jpegs[:4])
    # when the worker runs
    await _run_until_idle(worker)
    # then the lanes detector ran every batch, two at once, and all were written in order
    assert lanes.calls == 4 and lanes.most_at_once == 2
    assert live.calls == 0
    assert [m.frame_id for _, m in await _dets(redis, "match")] == ids


async def test_a_worker_restarted_under_its_name_takes_back_what_was_pending_on_it(
    redis: Redis, make_worker: Callable[..., Worker], jpegs: list[bytes]
) -> None:
    # given an analyse stream whose first 3 frames worker "w1" read and then died holding
    await _stream(redis, "match", Mode.ANALYSE)
    ids = await _publish(redis, "match", jpegs[:5])
    await redis.xgroup_create(frames_key("match"), WORKERS_GROUP, id="0")
    await redis.xreadgroup(WORKERS_GROUP, "w1", {frames_key("match"): ">"}, count=3)
    # when "w1" runs again, long before another worker would claim them
    worker = make_worker("w1", claim_idle_ms=600_000)
    await _run_until_idle(worker)
    # then it processes the 3 it held and the 2 unread ones, each once
    dets = await _dets(redis, "match")
    assert sorted(m.frame_id for _, m in dets) == sorted(ids)
    assert await _pending(redis, "match") == 0


async def test_a_job_s_frames_are_stored_once_each_before_they_are_acknowledged(
    redis: Redis, settings: Settings, make_worker: Callable[..., Worker], jpegs: list[bytes]
) -> None:
    # given a job's analyse stream with 5 good frames and one whose JPEG is broken
    with ResultsStore.open(settings.results_url) as store:
        store.add_upload(NewUpload(id="u1", name="match.mp4", size=1))
        store.add_job("j1", "u1")
    await registry.put(
        redis, StreamInfo(sid="job-j1", source="upload:u1", mode=Mode.ANALYSE, job="j1")
    )
    await _publish(redis, "job-j1", [*jpegs[:5], b"not a jpeg"])
    # when a worker runs, and runs again on the same frames delivered once more
    await _run_until_idle(make_worker())
    await redis.xgroup_setid(frames_key("job-j1"), WORKERS_GROUP, id="0")
    await _run_until_idle(make_worker("w2"))
    # then every frame has exactly one result, the broken one with its reason
    with ResultsStore.open(settings.results_url) as store:
        frames = list(store.iter_frames("j1"))
    assert [f.seq for f in frames] == list(range(6))
    assert all(f.error is None and f.detections for f in frames[:5])
    assert frames[5].detections == [] and "JPEG" in (frames[5].error or "")
    assert frames[1].pts_ns == 40_000_000
    assert await _pending(redis, "job-j1") == 0


async def test_a_job_s_frames_stay_pending_while_the_results_store_is_away(
    redis: Redis, settings: Settings, make_worker: Callable[..., Worker], jpegs: list[bytes],
    tmp_path: Path,
) -> None:  # fmt: skip
    # given a job's stream, and a results store that cannot be reached
    away = f"postgresql+psycopg://nobody@/none?host={tmp_path}&connect_timeout=1"
    await registry.put(
        redis, StreamInfo(sid="job-j2", source="upload:u2", mode=Mode.ANALYSE, job="j2")
    )
    await _publish(redis, "job-j2", jpegs[:3])
    # when a worker runs
    await _run_until_idle(make_worker(database_url=away))
    # then no frame is acknowledged nor has detections: they wait to be claimed again
    assert await _pending(redis, "job-j2") == 3
    assert await _dets(redis, "job-j2") == []
