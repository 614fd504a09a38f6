"""Scrape a ``/metrics`` endpoint as Prometheus does, pick samples out of it, and wait for
a condition on them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

SCRAPE_TIMEOUT_S = 10.0
T = TypeVar("T")


async def scrape(address: str) -> list[Sample]:
    """Every sample ``http://{address}/metrics`` serves (``address`` is ``host:port``)."""
    async with httpx.AsyncClient(timeout=SCRAPE_TIMEOUT_S) as client:
        resp = await client.get(f"http://{address}/metrics")
    assert resp.status_code == 200, f"{address}/metrics answered {resp.status_code}"
    assert resp.headers["content-type"].startswith("text/plain")
    return [s for family in text_string_to_metric_families(resp.text) for s in family.samples]


def value(samples: list[Sample], name: str, /, **labels: str) -> float | None:
    """The value of the sample ``name`` whose labels include ``labels``; None if none."""
    for sample in samples:
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
            return float(sample.value)
    return None


def streams(samples: list[Sample]) -> set[str]:
    """Every ``stream`` label value of the samples."""
    return {s.labels["stream"] for s in samples if "stream" in s.labels}


async def eventually(
    check: Callable[[], Awaitable[T]], timeout_s: float, what: str, every_s: float = 0.1
) -> T:
    """Poll ``check`` until it returns something truthy, and return that; fail after
    ``timeout_s`` naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(every_s)
