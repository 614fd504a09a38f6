"""The gateway's app factory: REST control plane, viewer WebSocket, static viewer, metrics,
image predictions and their history, uploads and analysis jobs.

``create_app(settings)`` builds a FastAPI app whose lifespan opens one Redis client, one
:class:`~gateway.hub.Hub`, the results store (migrated to head), the image
:class:`~gateway.predictor.Predictor` and :class:`~gateway.predictor.ImageClassifier`, and the
:class:`~gateway.jobs.JobKeeper`, and yields them as typed state (``request.state["redis"]``...).
Every error leaves as ``{"error": code, "detail": message}`` with its status; never a trace.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path
from typing import Any, TypedDict

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException

import pitchside
from gateway import (
    routes_classify,
    routes_config,
    routes_discovery,
    routes_health,
    routes_history,
    routes_jobs,
    routes_predict,
    routes_session,
    routes_streams,
    routes_uploads,
    routes_whip,
    routes_workers,
    ws,
)
from gateway.auth import REALM
from gateway.auth import install as install_access_control
from gateway.hub import Hub
from gateway.jobs import JobKeeper
from gateway.limits import BodyLimit
from gateway.metrics import Metrics
from gateway.openapi_errors import document_errors
from gateway.predictor import ImageClassifier, Predictor
from pitchside.errors import PitchsideError, SettingsError
from pitchside.redis_client import connect
from pitchside.results import ResultsStore
from pitchside.service import instance_name
from pitchside.settings import Settings

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent / "web"


class State(TypedDict):
    """What the lifespan yields; handlers read it as ``request.state["..."]``."""

    settings: Settings
    redis: Redis
    hub: Hub
    metrics: Metrics
    results: ResultsStore
    predictor: Predictor
    classifier: ImageClassifier
    jobs: JobKeeper
    renders: dict[str, asyncio.Lock]  # job id -> held while its annotated video renders


def create_app(settings: Settings, clock: Callable[[], float] = time.time) -> FastAPI:
    """The gateway app. ``settings.redis_url`` must be set (``__main__`` starts an embedded
    Redis when it is not). ``clock`` (epoch s) dates the session cookies (tests pass theirs).

    Raises:
        SettingsError: ``settings.redis_url`` is None.
    """
    redis_url = settings.redis_url
    if not redis_url:
        raise SettingsError("the gateway needs a Redis URL (REDIS_URL), got none")
    metrics = Metrics(settings.metrics_max_streams)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[State]:
        results = await asyncio.to_thread(ResultsStore.open, settings.results_url)
        redis = connect(redis_url, instance_name("gateway"))
        try:
            async with (
                Hub(redis, metrics, queue_size=settings.ws_queue) as hub,
                JobKeeper(settings, redis, results, metrics) as jobs,
            ):
                yield {
                    "settings": settings, "redis": redis, "hub": hub, "metrics": metrics,
                    "results": results, "predictor": Predictor(settings),
                    "classifier": ImageClassifier(settings), "jobs": jobs,
                    "renders": {},
                }  # fmt: skip
        finally:
            await redis.aclose()
            await asyncio.to_thread(results.close)

    app = FastAPI(
        title="pitchside gateway",
        version=pitchside.__version__,
        summary="Streams of football video analysed live: control them, and view them.",
        docs_url=None,  # FastAPI's pages load Swagger UI from a CDN; ours is self-contained
        redoc_url=None,
        lifespan=lifespan,
    )
    app.add_exception_handler(PitchsideError, _pitchside_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(RedisError, _redis_error)
    app.add_exception_handler(Exception, _internal_error)
    app.add_middleware(BodyLimit)  # 413 for a body over 64 KiB, but where a route streams it
    auth = install_access_control(app, settings, clock)  # tokens, origins, CORS: runs first
    document_errors(app)  # the OpenAPI document names the error shape above for every error
    app.include_router(routes_streams.router)
    app.include_router(routes_health.router)
    app.include_router(routes_workers.router)
    app.include_router(routes_discovery.router)
    app.include_router(routes_whip.router)
    app.include_router(routes_predict.router)
    app.include_router(routes_classify.router)
    app.include_router(routes_history.router)
    app.include_router(routes_uploads.router)
    app.include_router(routes_jobs.router)
    app.include_router(routes_config.router)
    app.include_router(routes_session.router_for(auth))
    app.include_router(ws.router)
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(_docs_page(app.openapi()))

    return app


# -------------------------------------------------------------------- errors


def problem(
    status: int, code: str, detail: Any, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The one error shape: ``{"error": code, "detail": message}``."""
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


async def _pitchside_error(request: Request, exc: Exception) -> JSONResponse:
    err = exc if isinstance(exc, PitchsideError) else PitchsideError(str(exc))
    if err.status >= 500:
        log.warning("%s %s answered %d: %s", request.method, request.url.path, err.status, err)
    headers = {"WWW-Authenticate": REALM} if err.status == 401 else None
    return problem(err.status, err.code, str(err), headers=headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StarletteHTTPException):
        return await _internal_error(request, exc)
    try:
        code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        code = "http_error"
    return problem(exc.status_code, code, exc.detail, headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    parts = []
    for err in errors:  # loc and msg only: the input may hold credentials
        loc = [str(p) for p in err.get("loc", ())]
        if len(loc) > 1 and loc[0] == "body":
            loc = loc[1:]
        parts.append(f"{'.'.join(loc)}: {err.get('msg', 'invalid')}")
    return problem(422, "invalid_request", "; ".join(parts) or "invalid request")


async def _redis_error(request: Request, exc: Exception) -> JSONResponse:
    log.warning("%s %s: redis error: %s", request.method, request.url.path, exc)
    return problem(503, "redis_unavailable", "the gateway cannot reach Redis; try again shortly")


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    # uvicorn logs the traceback (starlette re-raises after this answer); the client gets none.
    return problem(500, "internal_error", "internal server error")


# -------------------------------------------------------------------- /docs


def _docs_page(spec: dict[str, Any]) -> str:
    """A plain HTML page listing every operation of ``spec``: no scripts, nothing fetched."""
    esc = html.escape
    rows = []
    for path, ops in spec.get("paths", {}).items():
        for method, op in ops.items():
            params = ", ".join(
                f"{p['name']} ({p.get('in', '')}{', required' if p.get('required') else ''})"
                for p in op.get("parameters", [])
            )
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            ref = body.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1]
            statuses = ", ".join(op.get("responses", {}))
            rows.append(
                f"<tr><td><code>{esc(method.upper())}</code></td><td><code>{esc(path)}</code></td>"
                f"<td>{esc(op.get('summary', ''))}</td><td>{esc(params)}</td>"
                f"<td>{esc(ref)}</td><td>{esc(statuses)}</td></tr>"
            )
    schemas = json.dumps(spec.get("components", {}).get("schemas", {}), indent=2)
    title = esc(spec.get("info", {}).get("title", "API"))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}: API</title>
<link rel="stylesheet" href="/static/style.css"></head>
<body class="docs"><h1>{title} API</h1>
<p>Machine-readable: <a href="/openapi.json">/openapi.json</a>.
WebSocket protocol: <code>/ws/streams/{{sid}}</code>, see docs/protocol.md.
Errors answer <code>{{"error": code, "detail": message}}</code>.</p>
<table><thead><tr><th>method</th><th>path</th><th>summary</th><th>parameters</th>
<th>body</th><th>statuses</th></tr></thead><tbody>{"".join(rows)}</tbody></table>
<h2>Schemas</h2><pre>{esc(schemas)}</pre></body></html>"""
