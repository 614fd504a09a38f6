"""Discovery on the whole stack (`pitchside up`): ``/api/sd/prometheus`` lists ingest, the
worker, the tracker and the gateway, each on its own address, and each serves its metrics."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.conftest import CLIP
from tests.integration.conftest import Stack
from tests.integration.scrape import scrape, value
from tests.integration.test_ingest import wait_until

WAIT_S = 60.0  # bound of each wait: a clip's first frames through three processes on 2 cores
SERVICES = {"gateway", "ingest", "worker", "tracker"}
SERVICE_ORDER = ("ingest", "worker", "gateway")
#: A family only that service exports: proof the address is that service's endpoint.
OWN_FAMILY = {
    "gateway": "pitchside_gateway_feeds",
    "ingest": "pitchside_ingest_streams",
    "worker": "pitchside_worker_batch_size_count",
    "tracker": "pitchside_tracker_streams",
}


async def _targets(stack: Stack) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=10) as client:
        resp = await client.get("/api/sd/prometheus")
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    groups: list[dict[str, Any]] = resp.json()
    return groups


async def test_sd_lists_every_service_and_each_target_serves_its_metrics(stack: Stack) -> None:
    # given the stack as `pitchside up` runs it: when every service has announced itself
    async def every_service() -> list[dict[str, Any]]:
        groups = await _targets(stack)
        return groups if {g["labels"]["service"] for g in groups} == SERVICES else []

    groups = await wait_until(every_service, WAIT_S, "ingest, a worker, a tracker, the gateway")
    # then each is one target group in Prometheus's format, on its own address
    assert len(groups) == len(SERVICES), groups
    for group in groups:
        assert set(group) == {"targets", "labels"} and len(group["targets"]) == 1, group
        assert set(group["labels"]) == {"service", "instance_name"}, group
        assert group["labels"]["instance_name"].startswith(group["labels"]["service"] + "-")
    addresses = [group["targets"][0] for group in groups]
    assert len(set(addresses)) == len(SERVICES), f"one endpoint per process: {addresses}"
    gateway = next(g for g in groups if g["labels"]["service"] == "gateway")
    assert stack.base_url.endswith(gateway["targets"][0]), "the gateway's own port"
    # and each target serves its own families and its process's
    for group in groups:
        samples = await scrape(group["targets"][0])
        service = group["labels"]["service"]
        assert value(samples, OWN_FAMILY[service]) is not None, f"{service}: {group}"
        assert (value(samples, "process_resident_memory_bytes") or 0) > 0, service


async def test_each_service_counts_a_real_stream_on_the_endpoint_sd_names(stack: Stack) -> None:
    # given the stack's targets, and the clip playing as a stream
    groups = await _targets(stack)
    target = {g["labels"]["service"]: g["targets"][0] for g in groups}
    response = await asyncio.to_thread(stack.start_stream, "sd-clip", CLIP, True)
    assert response.status_code == 201, response.text
    stream = {"stream": "sd-clip"}
    try:
        # when its frames have gone through every service
        async def flowed() -> bool:
            ingest, worker, gateway = [await scrape(target[s]) for s in SERVICE_ORDER]
            published = value(ingest, "pitchside_ingest_frames_published_total", **stream)
            inferred = value(worker, "pitchside_worker_frames_inferred_total", **stream)
            lag = value(gateway, "pitchside_consumer_group_lag", group="workers", **stream)
            return bool(published and inferred) and lag is not None

        await wait_until(flowed, WAIT_S, "sd-clip counted by ingest, the worker and the gateway")
        # then ingest shows the stream live, and the workers' lag stays within the stream's bound
        samples = await scrape(target["ingest"])
        assert value(samples, "pitchside_ingest_source_state", state="live", **stream) == 1
        samples = await scrape(target["gateway"])
        lag = value(samples, "pitchside_consumer_group_lag", group="workers", **stream)
        assert lag is not None and 0 <= lag <= 60, f"lag {lag}"
    finally:
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as client:
            await client.delete("/api/streams/sd-clip")
