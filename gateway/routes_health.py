"""Liveness, readiness and metrics: ``/healthz``, ``/readyz``, ``/metrics``.

``/metrics`` measures the consumer groups first (:func:`gateway.groups.refresh`) and counts
the jobs per state in the results store, so that both are as fresh as the scrape.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, cast

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.groups import refresh
from pitchside.errors import ResultsStoreError
from pitchside.schema import health_pattern

if TYPE_CHECKING:
    from gateway.app import State

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])

READY_TIMEOUT_S = 2.0  # a readiness probe must answer even when Redis hangs
SERVICES = (("ingest", "ingest"), ("worker", "workers"))  # (heartbeat service, reply field)


def _state(request: Request) -> State:
    return cast("State", request.state)


async def count_heartbeats(redis: Redis, service: str) -> int:
    """Live heartbeat keys of ``service`` (``pitchside:health:{service}:*``), found with SCAN."""
    return sum([1 async for _ in redis.scan_iter(match=health_pattern(service), count=100)])


@router.get("/healthz", summary="Liveness: the gateway process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: Redis answers and at least one ingest and one worker are alive",
    responses={503: {"description": "Redis does not answer, or no ingest or no worker is alive"}},
)
async def readyz(request: Request) -> JSONResponse:
    redis = _state(request)["redis"]
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            await redis.ping()
            counts = {field: await count_heartbeats(redis, svc) for svc, field in SERVICES}
    except (RedisError, OSError, TimeoutError) as exc:
        log.warning("not ready: redis does not answer: %s", exc)
        return _not_ready(f"redis does not answer: {exc or 'timeout'}", ingest=0, workers=0)
    missing = [
        f"no {svc} heartbeat ({health_pattern(svc)})"
        for svc, field in SERVICES
        if not counts[field]
    ]
    if missing:
        return _not_ready("; ".join(missing), **counts)
    return JSONResponse({"status": "ready", **counts})


def _not_ready(detail: str, **counts: Any) -> JSONResponse:
    return JSONResponse(
        {"status": "not_ready", "error": "not_ready", "detail": detail, **counts}, status_code=503
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics of this gateway process",
    response_class=PlainTextResponse,  # so the document says text/plain, as the answer is
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}}},
)
async def metrics(request: Request) -> Response:
    state = _state(request)
    await refresh(state["redis"], state["metrics"])
    try:
        counts = await asyncio.to_thread(state["results"].count_jobs)
    except ResultsStoreError as exc:  # the other metrics are still worth serving
        log.warning("jobs not counted for /metrics: %s", exc)
    else:
        state["metrics"].set_job_states({s.value: n for s, n in counts.items()})
    return Response(state["metrics"].exposition(), media_type=CONTENT_TYPE_LATEST)
