"""What the results store takes and gives: plain frozen values, never ORM objects, so that a
caller holds no session and a value can cross threads and processes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


@dataclass(frozen=True, slots=True)
class NewPrediction:
    """A prediction to record: the detections of one image, or its classes."""

    model_name: str  # the model file's name, or the registry model's name
    model_version: str | None  # the registry version; None for a file
    width: int  # image pixels
    height: int
    detections: list[dict[str, Any]]  # Detection.to_dict() each; [] for a classification
    timings: dict[str, float]  # stage -> milliseconds
    filename: str | None = None  # as the client named the file
    task: str = "detect"  # "detect" (POST /api/predict) or "classify" (POST /api/classify)
    labels: list[dict[str, Any]] | None = None  # classify: Label.to_dict() each, best first


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """A recorded prediction."""

    id: int
    created: datetime  # UTC
    model_name: str
    model_version: str | None
    width: int
    height: int
    detections: list[dict[str, Any]]
    timings: dict[str, float]
    filename: str | None
    task: str
    labels: list[dict[str, Any]]  # [] for a detection


@dataclass(frozen=True, slots=True)
class NewUpload:
    """A video a user uploaded; what is known of it once probed."""

    id: str
    name: str
    size: int  # bytes
    duration_s: float | None = None
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    frames: int | None = None


@dataclass(frozen=True, slots=True)
class UploadRecord:
    id: str
    name: str
    size: int
    duration_s: float | None
    fps: float | None
    width: int | None
    height: int | None
    frames: int | None
    created: datetime


class JobState(StrEnum):
    """Where an analysis job is; only QUEUED and RUNNING can still change."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: str
    upload_id: str
    state: JobState
    frames_done: int
    frames_total: int | None
    created: datetime
    updated: datetime
    error: str | None
    started: datetime | None = None  # when its first frame result was stored
    finished: datetime | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_JOB_STATES


ACTIVE_JOB_STATES = (JobState.QUEUED, JobState.RUNNING)


@dataclass(frozen=True, slots=True)
class FrameRecord:
    """The detections of frame ``seq`` of a job (``pts_ns``: its media time)."""

    seq: int
    pts_ns: int
    detections: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None  # the frame could not be analysed (it has no detections)
