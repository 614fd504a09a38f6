"""``pitchside up``: fails fast and cleanly, starts, answers, and leaves nothing behind.

Every Python process of a run is found by a marker variable in its environment
(``/proc/*/environ``): children inherit it, and it survives reparenting, so a process that
outlived ``up`` is found even after ``up`` is gone. redis-server overwrites its environment
with its process title, so while ``up`` runs the tests also record its descendants by parent
pid and check afterwards that each of them is gone.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pitchside.supervisor import ChildSpec, RestartPolicy
from pitchside.up import run_stack
from tests.conftest import CLIP, COCO_ONNX, require_asset
from tests.integration.conftest import START_S, free_port

MARK = "PITCHSIDE_TEST_MARK"
WAIT_S = 30.0


def marked_processes(mark: str) -> dict[int, str]:
    """pid -> command line of every live process whose environment carries ``mark``."""
    needle = f"{MARK}={mark}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if state != "Z":
            found[int(entry.name)] = cmdline
    return found


def descendants(root: int) -> dict[int, str]:
    """pid -> command line of every live descendant of ``root``."""
    parents: dict[int, int] = {}
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if state != "Z":
            parents[int(entry.name)] = int(ppid)
            commands[int(entry.name)] = cmdline.strip()
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                found[pid] = commands[pid]
                frontier.append(pid)
    return found


def alive(pids: dict[int, str]) -> dict[int, str]:
    return {pid: cmd for pid, cmd in pids.items() if _state(pid) not in (None, "Z")}


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def leftovers(
    mark: str, known: dict[int, str] | None = None, grace_s: float = 5.0
) -> dict[int, str]:
    """Marked or ``known`` processes still alive after a short grace (SIGKILL takes a moment)."""
    deadline = time.monotonic() + grace_s
    while True:
        found = {**marked_processes(mark), **alive(known or {})}
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@pytest.fixture
def mark() -> Iterator[str]:
    """A fresh marker; any process still carrying it at teardown is killed and reported."""
    value = uuid.uuid4().hex
    yield value
    for pid in marked_processes(value):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def up_env(mark: str, tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(
        {
            MARK: mark,
            "PITCHSIDE_PORT": str(free_port()),
            "PITCHSIDE_DATA_DIR": str(tmp_path / "data"),
            "PITCHSIDE_WORKERS": "1",
            "PITCHSIDE_LOG_LEVEL": "INFO",
            "YOLO_OFFLINE": "1",
        }
    )
    env.update(overrides)
    return env


def run_up(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pitchside", "up", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


# --------------------------------------------------------------------------------------------
# Fails fast: nothing starts


@pytest.mark.parametrize("model", ["missing.onnx", "garbage.onnx"])
def test_up_exits_2_naming_a_bad_model_and_starts_nothing(
    tmp_path: Path, mark: str, model: str
) -> None:
    # given a model that does not exist, or is not a model at all
    (tmp_path / "garbage.onnx").write_bytes(b"this is not an ONNX graph\n")
    model_path = tmp_path / model
    # when pitchside up is run
    result = run_up(up_env(mark, tmp_path, PITCHSIDE_MODEL=str(model_path)), tmp_path)
    # then it exits 2 with one clear line naming the file, and no trace
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("pitchside up: "), result.stderr
    assert model in last
    assert "Traceback" not in result.stderr
    assert "pitchside is up" not in result.stdout
    # and nothing was started
    assert "started" not in result.stderr
    assert leftovers(mark) == {}


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("PITCHSIDE_PROVIDERS", "NopeExecutionProvider", "NopeExecutionProvider not available"),
        ("MLFLOW_TRACKING_URI", "sqlite:///{tmp}/elsewhere.db", "elsewhere.db"),
    ],
)
def test_up_checks_the_model_with_the_settings_the_workers_will_have(
    tmp_path: Path, mark: str, variable: str, value: str, says: str
) -> None:
    # given a setting the workers read when they load the model: the providers, or the
    # registry a models:/ URI is looked up in
    env = up_env(mark, tmp_path, **{variable: value.format(tmp=tmp_path)})
    env["PITCHSIDE_MODEL"] = (
        "models:/football-detector@champion"
        if variable == "MLFLOW_TRACKING_URI"
        else str(require_asset(COCO_ONNX))
    )
    # when pitchside up checks the model before starting anything
    result = run_up(env, tmp_path)
    # then the check used that setting, as a worker would, and nothing started
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("pitchside up: ") and says in last, result.stderr
    assert "Traceback" not in result.stderr
    assert leftovers(mark) == {}


@pytest.mark.parametrize(
    ("variable", "value"), [("PITCHSIDE_WORKERS", "many"), ("PITCHSIDE_IMGSZ", "650")]
)
def test_up_exits_2_naming_a_bad_setting(
    tmp_path: Path, mark: str, variable: str, value: str
) -> None:
    result = run_up(up_env(mark, tmp_path, **{variable: value}), tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"pitchside up: {variable} must be"), result.stderr
    assert "Traceback" not in result.stderr
    assert leftovers(mark) == {}


def test_up_exits_2_when_its_port_is_taken(tmp_path: Path, mark: str) -> None:
    # given a port that something else listens on
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # when pitchside up is asked to use it
        result = run_up(up_env(mark, tmp_path, PITCHSIDE_PORT=str(port)), tmp_path)
    # then it says so before starting anything
    assert result.returncode == 2, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert leftovers(mark) == {}


def test_up_refuses_loop_without_source(tmp_path: Path, mark: str) -> None:
    result = run_up(up_env(mark, tmp_path), tmp_path, "--loop")
    assert result.returncode == 2
    assert "--loop needs --source" in result.stderr


# --------------------------------------------------------------------------------------------
# The orchestration, with stand-in services

FAKE_GATEWAY = """
import http.server, json, sys
port, ready, stream_status = int(sys.argv[1]), sys.argv[2] == "ready", int(sys.argv[3])

