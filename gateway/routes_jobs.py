"""The jobs resource: analyse an upload frame by frame, follow it, cancel it, download it.

``POST /api/jobs`` records a queued job and wakes the keeper (:mod:`gateway.jobs`), which
starts and ends it; this module only reads the store. The downloads are streamed from the
results store in frame order, never built in memory; the annotated video is rendered on its
first request (:mod:`gateway.render`) and kept under the data folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import logging
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, cast

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from gateway import control
from gateway.jobs import remove_stream
from gateway.render import render_annotated
from pitchside.errors import IngestUnavailableError, JobFinishedError
from pitchside.results import FrameRecord, JobRecord, JobState, ResultsStore
from pitchside.uploads import job_sid, jobs_dir, new_id, upload_path, validate_id

if TYPE_CHECKING:
    from gateway.app import State

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

MAX_LIMIT = 100
#: Columns of results.csv: one row per frame; ``detections`` holds the JSON list of boxes.
CSV_COLUMNS = (
    "seq",
    "time_s",
    "players",
    "goalkeepers",
    "referees",
    "balls",
    "detections",
    "error",
)
_COUNTED = {
    "player": "players",
    "goalkeeper": "goalkeepers",
    "referee": "referees",
    "ball": "balls",
}
_ERROR = {"description": "{error, detail}", "content": {"application/json": {}}}


class JobRequest(BaseModel):
    """Body of ``POST /api/jobs``."""

    model_config = ConfigDict(extra="forbid")

    upload: str = Field(description="the upload to analyse", examples=["3f9c2a7b1d0e4f56"])


class JobLinks(BaseModel):
    results_jsonl: str
    results_csv: str
    video: str


class JobOut(BaseModel):
    """An analysis job and its progress."""

    id: str
    upload: str = Field(description="the analysed upload's id")
    stream: str = Field(description="the stream carrying its frames (watchable while it runs)")
    state: JobState
    frames_done: int = Field(description="frames whose results are stored")
    frames_total: int | None = Field(description="frames of the video; null until known")
    progress: float | None = Field(description="frames_done / frames_total, 0 to 1")
    fps: float | None = Field(description="frames analysed per second since it started")
    eta_s: float | None = Field(description="seconds left at that rate")
    error: str | None = Field(description="why it failed")
    created: datetime
    started: datetime | None
    finished: datetime | None
    links: JobLinks

    @classmethod
    def of(cls, job: JobRecord) -> JobOut:
        total = job.frames_total
        end = job.finished or datetime.now(UTC)
        elapsed = (end - job.started).total_seconds() if job.started else 0.0
        fps = job.frames_done / elapsed if elapsed > 0 and job.frames_done else None
        eta = None
        if fps and total is not None and job.active:
            eta = round(max(0, total - job.frames_done) / fps, 1)
        base = f"/api/jobs/{job.id}"
        return cls(
            id=job.id, upload=job.upload_id, stream=job_sid(job.id), state=job.state,
            frames_done=job.frames_done, frames_total=total,
            progress=round(min(1.0, job.frames_done / total), 4) if total else None,
            fps=round(fps, 2) if fps else None, eta_s=eta, error=job.error,
            created=job.created, started=job.started, finished=job.finished,
            links=JobLinks(
                results_jsonl=f"{base}/results.jsonl", results_csv=f"{base}/results.csv",
                video=f"{base}/video.mp4",
            ),
        )  # fmt: skip


class JobPage(BaseModel):
    jobs: list[JobOut] = Field(description="newest first")
    total: int


def _state(request: Request) -> State:
    return cast("State", request.state)


@router.post(
    "",
    status_code=201,
    summary="Analyse an upload: every frame detected once, results kept",
    responses={404: _ERROR | {"description": "no such upload"}, 422: _ERROR},
)
async def create_job(body: JobRequest, request: Request) -> JobOut:
    state = _state(request)
    store = state["results"]
    upload = await asyncio.to_thread(store.get_upload, validate_id(body.upload))
    job = await asyncio.to_thread(store.add_job, new_id(), upload.id, upload.frames)
    state["jobs"].wake()
    log.info("job %s queued for upload %s", job.id, upload.id)
    return JobOut.of(job)


@router.get("", summary="Analysis jobs, newest first")
async def list_jobs(
    request: Request,
    limit: int = Query(50, ge=1, description=f"page size; at most {MAX_LIMIT}"),
    offset: int = Query(0, ge=0, le=10**9),
) -> JobPage:
    store = _state(request)["results"]
    jobs, total = await asyncio.to_thread(store.list_jobs, min(limit, MAX_LIMIT), offset)
    return JobPage(jobs=[JobOut.of(j) for j in jobs], total=total)


@router.get("/{job_id}", summary="One job and its progress", responses={404: _ERROR})
async def get_job(job_id: str, request: Request) -> JobOut:
    return JobOut.of(await _job(request, job_id))


@router.delete(
    "/{job_id}",
    summary="Cancel a queued or running job (its results so far are kept)",
    responses={404: _ERROR, 409: _ERROR | {"description": "the job has ended already"}},
)
async def cancel_job(job_id: str, request: Request) -> JobOut:
    state = _state(request)
    store, redis, settings = state["results"], state["redis"], state["settings"]
    job = await _job(request, job_id)
    cancelled = await asyncio.to_thread(
        store.update_job, job.id, state=JobState.CANCELLED, finished=datetime.now(UTC)
    )
    if cancelled is None:
        raise JobFinishedError(f"job {job.id} has ended already ({job.state.value})")
    state["metrics"].job_ended(JobState.CANCELLED.value)
    try:
        await control.stop(redis, job_sid(job.id), settings.control_timeout_s)
    except IngestUnavailableError:
        log.warning("job %s cancelled; no ingest answered its stop", job.id)
    await remove_stream(redis, job_sid(job.id))
    log.info("job %s cancelled at %d frames", job.id, cancelled.frames_done)
    return JobOut.of(cancelled)


@router.get(
    "/{job_id}/results.jsonl",
    summary="Per-frame results, one JSON object a line, in frame order (so far, while it runs)",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}}, 404: _ERROR},
)
async def results_jsonl(job_id: str, request: Request) -> StreamingResponse:
    job = await _job(request, job_id)
    store = _state(request)["results"]
    return StreamingResponse(
        _jsonl(store, job.id), media_type="application/x-ndjson",
        headers=_attachment(f"{job.id}-results.jsonl"),
    )  # fmt: skip


@router.get(
    "/{job_id}/results.csv",
    summary="Per-frame results, one CSV row a frame, in frame order: counts per class and "
    "the boxes as JSON",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}, 404: _ERROR},
)
async def results_csv(job_id: str, request: Request) -> StreamingResponse:
    job = await _job(request, job_id)
    store = _state(request)["results"]
    return StreamingResponse(
        _csv(store, job.id), media_type="text/csv; charset=utf-8",
        headers=_attachment(f"{job.id}-results.csv"),
    )  # fmt: skip


@router.get(
    "/{job_id}/video.mp4",
    summary="The upload with the job's boxes and labels drawn (H.264), rendered on the first "
    "request and kept",
    response_class=FileResponse,
    responses={
        200: {"content": {"video/mp4": {}}},
        404: _ERROR,
        409: _ERROR | {"description": "the job is not done"},
    },
)
async def annotated_video(job_id: str, request: Request) -> FileResponse:
    state = _state(request)
    settings, store = state["settings"], state["results"]
    job = await _job(request, job_id)
    if job.state is not JobState.DONE:
        raise JobFinishedError(f"job {job.id} is {job.state.value}; its video comes once done")
    out = jobs_dir(settings.data_dir, job.id) / "video.mp4"
    async with state["renders"].setdefault(job.id, asyncio.Lock()):
        if not out.exists():
            await asyncio.to_thread(_render, store, job, settings.data_dir, out)
    return FileResponse(out, media_type="video/mp4", filename=f"{job.id}-annotated.mp4")


# -------------------------------------------------------------------- helpers


async def _job(request: Request, job_id: str) -> JobRecord:
    store = _state(request)["results"]
    return await asyncio.to_thread(store.get_job, validate_id(job_id, "job"))


def _render(store: ResultsStore, job: JobRecord, data_dir: Path, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(store.iter_frames(job.id)) as frames:
        written = render_annotated(upload_path(data_dir, job.upload_id), frames, out)
    log.info("job %s: annotated video rendered, %d frames", job.id, written)


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


def _jsonl(store: ResultsStore, job_id: str) -> Iterator[bytes]:
    """Lines of results.jsonl; Starlette iterates a plain iterator in a thread."""
    for frame in store.iter_frames(job_id):
        yield (json.dumps(_record(frame), separators=(",", ":")) + "\n").encode()


def _csv(store: ResultsStore, job_id: str) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for frame in store.iter_frames(job_id):
        counts = Counter(_COUNTED.get(d.get("label", ""), "") for d in frame.detections)
        writer.writerow([
            frame.seq, f"{frame.pts_ns / 1e9:.3f}",
            counts["players"], counts["goalkeepers"], counts["referees"], counts["balls"],
            json.dumps(frame.detections, separators=(",", ":")), frame.error or "",
        ])  # fmt: skip
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def _record(frame: FrameRecord) -> dict[str, object]:
    record: dict[str, object] = {
        "seq": frame.seq, "time_s": round(frame.pts_ns / 1e9, 6), "detections": frame.detections,
    }  # fmt: skip
    if frame.error:
        record["error"] = frame.error
    return record
