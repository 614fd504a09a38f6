"""The results store's tables, as SQLAlchemy 2 typed declarative classes.

The migrations in :mod:`pitchside.results.migrations` create exactly these (a test compares
them); change both together. JSON columns hold what the WebSocket protocol sends: a
detection is ``{"box": [x1, y1, x2, y2], "score", "cls", "label"}`` in source pixels.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Constraint names the same on every database, so that a migration can name one.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: An auto-incremented 64-bit id; SQLite only auto-increments ``INTEGER PRIMARY KEY``.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite keeps none)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"timestamps must be timezone-aware, got {value!r}")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Prediction(Base):
    """One image sent to ``POST /api/predict`` and what the detector found in it, or to
    ``POST /api/classify`` and the classes the classifier gave it (``task``)."""

    __tablename__ = "predictions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    created: Mapped[datetime] = mapped_column(default=utcnow)
    model_name: Mapped[str] = mapped_column(String(255))
    model_version: Mapped[str | None] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    detections: Mapped[list[Any]]
    timings: Mapped[dict[str, Any]]
    filename: Mapped[str | None] = mapped_column(String(255))
    task: Mapped[str] = mapped_column(String(16), default="detect", server_default="detect")
    labels: Mapped[list[Any] | None]


class Upload(Base):
    """A video a user uploaded for analysis (its file lives in the data folder)."""

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)  # bytes
    duration_s: Mapped[float | None] = mapped_column(Float)
    fps: Mapped[float | None] = mapped_column(Float)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    frames: Mapped[int | None] = mapped_column(Integer)
    created: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    """One analysis of an upload: every frame through the detector, results stored."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    upload_id: Mapped[str] = mapped_column(ForeignKey("uploads.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(16))  # a JobState value
    frames_done: Mapped[int] = mapped_column(Integer, default=0)
    frames_total: Mapped[int | None] = mapped_column(Integer)
    created: Mapped[datetime] = mapped_column(default=utcnow)
    updated: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    error: Mapped[str | None] = mapped_column(Text)
    started: Mapped[datetime | None]  # its first frame result: frames per second from here
    finished: Mapped[datetime | None]


class FrameResult(Base):
    """The detections of one frame of a job. ``(job_id, seq)`` is the key, so writing a
    frame twice (a redelivered message) leaves one row: writers insert-or-ignore."""

    __tablename__ = "frame_results"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    pts: Mapped[int] = mapped_column(BigInteger)  # ns of media time, as FrameMsg.pts_ns
    detections: Mapped[list[Any]]
    error: Mapped[str | None] = mapped_column(Text)  # why the frame could not be analysed
