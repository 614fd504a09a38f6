"""``GET /api/workers``: the workers alive now and the model each one serves."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from fastapi import APIRouter, Request

from pitchside.errors import SchemaError
from pitchside.schema import WorkerBeat, health_pattern, instance_from_health_key

if TYPE_CHECKING:
    from gateway.app import State

router = APIRouter(tags=["workers"])


@router.get("/api/workers", summary="Workers alive now and the model (name, version) each serves")
async def list_workers(request: Request) -> dict[str, object]:
    redis = cast("State", request.state)["redis"]
    workers = []
    async for key in redis.scan_iter(match=health_pattern("worker"), count=100):
        raw = await redis.get(key)
        if raw is None:  # expired between SCAN and GET
            continue
        try:
            beat = WorkerBeat.from_json(raw)
        except SchemaError:
            continue
        workers.append(
            {"name": instance_from_health_key(key), "model": beat.model, "seen_ns": beat.ts}
        )
    workers.sort(key=lambda w: str(w["name"]))
    return {"workers": workers, "models": sorted({str(w["model"]) for w in workers})}
