"""``GET /api/workers``: the workers alive now and the model each one serves."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from fastapi import APIRouter, Request

from pitchside.heartbeat import read_beats
from pitchside.metrics import WORKER

if TYPE_CHECKING:
    from gateway.app import State

router = APIRouter(tags=["workers"])


@router.get("/api/workers", summary="Workers alive now and the model (name, version) each serves")
async def list_workers(request: Request) -> dict[str, object]:
    redis = cast("State", request.state)["redis"]
    beats = [beat for beat in await read_beats(redis, WORKER) if beat.model is not None]
    workers = [{"name": beat.name, "model": beat.model, "seen_ns": beat.ts} for beat in beats]
    return {"workers": workers, "models": sorted({str(beat.model) for beat in beats})}
