"""``GET /api/sd/prometheus``: every live service's ``/metrics``, for Prometheus to scrape.

The answer is Prometheus's HTTP service discovery format
(https://prometheus.io/docs/prometheus/latest/http_sd/): a JSON list of target groups, one per
live heartbeat that names a metrics address (:class:`~pitchside.schema.Beat`): ingest, each
worker and each gateway run as a service, on any host. Point ``http_sd_configs`` at it::

    scrape_configs:
      - job_name: pitchside
        http_sd_configs: [{url: "http://GATEWAY:8000/api/sd/prometheus", refresh_interval: 15s}]

A service that stops removes its heartbeat, and one that dies is gone within its TTL (6 s).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from fastapi import APIRouter, Request
from pydantic import BaseModel

from pitchside.heartbeat import read_beats

if TYPE_CHECKING:
    from gateway.app import State

router = APIRouter(tags=["discovery"])


class TargetGroup(BaseModel):
    """One Prometheus HTTP SD target group: a service's metrics address and its labels."""

    targets: list[str]
    labels: dict[str, str]


@router.get(
    "/api/sd/prometheus",
    summary="Every live service's metrics address, in Prometheus's HTTP service discovery format",
)
async def prometheus_targets(request: Request) -> list[TargetGroup]:
    beats = await read_beats(cast("State", request.state)["redis"])
    return [
        TargetGroup(
            targets=[beat.metrics], labels={"service": beat.service, "instance_name": beat.name}
        )
        for beat in beats
        if beat.metrics
    ]
