"""The results store: what a user keeps (image predictions, uploads, jobs, per-frame results)
in SQLite under the data folder or in PostgreSQL (``DATABASE_URL``).

Every method is blocking, short and thread-safe (each uses its own pooled connection): call
them from ``asyncio.to_thread`` in async code. Values in and out are the frozen records of
:mod:`pitchside.results.records`.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Self

from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pitchside.errors import (
    JobNotFoundError,
    PredictionNotFoundError,
    ResultsStoreError,
    UploadInUseError,
    UploadNotFoundError,
)
from pitchside.results import frames, migrate
from pitchside.results.db import create_db_engine, describe, unavailable_as_store_error
from pitchside.results.records import (
    ACTIVE_JOB_STATES,
    FrameRecord,
    JobRecord,
    JobState,
    NewPrediction,
    NewUpload,
    PredictionRecord,
    UploadRecord,
)
from pitchside.results.tables import Job, Prediction, Upload, utcnow

log = logging.getLogger(__name__)


class ResultsStore:
    """The results database behind one engine (a pool of connections).

    Args:
        engine: from :func:`~pitchside.results.db.create_db_engine`; migrated already
            (:meth:`open` does both).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str, migrate_schema: bool = True) -> Self:
        """Connect to the store at ``url`` and bring its schema to head (safe when several
        processes open it at once).

        Raises:
            ResultsStoreError: the database cannot be reached or migrated; the message and
                the log name the URL without its password.
        """
        engine = create_db_engine(url)
        try:
            revision = migrate.upgrade(engine) if migrate_schema else None
        except BaseException:
            engine.dispose()
            raise
        log.info("results store %s at revision %s", describe(engine.url), revision)
        return cls(engine)

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def description(self) -> str:
        """Where the store is, for a log line: no user, no password."""
        return describe(self.engine.url)

    # -------------------------------------------------------------------- predictions

    def add_prediction(self, new: NewPrediction) -> PredictionRecord:
        """Record one image's prediction; returns it with its id and creation time."""
        row = Prediction(
            model_name=new.model_name, model_version=new.model_version, width=new.width,
            height=new.height, detections=new.detections, timings=new.timings,
            filename=new.filename, task=new.task, labels=new.labels,
        )  # fmt: skip
        with self._session("recording a prediction") as session, session.begin():
            session.add(row)
        return _prediction(row)

    def get_prediction(self, prediction_id: int) -> PredictionRecord:
        """Raises PredictionNotFoundError for an unknown id."""
        with self._session("reading a prediction") as session:
            row = session.get(Prediction, prediction_id)
            if row is None:
                raise PredictionNotFoundError(f"no prediction with id {prediction_id}")
            return _prediction(row)

    def list_predictions(
        self, limit: int, offset: int = 0, task: str | None = None
    ) -> tuple[list[PredictionRecord], int]:
        """Up to ``limit`` predictions (of ``task`` only, if given) after skipping ``offset``,
        newest first, and how many there are in all."""
        where = [] if task is None else [Prediction.task == task]
        with self._session("listing predictions") as session:
            total = session.scalar(select(func.count()).select_from(Prediction).where(*where))
            rows = session.scalars(
                select(Prediction).where(*where).order_by(Prediction.id.desc())
                .limit(limit).offset(offset)
            )  # fmt: skip
            return [_prediction(row) for row in rows], total or 0

    # -------------------------------------------------------------------- uploads and jobs

    def add_upload(self, new: NewUpload) -> UploadRecord:
        """Record an upload (its id chosen by the caller)."""
        row = Upload(
            id=new.id, name=new.name, size=new.size, duration_s=new.duration_s, fps=new.fps,
            width=new.width, height=new.height, frames=new.frames,
        )  # fmt: skip
        with self._session("recording an upload") as session, session.begin():
            session.add(row)
        return _upload(row)

    def get_upload(self, upload_id: str) -> UploadRecord:
        """Raises UploadNotFoundError for an unknown id."""
        with self._session("reading an upload") as session:
            row = session.get(Upload, upload_id)
            if row is None:
                raise UploadNotFoundError(f"no upload with id {upload_id!r}")
            return _upload(row)

    def list_uploads(self, limit: int, offset: int = 0) -> tuple[list[UploadRecord], int]:
        """Up to ``limit`` uploads after ``offset``, newest first, and how many in all."""
        with self._session("listing uploads") as session:
            total = session.scalar(select(func.count()).select_from(Upload)) or 0
            rows = session.scalars(
                select(Upload)
                .order_by(Upload.created.desc(), Upload.id)
                .limit(limit)
                .offset(offset)
            )
            return [_upload(row) for row in rows], total

    def delete_upload(self, upload_id: str) -> None:
        """Forget an upload with its jobs and their results (the caller removes the file).

        Raises:
            UploadNotFoundError: there is no such upload.
            UploadInUseError: a job of it is queued or running.
        """
        with self._session("deleting an upload") as session, session.begin():
            row = session.get(Upload, upload_id)
            if row is None:
                raise UploadNotFoundError(f"no upload with id {upload_id!r}")
            busy = session.scalar(
                select(Job.id).where(
                    Job.upload_id == upload_id, Job.state.in_([s.value for s in ACTIVE_JOB_STATES])
                )
            )
            if busy is not None:
                raise UploadInUseError(
                    f"upload {upload_id!r} is being analysed by job {busy!r}; cancel the job first"
                )
            session.delete(row)  # its jobs and frame results go with it (ON DELETE CASCADE)

    def add_job(self, job_id: str, upload_id: str, frames_total: int | None = None) -> JobRecord:
        """Record a queued job analysing upload ``upload_id``.

        Raises:
            ResultsStoreError: there is no such upload, or a job ``job_id`` exists.
        """
        now = utcnow()
        row = Job(
            id=job_id, upload_id=upload_id, state=JobState.QUEUED.value, frames_done=0,
            frames_total=frames_total, created=now, updated=now,
        )  # fmt: skip
        try:
            with self._session("recording a job") as session, session.begin():
                session.add(row)
        except IntegrityError:
            raise ResultsStoreError(
                f"cannot record job {job_id!r}: upload {upload_id!r} is unknown or the job exists"
            ) from None
        return _job(row)

    def get_job(self, job_id: str) -> JobRecord:
        """Raises JobNotFoundError for an unknown id."""
        with self._session("reading a job") as session:
            row = session.get(Job, job_id)
            if row is None:
                raise JobNotFoundError(f"no job with id {job_id!r}")
            return _job(row)

    def list_jobs(
        self, limit: int, offset: int = 0, active_only: bool = False
    ) -> tuple[list[JobRecord], int]:
        """Up to ``limit`` jobs after ``offset``, newest first, and how many in all (only
        queued and running ones with ``active_only``)."""
        states = ACTIVE_JOB_STATES if active_only else tuple(JobState)
        where = Job.state.in_([s.value for s in states])
        with self._session("listing jobs") as session:
            total = session.scalar(select(func.count()).select_from(Job).where(where)) or 0
            rows = session.scalars(
                select(Job).where(where).order_by(Job.created.desc(), Job.id)
                .limit(limit).offset(offset)
            )  # fmt: skip
            return [_job(row) for row in rows], total

    def count_jobs(self) -> dict[JobState, int]:
        """How many jobs are in each state (every state, 0 for none)."""
        with self._session("counting jobs") as session:
            rows = session.execute(select(Job.state, func.count()).group_by(Job.state))
            counts = {JobState(state): n for state, n in rows}
        return {state: counts.get(state, 0) for state in JobState}

    def list_jobs_of(self, upload_id: str) -> list[str]:
        """The ids of every job of upload ``upload_id``."""
        with self._session("listing jobs") as session:
            return list(session.scalars(select(Job.id).where(Job.upload_id == upload_id)))

    def update_job(
        self,
        job_id: str,
        *,
        state: JobState | None = None,
        frames_done: int | None = None,
        frames_total: int | None = None,
        error: str | None = None,
        started: datetime | None = None,
        finished: datetime | None = None,
    ) -> JobRecord | None:
        """Change a job that is still queued or running; the job as it is now, or None when
        it had ended already (it stays as it was: an ended job never changes again).

        Raises:
            JobNotFoundError: there is no job ``job_id``.
        """
        changes: dict[str, object] = {"updated": utcnow()}
        for column, value in (
            ("state", state.value if state else None), ("frames_done", frames_done),
            ("frames_total", frames_total), ("error", error), ("started", started),
            ("finished", finished),
        ):  # fmt: skip
            if value is not None:
                changes[column] = value
        active = [s.value for s in ACTIVE_JOB_STATES]
        with self._session("updating a job") as session, session.begin():
            result = session.execute(
                update(Job).where(Job.id == job_id, Job.state.in_(active)).values(changes)
            )
            row = session.get(Job, job_id, populate_existing=True)
            if row is None:
                raise JobNotFoundError(f"no job with id {job_id!r}")
            return _job(row) if getattr(result, "rowcount", 0) else None

    # -------------------------------------------------------------------- frame results

    def write_frames(self, job_id: str, records: Sequence[FrameRecord]) -> None:
        """Store frame results of a job, all or none; a frame stored before stays as it is
        (see :func:`pitchside.results.frames.write_frames`)."""
        frames.write_frames(self.engine, job_id, records)

    def iter_frames(self, job_id: str, from_seq: int = 0) -> Generator[FrameRecord]:
        """A job's stored frames in ``seq`` order, streamed (see
        :func:`pitchside.results.frames.iter_frames`)."""
        return frames.iter_frames(self.engine, job_id, from_seq)

    def count_frames(self, job_id: str) -> int:
        return frames.count_frames(self.engine, job_id)

    def count_frame_errors(self, job_id: str) -> int:
        """Frames of ``job_id`` stored with an error (not analysed)."""
        return frames.count_frames(self.engine, job_id, errors_only=True)

    # -------------------------------------------------------------------- helpers

    @contextmanager
    def _session(self, what: str) -> Iterator[Session]:
        """A session whose "database unavailable" errors become ResultsStoreError."""
        with unavailable_as_store_error(what, self.engine.url), self._sessions() as session:
            yield session


def _prediction(row: Prediction) -> PredictionRecord:
    return PredictionRecord(
        id=row.id, created=row.created, model_name=row.model_name,
        model_version=row.model_version, width=row.width, height=row.height,
        detections=list(row.detections), timings=dict(row.timings), filename=row.filename,
        task=row.task, labels=list(row.labels or []),
    )  # fmt: skip


def _job(row: Job) -> JobRecord:
    return JobRecord(
        id=row.id, upload_id=row.upload_id, state=JobState(row.state),
        frames_done=row.frames_done, frames_total=row.frames_total, created=row.created,
        updated=row.updated, error=row.error, started=row.started, finished=row.finished,
    )  # fmt: skip


def _upload(row: Upload) -> UploadRecord:
    return UploadRecord(
        id=row.id, name=row.name, size=row.size, duration_s=row.duration_s, fps=row.fps,
        width=row.width, height=row.height, frames=row.frames, created=row.created,
    )  # fmt: skip
