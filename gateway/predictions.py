"""The JSON shapes of image predictions, shared by ``POST /api/predict``, ``POST /api/classify``
and the history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from pitchside.results import PredictionRecord


class DetectionOut(BaseModel):
    """One box, as the WebSocket protocol sends it."""

    box: list[float] = Field(
        min_length=4, max_length=4, description="x1, y1, x2, y2 in image pixels",
        examples=[[812.4, 402.0, 851.9, 519.6]],
    )  # fmt: skip
    score: float = Field(ge=0, le=1, description="the detector's confidence")
    cls: int = Field(ge=0, description="class id of the model")
    label: str = Field(description="class name of the model", examples=["person"])


class LabelOut(BaseModel):
    """One class of an image and the classifier's probability for it."""

    cls: int = Field(ge=0, description="class id of the model")
    label: str = Field(description="class name of the model", examples=["football"])
    score: float = Field(ge=0, le=1, description="the classifier's probability")


class ModelOut(BaseModel):
    """The model that detected, as workers report it (``GET /api/workers``)."""

    id: str = Field(description="file name, or NAME/VERSION for a registry model")
    name: str
    version: str | None = Field(description="registry version; null for a model file")


class Timings(BaseModel):
    """Milliseconds spent on the image after its upload arrived."""

    decode_ms: float = Field(description="reading the header and decoding the pixels")
    wait_ms: float = Field(
        description="waiting for the detector: other images, and loading it the first time"
    )
    inference_ms: float = Field(
        description="detect: letterbox, the model and NMS; classify: the crop and the model"
    )
    total_ms: float = Field(description="from the upload received to the detections ready")


class PredictionOut(BaseModel):
    """One recorded prediction."""

    id: int = Field(description="its id in the history (GET /api/history/{id})")
    created: datetime = Field(description="when it was recorded, UTC")
    task: str = Field(
        pattern="^(detect|classify)$",
        description="detect: POST /api/predict (detections); classify: POST /api/classify (labels)",
    )
    filename: str | None = Field(description="the uploaded file's name, as the client gave it")
    width: int = Field(description="image width in pixels")
    height: int = Field(description="image height in pixels")
    model: ModelOut
    detections: list[DetectionOut] = Field(description="highest score first; [] for classify")
    labels: list[LabelOut] = Field(description="classify: most probable first; [] for detect")
    timings: Timings

    @classmethod
    def of(cls, record: PredictionRecord) -> PredictionOut:
        version = record.model_version
        model_id = record.model_name if version is None else f"{record.model_name}/{version}"
        return cls(
            id=record.id, created=record.created, task=record.task, filename=record.filename,
            width=record.width, height=record.height,
            model=ModelOut(id=model_id, name=record.model_name, version=version),
            detections=[DetectionOut(**d) for d in record.detections],
            labels=[LabelOut(**label) for label in record.labels],
            timings=Timings(**_timings(record.timings)),
        )  # fmt: skip


class HistoryPage(BaseModel):
    """A page of past predictions, newest first."""

    items: list[PredictionOut]
    total: int = Field(description="predictions recorded in all (of the task asked for)")
    limit: int = Field(description="the page size served (the limit asked for, at most 100)")
    offset: int = Field(description="predictions skipped before this page")


def _timings(stored: dict[str, Any]) -> dict[str, float]:
    names = Timings.model_fields
    return {name: float(stored.get(name, 0.0)) for name in names}
