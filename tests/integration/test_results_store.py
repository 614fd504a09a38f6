"""The results store on a real SQLite file and a real PostgreSQL server, the same tests on both:
migrations, idempotent frame writes, the ordered streaming read, predictions' history."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from pitchside.errors import JobNotFoundError, PredictionNotFoundError, ResultsStoreError
from pitchside.results import FrameRecord, NewPrediction, NewUpload, ResultsStore
from pitchside.results import frames as frames_module
from pitchside.results.db import create_db_engine
from pitchside.results.migrate import current, head, upgrade
from pitchside.results.tables import Base
from tests.integration.postgres import (  # noqa: F401
    postgres_server_fixture,
    postgres_url_fixture,
)

TABLES = {"predictions", "uploads", "jobs", "frame_results"}


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file, or a database of its own on the private server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'results.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[ResultsStore]:
    with ResultsStore.open(store_url) as opened:
        yield opened


def _job(store: ResultsStore, job_id: str = "job1") -> str:
    store.add_upload(NewUpload(id=f"up-{job_id}", name="match.mp4", size=1234, fps=25.0))
    store.add_job(job_id, f"up-{job_id}", frames_total=100)
    return job_id


def _frame(seq: int, tag: str = "first") -> FrameRecord:
    box = [float(seq), 2.0, float(seq) + 30.5, 80.0]
    return FrameRecord(
        seq=seq, pts_ns=seq * 40_000_000,
        detections=[{"box": box, "score": 0.9, "cls": 0, "label": tag}],
    )  # fmt: skip


def _prediction(n: int) -> NewPrediction:
    return NewPrediction(
        model_name="yolov8n_int8.onnx", model_version=None, width=1920, height=1080,
        detections=[{"box": [1.0, 2.0, 3.0, 4.0], "score": 0.5, "cls": 0, "label": "person"}],
        timings={"decode_ms": 1.5, "inference_ms": 20.0, "total_ms": 22.0},
        filename=f"frame_{n}.jpg",
    )  # fmt: skip


# -------------------------------------------------------------------- migrations


def test_migrations_bring_an_empty_database_to_head(store_url: str) -> None:
    # given an empty database
    engine = create_db_engine(store_url)
    try:
        assert current(engine) is None
        # when it is migrated
        revision = upgrade(engine)
        # then it is at head with every table
        assert revision == head() == current(engine)
        assert TABLES <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migrations_applied_twice_in_a_row_change_nothing(store_url: str) -> None:
    engine = create_db_engine(store_url)
    try:
        # given a migrated database holding a prediction
        upgrade(engine)
        ResultsStore(engine).add_prediction(_prediction(1))
        # when it is migrated again
        assert upgrade(engine) == head()
        # then one version row, and the data is still there
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        assert versions == [(head(),)]
        assert ResultsStore(engine).list_predictions(10)[1] == 1
    finally:
        engine.dispose()


def test_predictions_recorded_before_0003_are_kept_as_detections(store_url: str) -> None:
    from alembic import command

    from pitchside.results.migrate import alembic_config

    engine = create_db_engine(store_url)
    try:
        # given a database at 0002 (before predictions had a task) holding a prediction
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0002")
            connection.execute(text(
                "INSERT INTO predictions (created, model_name, width, height, detections, "
                "timings) VALUES (CURRENT_TIMESTAMP, 'old.onnx', 640, 480, '[]', '{}')"
            ))  # fmt: skip
        assert current(engine) == "0002"
        # when it is migrated to head
        assert upgrade(engine) == head()
        # then the old row is a detection with no labels, and the filter counts it
        store = ResultsStore(engine)
        (old,), total = store.list_predictions(10, task="detect")
        assert (old.model_name, old.task, old.labels, total) == ("old.onnx", "detect", [], 1)
        store.add_prediction(replace(_prediction(2), task="classify", detections=[], labels=[
            {"cls": 6, "label": "football", "score": 0.9}]))  # fmt: skip
        assert store.list_predictions(10, task="classify")[1] == 1
        assert store.list_predictions(10)[1] == 2
    finally:
        engine.dispose()


def test_migrated_schema_is_exactly_the_tables_module(store: ResultsStore) -> None:
    # the migration scripts and the declarative classes must not drift apart
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == [], f"migrations and pitchside/results/tables.py differ: {diff}"


def test_migrations_started_by_many_processes_at_once_all_succeed(store_url: str) -> None:
    # given four processes' engines (each its own connections) starting at the same moment
    engines = [create_db_engine(store_url) for _ in range(4)]
    barrier = threading.Barrier(len(engines), timeout=30)

    def start(engine_index: int) -> str:
        barrier.wait()
        return upgrade(engines[engine_index])

    try:
        # when each migrates the empty database
        with ThreadPoolExecutor(len(engines)) as pool:
            revisions = list(pool.map(start, range(len(engines)), timeout=120))
        # then all succeed, at head, with one version row
        assert revisions == [head()] * len(engines)
        with engines[0].connect() as connection:
            count = connection.execute(text("SELECT count(*) FROM alembic_version")).scalar()
        assert count == 1
    finally:
        for engine in engines:
            engine.dispose()


# -------------------------------------------------------------------- frame results


def test_write_frames_twice_keeps_one_row_per_frame_and_the_first_write(
    store: ResultsStore,
) -> None:
    # given a job with frames 0-9 stored
    job_id = _job(store)
    store.write_frames(job_id, [_frame(seq) for seq in range(10)])
    # when frames 5-14 are written (5-9 again, as a redelivery would)
    store.write_frames(job_id, [_frame(seq, "again") for seq in range(5, 15)])
    # then each frame is stored once, and the repeated ones kept their first write
    stored = list(store.iter_frames(job_id))
    assert [f.seq for f in stored] == list(range(15))
    assert {f.detections[0]["label"] for f in stored[:10]} == {"first"}
    assert store.count_frames(job_id) == 15


def test_write_frames_with_a_frame_twice_in_one_call_stores_it_once(store: ResultsStore) -> None:
    job_id = _job(store)
    store.write_frames(job_id, [_frame(1), _frame(2), _frame(1, "dup"), _frame(3)])
    assert [f.seq for f in store.iter_frames(job_id)] == [1, 2, 3]
    assert store.count_frames(job_id) == 3


def test_iter_frames_streams_in_seq_order_whatever_the_write_order(store: ResultsStore) -> None:
    # given 2,500 frames written in shuffled calls, and another job's frames between them
    job_id, other = _job(store, "job1"), _job(store, "job2")
    seqs = list(range(2500))
    random.Random(7).shuffle(seqs)
    for start in range(0, len(seqs), 300):
        store.write_frames(job_id, [_frame(seq) for seq in seqs[start : start + 300]])
        store.write_frames(other, [_frame(start)])
    # when they are read back 100 rows at a time
    stream = frames_module.iter_frames(store.engine, job_id, batch=100)
    got = [(f.seq, f.pts_ns) for f in stream]
    # then every frame of that job comes once, in seq order, with its pts
    assert got == [(seq, seq * 40_000_000) for seq in range(2500)]
    # and a read can start part-way (a resumed download)
    assert [f.seq for f in store.iter_frames(job_id, from_seq=2497)] == [2497, 2498, 2499]


def test_write_frames_of_an_unknown_job_raises_and_stores_nothing(store: ResultsStore) -> None:
    with pytest.raises(JobNotFoundError, match="nojob"):
        store.write_frames("nojob", [_frame(0), _frame(1)])
    assert store.count_frames("nojob") == 0


def test_a_recorded_job_reads_back_queued_with_its_upload(store: ResultsStore) -> None:
    job_id = _job(store)
    job = store.get_job(job_id)
    assert (job.upload_id, job.state.value, job.frames_done, job.frames_total) == (
        "up-job1", "queued", 0, 100,
    )  # fmt: skip
    assert job.created.tzinfo is not None
    with pytest.raises(JobNotFoundError):
        store.get_job("unknown")


# -------------------------------------------------------------------- predictions


def test_predictions_are_listed_newest_first_with_the_total(store: ResultsStore) -> None:
    # given five recorded predictions
    ids = [store.add_prediction(_prediction(n)).id for n in range(5)]
    # when a page of two is asked for after skipping one
    page, total = store.list_predictions(limit=2, offset=1)
    # then it holds the second and third newest, and the total counts all five
    assert [p.id for p in page] == [ids[3], ids[2]]
    assert total == 5
    assert store.list_predictions(limit=10, offset=5) == ([], 5)


def test_a_prediction_reads_back_as_recorded_with_a_utc_time(store: ResultsStore) -> None:
    recorded = store.add_prediction(_prediction(1))
    read = store.get_prediction(recorded.id)
    assert read == recorded
    assert read.created.tzinfo is not None and read.created.utcoffset() == UTC.utcoffset(None)
    assert read.detections[0]["label"] == "person" and read.timings["total_ms"] == 22.0


def test_an_unknown_prediction_raises_not_found(store: ResultsStore) -> None:
    with pytest.raises(PredictionNotFoundError):
        store.get_prediction(987654)


# -------------------------------------------------------------------- set-up and failures


def test_the_sqlite_store_is_created_in_wal_mode_with_its_folder(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'folder' / 'results.db'}"
    with ResultsStore.open(url) as store, store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    assert (tmp_path / "new" / "folder" / "results.db").is_file()


def test_an_unreachable_database_fails_without_its_password_in_message_or_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # given a PostgreSQL URL with a password, whose server is not there
    password = "s3cret-Pa55"
    url = f"postgresql+psycopg://pitch:{password}@/results?host={tmp_path}&connect_timeout=2"
    caplog.set_level(logging.DEBUG)
    # when the store is opened
    with pytest.raises(ResultsStoreError) as caught:
        ResultsStore.open(url)
    # then it fails as unavailable, and the password is nowhere
    assert caught.value.status == 503
    assert password not in str(caught.value)
    assert password not in caplog.text
    assert "results store" in caplog.text