class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.answer(200 if ready else 503, {"ready": ready})

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["content-length"])))
        if stream_status < 300:
            self.answer(stream_status, {"sid": "match-1", "source": request["source"]})
        else:
            detail = f"cannot open {request['source']}: no such file"
            self.answer(stream_status, {"error": "bad_source", "detail": detail})

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""
SLEEPER = "import time\nwhile True: time.sleep(1)"
FAST = RestartPolicy(backoff_initial_s=0.01, backoff_max_s=0.05, budget=2)


def fake_stack(
    mark: str, port: int, ready: bool = True, stream_status: int = 201, worker: str = SLEEPER
) -> list[ChildSpec]:
    env = {**os.environ, MARK: mark}
    readiness = "ready" if ready else "never"
    gateway = (sys.executable, "-c", FAKE_GATEWAY, str(port), readiness, str(stream_status))
    return [
        ChildSpec("gateway", gateway, env, stop_timeout_s=5),
        ChildSpec("ingest", (sys.executable, "-c", SLEEPER), env, stop_timeout_s=5),
        ChildSpec("worker-1", (sys.executable, "-c", textwrap.dedent(worker)), env),
    ]


async def wait_output(capsys: pytest.CaptureFixture[str], text: str) -> str:
    seen = ""

    async def poll() -> str:
        nonlocal seen
        while text not in seen:
            seen += capsys.readouterr().out
            await asyncio.sleep(0.02)
        return seen

    return await asyncio.wait_for(poll(), WAIT_S)


