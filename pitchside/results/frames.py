"""Per-frame results of a job: written in bulk, insert-or-ignore; read back in ``seq`` order.

Writing a frame that is already stored does nothing (``ON CONFLICT DO NOTHING`` on the key
``(job_id, seq)``, on SQLite and PostgreSQL alike): a consumer that stores a frame, crashes
before acknowledging it and gets it again stores it once. A call's rows commit together, so
a consumer acknowledges its batch only after :func:`write_frames` returns.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

from sqlalchemy import Engine, Insert, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from pitchside.errors import JobNotFoundError
from pitchside.results.db import unavailable_as_store_error
from pitchside.results.records import FrameRecord
from pitchside.results.tables import Base

TABLE = Base.metadata.tables["frame_results"]
WRITE_BATCH = 500  # rows per executemany: a few MB of JSON at most
READ_BATCH = 1000  # rows fetched at a time (a server-side cursor on PostgreSQL)


def insert_or_ignore(dialect: str) -> Insert:
    """``INSERT ... ON CONFLICT (job_id, seq) DO NOTHING`` in ``dialect``'s own syntax."""
    match dialect:
        case "sqlite":
            return sqlite.insert(TABLE).on_conflict_do_nothing(index_elements=["job_id", "seq"])
        case "postgresql":
            return postgresql.insert(TABLE).on_conflict_do_nothing(index_elements=["job_id", "seq"])
    raise ValueError(f"the results store runs on sqlite or postgresql, not {dialect!r}")


def write_frames(
    engine: Engine, job_id: str, frames: Sequence[FrameRecord], batch: int = WRITE_BATCH
) -> None:
    """Store ``frames`` of job ``job_id`` in one transaction; frames already stored stay.

    Raises:
        JobNotFoundError: there is no job ``job_id``.
        ResultsStoreError: the database cannot be reached (nothing of the call is stored).
    """
    if not frames:
        return
    statement = insert_or_ignore(engine.dialect.name)
    rows: list[dict[str, Any]] = [
        {
            "job_id": job_id,
            "seq": f.seq,
            "pts": f.pts_ns,
            "detections": f.detections,
            "error": f.error,
        }
        for f in frames
    ]
    with unavailable_as_store_error("storing frame results", engine.url):
        try:
            with engine.begin() as connection:
                for start in range(0, len(rows), batch):
                    connection.execute(statement, rows[start : start + batch])  # executemany
        except IntegrityError:  # the only reference is the job's: it does not exist
            raise JobNotFoundError(f"no job {job_id!r} to store frame results of") from None


def iter_frames(
    engine: Engine, job_id: str, from_seq: int = 0, batch: int = READ_BATCH
) -> Generator[FrameRecord]:
    """Every stored frame of ``job_id`` with ``seq >= from_seq``, in ``seq`` order, fetched
    ``batch`` rows at a time: memory stays flat however long the job.

    The generator holds a connection until it is exhausted or closed (``with
    contextlib.closing(...)`` when a caller may stop early).
    """
    query = (
        select(TABLE.c.seq, TABLE.c.pts, TABLE.c.detections, TABLE.c.error)
        .where(TABLE.c.job_id == job_id, TABLE.c.seq >= from_seq)
        .order_by(TABLE.c.seq)
    )
    with unavailable_as_store_error("reading frame results", engine.url):
        with engine.connect() as connection:
            result = connection.execution_options(yield_per=batch).execute(query)
            for seq, pts, detections, error in result:
                yield FrameRecord(seq=seq, pts_ns=pts, detections=detections, error=error)


def count_frames(engine: Engine, job_id: str, errors_only: bool = False) -> int:
    """How many frames of ``job_id`` are stored (only those with an error: ``errors_only``)."""
    with unavailable_as_store_error("counting frame results", engine.url):
        with engine.connect() as connection:
            query = select(func.count()).select_from(TABLE).where(TABLE.c.job_id == job_id)
            if errors_only:
                query = query.where(TABLE.c.error.is_not(None))
            return int(connection.execute(query).scalar_one())
