"""The embedded redis-server: starts, serves streams and groups, stops without a trace."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from redis import Redis

from pitchside.embedded_redis import EmbeddedRedis, redis_url_or_embedded
from pitchside.schema import WORKERS_GROUP, frames_key

WAIT_S = 30.0


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited; only its parent's wait is missing


def wait_gone(pid: int) -> bool:
    deadline = time.monotonic() + WAIT_S
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not pid_alive(pid)


def test_embedded_redis_serves_ping_streams_and_consumer_groups() -> None:
    # given a started server
    with EmbeddedRedis() as server, Redis.from_url(server.url) as client:
        # when a stream gets entries and a group reads them
        assert client.ping()
        key = frames_key("s1")
        first = client.xadd(key, {"seq": 0})
        client.xadd(key, {"seq": 1})
        client.xgroup_create(key, WORKERS_GROUP, id="0")
        read = client.xreadgroup(WORKERS_GROUP, "w1", {key: ">"}, count=1)
        # then the group delivers the first entry, and a second consumer can claim it
        assert read[0][1][0][0] == first
        # (redis 6.2 answers [next, entries]; 7.0 adds a third element)
        claimed = client.xautoclaim(key, WORKERS_GROUP, "w2", min_idle_time=0, start_id="0-0")[1]
        assert [entry_id for entry_id, _ in claimed] == [first]


def test_embedded_redis_listens_on_a_private_socket_only() -> None:
    with EmbeddedRedis() as server, Redis.from_url(server.url) as client:
        assert server.url.startswith("unix://")
        assert server.socket_path.stat().st_mode & 0o077 == 0, "socket must be private"
        assert client.config_get("port")["port"] == "0"


def test_embedded_redis_stop_removes_the_process_and_its_folder() -> None:
    # given a running server
    server = EmbeddedRedis()
    server.start()
    pid, folder = server.pid, server.socket_path.parent
    assert pid is not None and pid_alive(pid)
    # when it is stopped
    server.stop()
    # then neither the process nor its folder is left
    assert not pid_alive(pid)
    assert not folder.exists()
    assert server.pid is None


def test_embedded_redis_stop_is_safe_twice_and_before_start() -> None:
    # given a server that was never started: stopping it is a no-op
    server = EmbeddedRedis()
    server.stop()
    assert server.pid is None
    # when it is started after that, it serves
    server.start()
    pid, folder = server.pid, server.socket_path.parent
    assert pid is not None
    with Redis.from_url(server.url) as client:
        assert client.ping()
    # then stopping it twice ends the process and leaves nothing behind, without raising
    server.stop()
    server.stop()
    assert not pid_alive(pid) and not folder.exists() and server.pid is None


def test_redis_url_or_embedded_passes_a_given_url_through() -> None:
    with redis_url_or_embedded("redis://127.0.0.1:6399/0") as url:
        assert url == "redis://127.0.0.1:6399/0"


def test_redis_url_or_embedded_starts_and_stops_a_server() -> None:
    with redis_url_or_embedded(None) as url:
        socket_path = Path(url.removeprefix("unix://"))
        with Redis.from_url(url) as client:
            assert client.ping()
    assert not socket_path.exists()


def test_embedded_redis_dies_when_its_parent_is_sigkilled() -> None:
    # given a process that started an embedded server and then hangs
    code = textwrap.dedent(
        """
        import time
        from pitchside.embedded_redis import EmbeddedRedis
        server = EmbeddedRedis()
        server.start()
        print(server.pid, server.socket_path.parent, flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    folder: Path | None = None
    try:
        assert parent.stdout is not None
        pid_text, folder_text = parent.stdout.readline().split()
        pid, folder = int(pid_text), Path(folder_text)
        assert pid_alive(pid)
        # when the parent is killed and cannot run its clean-up
        parent.kill()
        parent.wait(WAIT_S)
        # then the kernel's death signal stops the redis-server too
        assert wait_gone(pid), f"redis-server {pid} outlived its SIGKILLed parent"
    finally:
        parent.kill()
        parent.wait(WAIT_S)
        if folder is not None:  # a SIGKILLed owner cannot remove its socket folder
            shutil.rmtree(folder, ignore_errors=True)
