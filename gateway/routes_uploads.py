"""The uploads resource: match videos sent to the gateway, kept under the data folder.

``POST /api/uploads`` writes the multipart file to ``<data_dir>/uploads`` as it arrives
(bounded by ``PITCHSIDE_UPLOAD_MAX_MB``), probes it with PyAV and records it; a body over
the limit, a file that is not a video or a video cut short is refused, and nothing of it
stays on disk. An upload plays live as the source ``upload:<id>`` of ``POST /api/streams``,
or is analysed frame by frame by ``POST /api/jobs``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, cast

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from gateway import multipart
from gateway.video_probe import probe_video
from pitchside.errors import PitchsideError
from pitchside.results import NewUpload, UploadRecord
from pitchside.uploads import (
    jobs_dir,
    new_id,
    upload_path,
    upload_source,
    uploads_dir,
    validate_id,
)

if TYPE_CHECKING:
    from gateway.app import State

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/uploads", tags=["uploads"])

MAX_LIMIT = 100
_ERROR = {"description": "{error, detail}", "content": {"application/json": {}}}


class UploadOut(BaseModel):
    """An uploaded video and what its probe found."""

    id: str = Field(description="16 hex digits", examples=["3f9c2a7b1d0e4f56"])
    name: str = Field(description="the file's name as the client gave it")
    size: int = Field(description="bytes")
    duration_s: float | None = Field(description="seconds of video")
    fps: float | None = Field(description="the video's average frame rate")
    width: int | None
    height: int | None
    frames: int | None = Field(description="video frames that decode")
    created: datetime = Field(description="when it was uploaded, UTC")
    source: str = Field(description="the source that plays it live in POST /api/streams")

    @classmethod
    def of(cls, record: UploadRecord) -> UploadOut:
        return cls(
            id=record.id, name=record.name, size=record.size, duration_s=record.duration_s,
            fps=record.fps, width=record.width, height=record.height, frames=record.frames,
            created=record.created, source=upload_source(record.id),
        )  # fmt: skip


class UploadPage(BaseModel):
    uploads: list[UploadOut] = Field(description="newest first")
    total: int = Field(description="uploads in all")


def _state(request: Request) -> State:
    return cast("State", request.state)


@router.post(
    "",
    status_code=201,
    summary="Upload a match video (multipart field 'file'), probed and kept for playing or "
    "analysis",
    openapi_extra=multipart.openapi_body("file", "a video file (MP4, MKV, MOV, AVI, TS...)"),
    responses={
        400: _ERROR | {"description": "the multipart body cannot be read"},
        413: _ERROR | {"description": "the file is over PITCHSIDE_UPLOAD_MAX_MB"},
        415: _ERROR | {"description": "the body is not multipart/form-data"},
        422: _ERROR | {"description": "no file, an empty file, or not a whole video"},
    },
)
async def create_upload(request: Request, response: Response) -> UploadOut:
    state = _state(request)
    settings, store = state["settings"], state["results"]
    upload_id = new_id()
    folder = uploads_dir(settings.data_dir)
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    incoming = folder / f".incoming-{upload_id}"
    final = upload_path(settings.data_dir, upload_id)
    try:
        saved = await multipart.save_file(
            request, "file", incoming, settings.upload_max_mb * 2**20, "PITCHSIDE_UPLOAD_MAX_MB"
        )
        name = multipart.clean_filename(saved.filename) or "upload"
        info = await asyncio.to_thread(probe_video, incoming, name)
        await asyncio.to_thread(incoming.rename, final)
        record = await asyncio.to_thread(
            store.add_upload,
            NewUpload(
                id=upload_id, name=name, size=saved.size, duration_s=info.duration_s,
                fps=info.fps, width=info.width, height=info.height, frames=info.frames,
            ),
        )  # fmt: skip
    except BaseException as exc:  # refused, failed or cut off (the client went away): keep nothing
        await asyncio.to_thread(_unlink, incoming, final)
        state["metrics"].upload(exc.code if isinstance(exc, PitchsideError) else "aborted")
        raise
    state["metrics"].upload("accepted", saved.size)
    log.info(
        "upload %s: %s, %.1f MiB, %dx%d, %d frames",
        upload_id, name, saved.size / 2**20, info.width, info.height, info.frames,
    )  # fmt: skip
    response.headers["Location"] = f"/api/uploads/{upload_id}"
    return UploadOut.of(record)


@router.get("", summary="Uploaded videos, newest first")
async def list_uploads(
    request: Request,
    limit: int = Query(50, ge=1, description=f"page size; at most {MAX_LIMIT}"),
    offset: int = Query(0, ge=0, le=10**9),
) -> UploadPage:
    store = _state(request)["results"]
    records, total = await asyncio.to_thread(store.list_uploads, min(limit, MAX_LIMIT), offset)
    return UploadPage(uploads=[UploadOut.of(r) for r in records], total=total)


@router.get("/{upload_id}", summary="One uploaded video", responses={404: _ERROR, 422: _ERROR})
async def get_upload(upload_id: str, request: Request) -> UploadOut:
    store = _state(request)["results"]
    return UploadOut.of(await asyncio.to_thread(store.get_upload, validate_id(upload_id)))


@router.delete(
    "/{upload_id}",
    status_code=204,
    summary="Delete an uploaded video with its jobs and their results",
    responses={
        404: _ERROR,
        409: _ERROR | {"description": "a job of it is queued or running; cancel it first"},
    },
)
async def delete_upload(upload_id: str, request: Request) -> Response:
    state = _state(request)
    settings, store = state["settings"], state["results"]
    validate_id(upload_id)
    jobs = await asyncio.to_thread(store.list_jobs_of, upload_id)
    await asyncio.to_thread(store.delete_upload, upload_id)
    await asyncio.to_thread(_remove_files, settings.data_dir, upload_id, jobs)
    log.info("deleted upload %s and %d jobs", upload_id, len(jobs))
    return Response(status_code=204)


def _unlink(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _remove_files(data_dir: Path, upload_id: str, jobs: list[str]) -> None:
    try:
        _unlink(upload_path(data_dir, upload_id))
        for job in jobs:
            shutil.rmtree(jobs_dir(data_dir, job), ignore_errors=True)
    except OSError as exc:  # the record is gone; a file left behind is only space
        log.warning("upload %s forgotten, its files not all removed: %s", upload_id, exc)