async def test_run_stack_says_it_is_up_and_stops_everything_on_stop(
    mark: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a stack whose gateway becomes ready
    port, stop = free_port(), asyncio.Event()
    url = f"http://127.0.0.1:{port}"
    task = asyncio.create_task(run_stack(fake_stack(mark, port), url, stop, policy=FAST))
    # when it is up
    await wait_output(capsys, f"pitchside is up: {url}\n")
    assert len(marked_processes(mark)) == 3
    # and the stop event is set (as SIGINT and SIGTERM do)
    stop.set()
    # then it returns 0 and no service is left
    assert await asyncio.wait_for(task, WAIT_S) == 0
    assert leftovers(mark) == {}


async def test_run_stack_starts_the_source_and_prints_the_stream(
    mark: str, capsys: pytest.CaptureFixture[str]
) -> None:
    port, stop = free_port(), asyncio.Event()
    url = f"http://127.0.0.1:{port}"
    stack = fake_stack(mark, port, stream_status=201)
    task = asyncio.create_task(run_stack(stack, url, stop, source="/videos/m.mp4", policy=FAST))
    out = await wait_output(capsys, "pitchside is up")
    stop.set()
    assert await asyncio.wait_for(task, WAIT_S) == 0
    assert "started stream match-1 from /videos/m.mp4" in out
    assert leftovers(mark) == {}


async def test_run_stack_exits_2_with_the_api_detail_when_the_source_is_refused(
    mark: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a gateway that refuses the source with 422
    port, stop = free_port(), asyncio.Event()
    url = f"http://127.0.0.1:{port}"
    stack = fake_stack(mark, port, stream_status=422)
    # when the stack is started with that source
    code = await asyncio.wait_for(
        run_stack(stack, url, stop, source="/nope.mp4", policy=FAST), WAIT_S
    )
    # then it exits 2, shows the API's detail, and stopped everything
    captured = capsys.readouterr()
    assert code == 2
    assert "HTTP 422" in captured.err
    assert "cannot open /nope.mp4: no such file" in captured.err
    assert "pitchside is up" not in captured.out
    assert leftovers(mark) == {}


async def test_run_stack_exits_2_with_the_message_of_a_child_that_exits_2(
    mark: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a worker that cannot load its model, and a gateway that waits for workers
    worker = """
        import sys
        print("worker-1 cannot run: model file '/m.onnx' does not exist", file=sys.stderr)
        sys.exit(2)
        """
    port, stop = free_port(), asyncio.Event()
    stack = fake_stack(mark, port, ready=False, worker=worker)
    # when the stack starts
    code = await asyncio.wait_for(
        run_stack(stack, f"http://127.0.0.1:{port}", stop, policy=FAST), WAIT_S
    )
    # then up exits 2 with the worker's own message, and stopped the rest
    err = capsys.readouterr().err
    assert code == 2
    assert (
        "pitchside up: worker-1 cannot run (exit status 2): "
        "worker-1 cannot run: model file '/m.onnx' does not exist"
    ) in err
    assert leftovers(mark) == {}


async def test_run_stack_exits_1_when_a_child_is_given_up_on_after_it_was_up(
    mark: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a stack that is up, with a worker that crashes once it has started
    worker = """
        import sys, time
        time.sleep(0.5)
        print("worker-1 lost its way", file=sys.stderr)
        sys.exit(1)
        """
    port, stop = free_port(), asyncio.Event()
    stack = fake_stack(mark, port, worker=worker)
    # when it keeps crashing past the restart budget
    code = await asyncio.wait_for(
        run_stack(stack, f"http://127.0.0.1:{port}", stop, policy=FAST), WAIT_S
    )
    # then up says so and exits 1 rather than run half a stack, and stopped the rest
    captured = capsys.readouterr()
    assert "pitchside is up" in captured.out
    assert code == 1
    assert (
        "pitchside up: worker-1 kept crashing (exit status 1); gave up: worker-1 lost its way; "
        "stopping every service"
    ) in captured.err
    assert leftovers(mark) == {}


async def test_run_stack_stops_everything_when_stopped_during_start_up(mark: str) -> None:
    # given a gateway that never becomes ready
    port, stop = free_port(), asyncio.Event()
    stack = fake_stack(mark, port, ready=False)
    task = asyncio.create_task(run_stack(stack, f"http://127.0.0.1:{port}", stop, policy=FAST))

    async def all_started() -> None:
        while len(marked_processes(mark)) < 3:
            await asyncio.sleep(0.02)

    await asyncio.wait_for(all_started(), WAIT_S)
    # when a stop comes before it is ready (Ctrl-C during start-up)
    stop.set()
    # then it returns 0 with nothing left running
    assert await asyncio.wait_for(task, WAIT_S) == 0
    assert leftovers(mark) == {}


async def test_run_stack_gives_up_when_the_gateway_is_never_ready(
    mark: str, capsys: pytest.CaptureFixture[str]
) -> None:
    port, stop = free_port(), asyncio.Event()
    stack = fake_stack(mark, port, ready=False)
    code = await asyncio.wait_for(
        run_stack(stack, f"http://127.0.0.1:{port}", stop, ready_timeout_s=0.5, policy=FAST),
        WAIT_S,
    )
    assert code == 1
    assert "/readyz did not answer 200" in capsys.readouterr().err
    assert leftovers(mark) == {}


# --------------------------------------------------------------------------------------------
# The real stack (needs ingest, workers and gateway)


class UpProcess:
    """``pitchside up`` as a subprocess, its output in files so every wait can be bounded."""

    def __init__(self, env: dict[str, str], cwd: Path, *args: str) -> None:
        self.out, self.err = cwd / "up.out", cwd / "up.err"
        self.url = f"http://127.0.0.1:{env['PITCHSIDE_PORT']}"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pitchside", "up", *args],
                env=env,
                cwd=cwd,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )

    def output(self) -> str:
        return self.out.read_text() + self.err.read_text()

    def wait_for_output(self, text: str, timeout_s: float = START_S) -> None:
        deadline = time.monotonic() + timeout_s
        while text not in self.out.read_text():
            assert self.proc.poll() is None, f"up exited {self.proc.returncode}:\n{self.output()}"
            assert time.monotonic() < deadline, f"no {text!r} in {timeout_s} s:\n{self.output()}"
            time.sleep(0.1)

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=120)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=WAIT_S)


@pytest.fixture
def real_env(tmp_path: Path, mark: str) -> dict[str, str]:
    model = require_asset(COCO_ONNX)
    return up_env(mark, tmp_path, PITCHSIDE_MODEL=str(model), PITCHSIDE_IMGSZ="320")


@pytest.mark.slow
def test_up_runs_the_stack_and_sigint_leaves_nothing_behind(
    tmp_path: Path, mark: str, real_env: dict[str, str]
) -> None:
    # given pitchside up with the real model
    up = UpProcess(real_env, tmp_path)
    try:
        # when it says it is up
        up.wait_for_output(f"pitchside is up: {up.url}\n")
        # then the gateway is ready, and every service runs
        assert httpx.get(f"{up.url}/readyz", timeout=10).status_code == 200
        started = descendants(up.proc.pid)
        commands = " | ".join(started.values())
        for part in ("redis-server", "-m gateway", "-m ingest", "-m workers --name worker-1"):
            assert part in commands, commands
        # and SIGINT stops it cleanly
        assert up.interrupt() == 0, up.output()
        assert leftovers(mark, started) == {}, up.output()
    finally:
        up.close()


@pytest.mark.slow
def test_up_stopped_during_start_up_leaves_nothing_behind(
    tmp_path: Path, mark: str, real_env: dict[str, str]
) -> None:
    # given pitchside up that has started some of its services
    up = UpProcess(real_env, tmp_path)
    try:
        deadline = time.monotonic() + START_S
        while "-m gateway" not in " ".join((started := descendants(up.proc.pid)).values()):
            assert up.proc.poll() is None, up.output()
            assert time.monotonic() < deadline, up.output()
            time.sleep(0.02)
        assert "redis-server" in " ".join(started.values())
        # when it gets Ctrl-C before it is up
        code = up.interrupt()
        # then it exits cleanly and nothing is left
        assert code == 0, up.output()
        assert "pitchside is up" not in up.out.read_text()
        assert leftovers(mark, started) == {}, up.output()
    finally:
        up.close()


@pytest.mark.slow
def test_up_exits_2_with_the_api_detail_when_the_source_is_missing(
    tmp_path: Path, mark: str, real_env: dict[str, str]
) -> None:
    # given a source file that does not exist
    missing = tmp_path / "no-such-match.mp4"
    up = UpProcess(real_env, tmp_path, "--source", str(missing))
    try:
        # when up has started and asked for the stream
        code = up.proc.wait(timeout=START_S)
        # then it shows why the stream was refused, exits 2 and leaves nothing behind
        assert code == 2, up.output()
        assert "was refused (HTTP 4" in up.err.read_text(), up.output()
        assert str(missing) in up.err.read_text()
        assert leftovers(mark) == {}, up.output()
    finally:
        up.close()


@pytest.mark.slow
def test_up_plays_the_file_named_on_its_command_line_outside_the_media_folder(
    tmp_path: Path, mark: str, real_env: dict[str, str]
) -> None:
    # given the clip, which is not in the media folder (the default, <data dir>/media)
    clip = require_asset(CLIP)
    up = UpProcess(real_env, tmp_path, "--source", str(clip))
    try:
        # when up is started with it, then it starts the stream and the stream goes live
        up.wait_for_output("pitchside is up")
        assert "started stream" in up.out.read_text(), up.output()
        base = f"http://127.0.0.1:{real_env['PITCHSIDE_PORT']}"
        deadline = time.monotonic() + WAIT_S
        while (streams := httpx.get(f"{base}/api/streams", timeout=5).json()["streams"]) and (
            streams[0]["state"] != "live"
        ):
            assert time.monotonic() < deadline, streams
            time.sleep(0.1)
        assert streams and streams[0]["source"] == str(clip.resolve())  # up makes it absolute
        # and another file beside it is still refused through the API
        other = {"source": str(clip.with_name("other.mp4"))}
        refused = httpx.post(f"{base}/api/streams", json=other, timeout=30)
        assert refused.status_code == 422 and "media folder" in refused.json()["detail"]
    finally:
        up.close()
