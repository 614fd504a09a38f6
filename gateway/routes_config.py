"""``GET /api/config``: what the bundled viewer needs to know of the gateway's settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from gateway.app import State

router = APIRouter(tags=["config"])

OVERVIEW_DASHBOARD = "pitchside-overview"  # uid of the dashboard of every stream
STREAM_DASHBOARD = "pitchside-stream"  # uid of the dashboard of one stream (variable `stream`)


class ViewerConfig(BaseModel):
    """Settings the viewer shows; nothing secret is ever added here."""

    grafana_url: str | None = Field(
        description=(
            "Grafana's base URL (PITCHSIDE_GRAFANA_URL), without a trailing '/'; null when "
            f"unset. The viewer links to {{grafana_url}}/d/{OVERVIEW_DASHBOARD} and, per stream, "
            f"{{grafana_url}}/d/{STREAM_DASHBOARD}?var-stream={{sid}}."
        ),
    )


@router.get("/api/config", summary="Settings the viewer shows (the Grafana link)")
async def viewer_config(request: Request) -> ViewerConfig:
    settings = cast("State", request.state)["settings"]
    return ViewerConfig(grafana_url=settings.grafana_url)
