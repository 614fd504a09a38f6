"""pitchside on a real three-master Redis Cluster (``REDIS_URL=redis+cluster://...``): streams
spread over the shards, and the whole stack end to end, as on one Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from pitchside.errors import SettingsError
from pitchside.redis_client import connect, is_cluster, slot_groups
from pitchside.schema import dets_key, frames_key
from tests.conftest import CLIP, require_asset
from tests.integration.conftest import Stack, run_stack
from tests.integration.redis_cluster import Cluster, redis_cluster
from tests.integration.test_pipeline_e2e import collect

STEP_S = 120.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with redis_cluster(tmp_path_factory.mktemp("cluster")) as running:
        yield running


def one_sid_per_shard(cluster: Cluster) -> dict[int, str]:
    """A stream id whose keys live on each master, by port."""
    found: dict[int, str] = {}
    for n in range(100):
        found.setdefault(cluster.node_of(frames_key(f"cam-{n}")), f"cam-{n}")
    assert len(found) == len(cluster.ports), found
    return found


def test_a_stream_keeps_its_keys_on_one_shard_and_streams_spread_over_all(
    cluster: Cluster,
) -> None:
    sids = one_sid_per_shard(cluster)
    for port, sid in sids.items():
        assert cluster.node_of(dets_key(sid)) == port  # the hash tag: one slot per stream
    keys = [frames_key(sid) for sid in sids.values()]
    assert slot_groups(keys) == [[key] for key in keys]  # a read per stream on a cluster
    sid = sids[cluster.ports[0]]
    assert slot_groups([frames_key(sid), dets_key(sid)]) == [[frames_key(sid), dets_key(sid)]]


async def test_a_cluster_url_makes_a_cluster_client(cluster: Cluster) -> None:
    client = connect(cluster.url, "tester")
    try:
        assert is_cluster(client)
        await client.set("pitchside:probe", "1")
        assert await client.get("pitchside:probe") == b"1"
    finally:
        await client.aclose()


@pytest.mark.parametrize("url", ["redis+cluster://", "redis+cluster://127.0.0.1"])
def test_a_bad_cluster_url_is_a_settings_error(url: str) -> None:
    with pytest.raises(SettingsError, match="REDIS_URL"):
        connect(url, "tester")


@pytest.fixture(scope="module")
def cluster_stack(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with run_stack(tmp_path_factory.mktemp("cluster-stack"), REDIS_URL=cluster.url) as running:
        yield running


@pytest.mark.slow
def test_the_stack_on_a_cluster_detects_streams_on_every_shard(
    cluster: Cluster, cluster_stack: Stack, tmp_path: Path
) -> None:
    # given one live stream on each master, through `pitchside up` on the cluster
    sids = one_sid_per_shard(cluster)
    clip = require_asset(CLIP)
    with httpx.Client(base_url=cluster_stack.base_url, timeout=60) as client:
        for sid in sids.values():
            body = {"source": str(clip), "id": sid, "loop": True}
            assert client.post("/api/streams", json=body).status_code == 201
        # then a viewer of each sees its frames, with their detections
        for sid in sids.values():
            frames = asyncio.run(collect(f"{cluster_stack.ws_url}/ws/streams/{sid}", 5, STEP_S))
            assert {meta["sid"] for meta, _ in frames} == {sid}
            assert any(meta["detections"] for meta, _ in frames), sid
        # and each stream's frames and detections are on its own master
        for port, sid in sids.items():
            with redis.Redis(port=port) as node:
                assert node.exists(frames_key(sid)) and node.exists(dets_key(sid))
        deadline = time.monotonic() + STEP_S
        while not all(s["state"] == "live" for s in client.get("/api/streams").json()["streams"]):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        for sid in sids.values():
            assert client.delete(f"/api/streams/{sid}").status_code in (200, 204)
