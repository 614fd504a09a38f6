"""The whole stack as a user runs it: `pitchside up` in a subprocess, on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bench.up import children_of
from tests.conftest import CLIP, COCO_ONNX, require_asset

#: Bound on a `pitchside up` stack becoming ready: model load and warm-up, three Python
#: services and a redis-server on 2 busy cores. Every test that starts the stack uses it.
START_S = 180.0


@dataclass(frozen=True)
class Stack:
    base_url: str
    ws_url: str
    log: Path
    pid: int  # of `pitchside up`

    def start_stream(self, sid: str, source: Path, loop: bool = False) -> httpx.Response:
        body = {"source": str(source), "id": sid, "loop": loop}
        return httpx.post(f"{self.base_url}/api/streams", json=body, timeout=30)


def free_port() -> int:
    """A loopback TCP port free now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def run_stack(tmp: Path, **env_extra: str) -> Iterator[Stack]:
    """`pitchside up` with the COCO test model, an embedded Redis and one worker, its data
    folder and log in ``tmp``; ``env_extra`` adds or overrides variables."""
    require_asset(CLIP)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(
        PITCHSIDE_PORT=str(port), PITCHSIDE_MODEL=str(require_asset(COCO_ONNX)),
        PITCHSIDE_DATA_DIR=str(tmp / "data"), PITCHSIDE_WORKERS="1", PITCHSIDE_THREADS="2",
        PITCHSIDE_MEDIA_DIR="/",  # the tests start streams from files anywhere
        PITCHSIDE_ICE_ADDRESSES="127.0.0.1",  # WebRTC publishers: loopback only
    )  # fmt: skip
    env.update(env_extra)
    log = tmp / "up.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pitchside", "up"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc, log)
        yield Stack(base_url=base, ws_url=f"ws://127.0.0.1:{port}", log=log, pid=proc.pid)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_ready(base: str, proc: subprocess.Popen[bytes] | None, log: Path) -> None:
    """Until ``base``/readyz answers 200; fails when ``proc`` exits or after START_S."""
    deadline = time.monotonic() + START_S
    while True:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"pitchside up exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"stack not ready in {START_S} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.25)


def children(pid: int) -> dict[str, int]:
    """The processes ``pid`` started, by the name ``pitchside up`` gives them (``gateway``,
    ``ingest``, ``worker-1``...), from /proc."""
    found: dict[str, int] = {}
    for child in children_of(pid):
        try:
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            comm = Path(f"/proc/{child}/comm").read_text().strip()
        except FileNotFoundError:
            continue
        args = [a.decode() for a in argv if a]
        if "--name" in args:
            found[args[args.index("--name") + 1]] = child
        elif "-m" in args:
            found[args[args.index("-m") + 1]] = child
        elif comm == "redis-server":  # the embedded Redis (its title is rewritten)
            found["redis"] = child
    return found


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`pitchside up` with the COCO test model, an embedded Redis and one worker."""
    with run_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running
