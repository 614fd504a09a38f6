"""The results store: what a user keeps, in SQL (SQLite by default, PostgreSQL by URL).

DESIGN.md section 7: the Redis streams are a bus, never storage. Image predictions and their
history, uploads' metadata, analysis jobs and the per-frame detections of a job live here,
through SQLAlchemy 2 with Alembic migrations shipped in this package and applied at start-up.

    store = ResultsStore.open(settings.results_url)      # connects and migrates to head
    record = store.add_prediction(NewPrediction(...))
    store.write_frames(job_id, [FrameRecord(seq, pts_ns, detections), ...])  # idempotent
    for frame in store.iter_frames(job_id): ...          # seq order, streamed

Modules: :mod:`~pitchside.results.tables` (the schema), :mod:`~pitchside.results.records`
(the values in and out), :mod:`~pitchside.results.db` (engines, errors without passwords),
:mod:`~pitchside.results.migrate` (Alembic in code), :mod:`~pitchside.results.frames` (bulk
frame results) and :mod:`~pitchside.results.store` (the facade services use).
"""

from pitchside.results.records import (
    FrameRecord,
    JobRecord,
    JobState,
    NewPrediction,
    NewUpload,
    PredictionRecord,
    UploadRecord,
)
from pitchside.results.store import ResultsStore

__all__ = [
    "FrameRecord",
    "JobRecord",
    "JobState",
    "NewPrediction",
    "NewUpload",
    "PredictionRecord",
    "ResultsStore",
    "UploadRecord",
]
