"""Exactly one result per decoded frame, through `pitchside up` with two workers, when a worker
is SIGKILLed half-way (with frames pending on its name) and restarted by the supervisor and
the gateway is SIGKILLed and restarted while the job runs; on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from bench.jobs import repeat_clip
from bench.postgres import PrivatePostgres
from pitchside.schema import WORKERS_GROUP, frames_key
from pitchside.uploads import job_sid
from tests.conftest import CLIP, require_asset
from tests.integration.conftest import Stack, children, run_stack, wait_ready
from tests.integration.postgres import postgres_server_fixture  # noqa: F401
from tests.integration.test_uploads_up import decoded_frames, upload, wait_job

pytestmark = pytest.mark.slow

REPEATS = 4  # the clip four times over: a job long enough to kill things in the middle
KILL_TRIES = 5  # SIGKILLs of worker-1 until one finds entries pending on its name
STEP_S = 120.0  # bound on each wait below


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The clip's packets written ``REPEATS`` times into one MP4 (no re-encoding)."""
    out = tmp_path_factory.mktemp("clip") / "long.mp4"
    return repeat_clip(require_asset(CLIP), out, REPEATS)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def two_worker_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    # Claims after the default 30 s: the restarted worker-1, not worker-2, must take back
    # what was pending on its name (XAUTOCLAIM is tested in tests/integration/test_worker.py).
    env = {"PITCHSIDE_WORKERS": "2", "PITCHSIDE_THREADS": "1"}
    server: PrivatePostgres | None = None
    if request.param == "postgresql":
        server = request.getfixturevalue("postgres_server")
        env["DATABASE_URL"] = server.create_database("jobs_exactly_once")
    try:
        with run_stack(tmp_path_factory.mktemp(f"jobs-{request.param}"), **env) as running:
            yield running
    finally:
        if server is not None:
            server.drop_database("jobs_exactly_once")


def bus(stack: Stack) -> redis.Redis:
    """A client on the stack's embedded Redis, found in the gateway's environment."""
    environ = Path(f"/proc/{children(stack.pid)['gateway']}/environ").read_bytes()
    variables = dict(v.split(b"=", 1) for v in environ.split(b"\0") if b"=" in v)
    return redis.Redis.from_url(variables[b"REDIS_URL"].decode())


def pending_on(client: redis.Redis, key: str, consumer: str) -> int:
    for entry in client.xinfo_consumers(key, WORKERS_GROUP):
        if entry["name"].decode() == consumer:
            return int(entry["pending"])
    return 0


def wait_for(what: str, check: Any, timeout_s: float = STEP_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)
    return value


def test_a_killed_worker_and_a_restarted_gateway_lose_and_repeat_no_frame(
    two_worker_stack: Stack, long_clip: Path
) -> None:
    stack = two_worker_stack
    frames = decoded_frames(long_clip)
    client = httpx.Client(base_url=stack.base_url, timeout=60)
    # given a job of the long clip, with both workers detecting
    upload_id = upload(client, long_clip).json()["id"]
    job = client.post("/api/jobs", json={"upload": upload_id}).json()
    key = frames_key(job_sid(job["id"]))
    with bus(stack) as r:
        wait_for("frames done", lambda: client.get(f"/api/jobs/{job['id']}").json()["frames_done"])
        # when worker-1 is SIGKILLed while frames are pending on its name
        for _ in range(KILL_TRIES):
            worker = wait_for("worker-1", lambda: children(stack.pid).get("worker-1"))
            os.kill(worker, signal.SIGKILL)
            if pending_on(r, key, "worker-1"):
                break
            wait_for("worker-1 back", lambda w=worker: children(stack.pid).get("worker-1") != w)
        else:
            pytest.fail(f"worker-1 never died holding frames in {KILL_TRIES} tries")
        killed_at = client.get(f"/api/jobs/{job['id']}").json()["frames_done"]
        assert killed_at < frames, "the job ended before the kill: make the clip longer"
        # and the gateway is SIGKILLed too, and comes back
        os.kill(children(stack.pid)["gateway"], signal.SIGKILL)
        wait_for("gateway restarted", lambda: children(stack.pid).get("gateway"))
        wait_ready(stack.base_url, None, stack.log)
        # then the job still ends done, every frame with exactly one result
        done = wait_job(client, job["id"], STEP_S)
        assert done["state"] == "done", done
        assert done["frames_done"] == done["frames_total"] == frames
        lines = client.get(done["links"]["results_jsonl"]).text.splitlines()
        assert [json.loads(line)["seq"] for line in lines] == list(range(frames))
        # and nothing is left pending on anyone
        assert not r.exists(key) or all(
            int(c["pending"]) == 0 for c in r.xinfo_consumers(key, WORKERS_GROUP)
        )
    log = stack.log.read_text()
    # and the restarted worker-1 took back what was pending on its name
    assert "worker worker-1 took back" in log, log[-3000:]
    client.close()
