"""Scrape a ``/metrics`` endpoint as Prometheus does and pick samples out of it (wait for a
condition on them with :func:`tests.integration.test_ingest.wait_until`)."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

SCRAPE_TIMEOUT_S = 10.0


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
