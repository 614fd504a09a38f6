"""Faults, with real processes, through `pitchside up`: its embedded Redis SIGKILLed during a
live stream and during an analysis job, ingest SIGKILLed, a worker SIGKILLed. Each test says
how long the stack took to recover (``-s`` shows it)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.jobs import repeat_clip
from tests.conftest import CLIP, require_asset
from tests.integration.conftest import Stack, children, run_stack
from tests.integration.test_jobs_exactly_once import wait_for
from tests.integration.test_pipeline_e2e import collect
from tests.integration.test_uploads_up import decoded_frames, upload, wait_job

pytestmark = pytest.mark.slow

STEP_S = 120.0  # bound on each wait below, on 2 busy cores
SERVICES = ("gateway", "ingest", "worker-1", "tracker-1")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with run_stack(tmp_path_factory.mktemp("faults"), PITCHSIDE_TRACKERS="1") as running:
        yield running


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.base_url, timeout=60) as http:
        yield http


def stream(client: httpx.Client, sid: str) -> dict[str, Any]:
    resp = client.get(f"/api/streams/{sid}")
    return resp.json() if resp.status_code == 200 else {}


def ready(client: httpx.Client) -> bool:
    try:
        return client.get("/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def all_running(stack: Stack) -> dict[str, int]:
    """The pids of every service and the Redis, once each is running."""
    running = children(stack.pid)
    return running if all(name in running for name in (*SERVICES, "redis")) else {}


def kill(stack: Stack, name: str) -> tuple[int, float]:
    pid = wait_for(name, lambda: children(stack.pid).get(name))
    os.kill(pid, signal.SIGKILL)
    return pid, time.monotonic()


def frames_grow(client: httpx.Client, sid: str, by: int = 10) -> Callable[[], bool]:
    start = stream(client, sid).get("frames", 0)
    return lambda: (s := stream(client, sid)).get("state") == "live" and s["frames"] >= start + by


def viewer_frames(stack: Stack, sid: str, want: int = 3) -> list[tuple[dict, bytes]]:
    return asyncio.run(collect(f"{stack.ws_url}/ws/streams/{sid}", want, timeout_s=STEP_S))


def test_redis_killed_during_a_live_stream_is_restarted_and_nothing_else_crashes(
    stack: Stack, client: httpx.Client
) -> None:
    # given a live stream, detected and tracked, and every service running
    assert client.post(
        "/api/streams", json={"source": str(require_asset(CLIP)), "id": "live-a", "loop": True}
    ).status_code == 201  # fmt: skip
    wait_for("the stream live", frames_grow(client, "live-a"))
    assert viewer_frames(stack, "live-a")
    before = wait_for("every service", lambda: all_running(stack))
    # when the embedded Redis is SIGKILLed (it loses every key)
    _, killed_at = kill(stack, "redis")
    # then the supervisor starts it again, the stack is ready again, the stream goes on
    # from where it was and a viewer sees detected frames again
    wait_for(
        "a new redis-server",
        lambda: children(stack.pid).get("redis") not in (None, before["redis"]),
    )
    wait_for("ready again", lambda: ready(client))
    ready_s = time.monotonic() - killed_at
    wait_for("the stream live again", lambda: stream(client, "live-a").get("state") == "live")
    frames = viewer_frames(stack, "live-a")
    recovered_s = time.monotonic() - killed_at
    assert all(meta["sid"] == "live-a" for meta, _ in frames)
    assert stream(client, "live-a")["frames"] > 0
    # and no service crashed: each one waited for Redis in the same process
    after = children(stack.pid)
    assert {n: after.get(n) for n in SERVICES} == {n: before[n] for n in SERVICES}
    print(f"\nredis SIGKILLed: ready after {ready_s:.1f} s, frames after {recovered_s:.1f} s")
    assert client.delete("/api/streams/live-a").status_code in (200, 204)


def test_redis_killed_during_a_job_loses_and_repeats_no_frame(
    stack: Stack, client: httpx.Client, tmp_path: Path
) -> None:
    # given a job of the clip twice over, part-way through
    clip = repeat_clip(require_asset(CLIP), tmp_path / "twice.mp4", 2)
    frames = decoded_frames(clip)
    job = client.post("/api/jobs", json={"upload": upload(client, clip).json()["id"]}).json()
    done_before = wait_for(
        "frames detected",
        lambda: client.get(f"/api/jobs/{job['id']}").json()["frames_done"] >= 20 or None,
    )
    assert done_before
    # when the embedded Redis is SIGKILLed, frames in flight and the job's stream lost with it
    _, killed_at = kill(stack, "redis")
    # then the job ends done all the same, with one result per frame, each once
    done = wait_job(client, job["id"], STEP_S * 2)
    recovered_s = time.monotonic() - killed_at
    assert done["state"] == "done", done
    assert done["frames_done"] == done["frames_total"] == frames
    lines = [
        json.loads(line) for line in client.get(done["links"]["results_jsonl"]).text.splitlines()
    ]
    assert [line["seq"] for line in lines] == list(range(frames))
    print(f"\nredis SIGKILLed during a job of {frames} frames: done {recovered_s:.1f} s later")


def test_ingest_killed_its_streams_are_marked_lost_and_their_ids_start_again(
    stack: Stack, client: httpx.Client
) -> None:
    # given a live stream
    body = {"source": str(require_asset(CLIP)), "id": "cam-b", "loop": True}
    assert client.post("/api/streams", json=body).status_code == 201
    wait_for("the stream live", frames_grow(client, "cam-b"))
    owner = stream(client, "cam-b")["owner"]
    # when its ingest is SIGKILLed (the supervisor starts another, under a new name)
    _, killed_at = kill(stack, "ingest")
    # then within the lease the stream is marked failed, naming the lost ingest
    lost = wait_for(
        "the stream marked", lambda: (s := stream(client, "cam-b")).get("state") == "failed" and s
    )
    marked_s = time.monotonic() - killed_at
    assert lost["error"] == f"ingest lost ({owner})"
    # and the same id can be started again, by the new ingest
    assert client.post("/api/streams", json=body).status_code == 201, "the id is still taken"
    wait_for("the stream live again", frames_grow(client, "cam-b"))
    assert stream(client, "cam-b")["owner"] != owner
    print(f"\ningest SIGKILLed: its stream marked failed after {marked_s:.1f} s")
    assert client.delete("/api/streams/cam-b").status_code in (200, 204)


def test_worker_killed_the_live_stream_goes_on_after_its_restart(
    stack: Stack, client: httpx.Client
) -> None:
    # given a live stream, detected
    body = {"source": str(require_asset(CLIP)), "id": "cam-c", "loop": True}
    assert client.post("/api/streams", json=body).status_code == 201
    wait_for("the stream live", frames_grow(client, "cam-c"))
    assert viewer_frames(stack, "cam-c")
    # when the only worker is SIGKILLed
    pid, killed_at = kill(stack, "worker-1")
    # then once the supervisor has started it again a viewer sees detected frames again
    wait_for("worker-1 back", lambda: children(stack.pid).get("worker-1") not in (None, pid))
    frames = viewer_frames(stack, "cam-c")
    recovered_s = time.monotonic() - killed_at
    assert all(meta["sid"] == "cam-c" for meta, _ in frames)
    print(f"\nworker SIGKILLed: frames to a viewer again after {recovered_s:.1f} s")
    assert client.delete("/api/streams/cam-c").status_code in (200, 204)
