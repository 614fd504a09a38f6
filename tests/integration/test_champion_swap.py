"""A worker serving ``models:/football-detector@champion`` switches to a newly promoted
version while a stream plays, without a gap in the stream's detections."""

from __future__ import annotations

import asyncio
import time

import cv2
import pytest
from redis.asyncio import Redis

from pitchside import registry
from pitchside.models import resolve, tracking_store
from pitchside.schema import DetsMsg, FrameMsg, Mode, StreamInfo, StreamState, dets_key, frames_key
from pitchside.settings import Settings
from tests.conftest import CLIP, COCO_ONNX, require_asset
from training.tracking import CHAMPION, EXPERIMENT, REGISTERED_MODEL, register_artifact
from workers.engines import load_resolved
from workers.model_source import ModelWatcher
from workers.worker import Worker

pytestmark = pytest.mark.slow

FRAMES = 40


def register_version(settings: Settings) -> str:
    """Log the test model as a run artifact, register it and make it the champion."""
    mlflow = tracking_store(settings, EXPERIMENT)
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(COCO_ONNX), artifact_path="weights")
    version = register_artifact(mlflow, run.info.run_id, f"weights/{COCO_ONNX.name}")
    mlflow.MlflowClient().set_registered_model_alias(REGISTERED_MODEL, CHAMPION, version)
    return str(version)


def clip_jpegs(n: int) -> list[tuple[bytes, int, int]]:
    import av

    out = []
    with av.open(str(require_asset(CLIP))) as container:
        for frame in container.decode(video=0):
            bgr = frame.to_ndarray(format="bgr24")
            out.append((cv2.imencode(".jpg", bgr)[1].tobytes(), bgr.shape[1], bgr.shape[0]))
            if len(out) == n:
                break
    return out


async def test_worker_switches_to_new_champion_without_a_gap(redis: Redis, settings: Settings):
    # given a champion v1 and a worker serving the alias, polling it often
    settings = settings.replace(model_poll_s=0.2, threads=1)
    require_asset(COCO_ONNX)
    first = register_version(settings)
    model = resolve(f"models:/{REGISTERED_MODEL}@{CHAMPION}", settings)
    assert model.model_id == f"{REGISTERED_MODEL}/{first}"
    worker = Worker(settings, redis, load_resolved(model, settings), "w-swap",
                    ModelWatcher(model, settings))  # fmt: skip
    sid = "swap"
    await registry.put(redis, StreamInfo(sid=sid, source="clip", mode=Mode.ANALYSE,
                                         state=StreamState.LIVE))  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    jpegs = clip_jpegs(FRAMES)
    second = None
    try:
        # when frames play and, midway, a new version is promoted
        for seq, (jpeg, w, h) in enumerate(jpegs):
            ts = time.time_ns()
            msg = FrameMsg(seq=seq, pts_ns=seq * 40_000_000, ts_capture=ts, ts_publish=ts,
                           w=w, h=h, img=jpeg)  # fmt: skip
            await redis.xadd(frames_key(sid), msg.to_fields())
            if seq == FRAMES // 3:
                second = await asyncio.to_thread(register_version, settings)
            await asyncio.sleep(0.05)
        deadline = time.monotonic() + 120
        while await redis.xlen(dets_key(sid)) < FRAMES and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    # then every frame has detections exactly once, in order
    entries = await redis.xrange(dets_key(sid))
    dets = [DetsMsg.from_fields(fields) for _, fields in entries]
    assert [d.seq for d in dets] == list(range(FRAMES))
    # and the model switched once, from v1 to v2, between two frames
    models = [d.model for d in dets]
    assert models[0] == f"{REGISTERED_MODEL}/{first}"
    assert models[-1] == f"{REGISTERED_MODEL}/{second}", models
    switch = models.index(models[-1])
    assert set(models[:switch]) == {models[0]} and set(models[switch:]) == {models[-1]}
    assert worker.model_swaps == 1
    assert all(d.detections for d in dets), "the switch left frames without detections"
