"""Image predictions through the real stack: ``pitchside up`` (uvicorn, its lifespan migrating the
results store in the data folder) answering multipart uploads over loopback HTTP."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import httpx
import pytest

from tests.conftest import IMAGES_DIR, require_asset
from tests.integration.conftest import Stack

pytestmark = pytest.mark.slow


def test_the_running_stack_predicts_an_uploaded_frame_and_keeps_it_in_its_data_folder(
    stack: Stack,
) -> None:
    # given a real match frame, and the stack serving on a loopback port
    frame = sorted(require_asset(IMAGES_DIR).glob("frame_*.jpg"))[0]
    with httpx.Client(base_url=stack.base_url, timeout=60) as client:
        # when it is uploaded as curl -F file=@frame.jpg would
        resp = client.post("/api/predict", files={"file": (frame.name, frame.read_bytes())})
        # then the players are found, and the history lists the prediction
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert sum(d["label"] == "person" for d in body["detections"]) >= 5
        history = client.get("/api/history").json()
        assert history["items"][0] == body and history["total"] >= 1
    # and it is stored in <data dir>/results.db, a SQLite database in WAL mode
    database = stack.log.parent / "data" / "results.db"
    with closing(sqlite3.connect(database)) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        (count,) = connection.execute("SELECT count(*) FROM predictions").fetchone()
    assert count == history["total"]
