"""``GET /api/history``: past image predictions, newest first, in pages; and one by id."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Literal, cast

from fastapi import APIRouter, Path, Query, Request

from gateway.predictions import HistoryPage, PredictionOut

if TYPE_CHECKING:
    from gateway.app import State

router = APIRouter(prefix="/api/history", tags=["predictions"])

MAX_LIMIT = 100
MAX_OFFSET = 10**9
MAX_ID = 2**63 - 1
_ERROR = {"description": "{error, detail}", "content": {"application/json": {}}}


def _state(request: Request) -> State:
    return cast("State", request.state)


@router.get(
    "",
    summary="Past predictions, newest first: a page of them and how many there are",
    responses={
        422: _ERROR | {"description": "limit or offset is not a valid number, or task unknown"}
    },
)
async def list_history(
    request: Request,
    limit: int = Query(
        20, ge=1, description=f"page size; more than {MAX_LIMIT} is served as {MAX_LIMIT}"
    ),
    offset: int = Query(0, ge=0, le=MAX_OFFSET, description="predictions to skip"),
    task: Literal["detect", "classify"] | None = Query(
        None, description="only detections (POST /api/predict) or classifications"
    ),
) -> HistoryPage:
    limit = min(limit, MAX_LIMIT)
    store = _state(request)["results"]
    records, total = await asyncio.to_thread(store.list_predictions, limit, offset, task)
    return HistoryPage(
        items=[PredictionOut.of(r) for r in records], total=total, limit=limit, offset=offset
    )


@router.get(
    "/{prediction_id}",
    summary="One past prediction",
    responses={404: _ERROR, 422: _ERROR | {"description": "the id is not a positive integer"}},
)
async def get_history(
    request: Request, prediction_id: int = Path(ge=1, le=MAX_ID, description="its id")
) -> PredictionOut:
    store = _state(request)["results"]
    return PredictionOut.of(await asyncio.to_thread(store.get_prediction, prediction_id))
