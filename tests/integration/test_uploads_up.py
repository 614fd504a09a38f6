"""Uploaded matches through the real stack (`pitchside up`, SQLite in its data folder): uploads
streamed, probed and refused when bad; played live; analysed by a job whose results download
line by line and as an annotated MP4; the `pitchside analyse` command; cancel and delete."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import CLIP, require_asset
from tests.integration.conftest import Stack, run_stack
from tests.integration.scrape import value
from tests.integration.test_pipeline_e2e import collect

pytestmark = pytest.mark.slow

UPLOAD_MAX_MB = 4  # the stack's limit: the clip (about 1 MiB) fits, 5 MiB does not
JOB_S = 120.0  # bound on one job of the clip on 2 busy cores


@pytest.fixture(scope="module")
def uploads_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with run_stack(
        tmp_path_factory.mktemp("uploads"), PITCHSIDE_UPLOAD_MAX_MB=str(UPLOAD_MAX_MB)
    ) as running:
        yield running


@pytest.fixture(scope="module")
def client(uploads_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=uploads_stack.base_url, timeout=60) as http:
        yield http


def decoded_frames(path: Path) -> int:
    """Frames PyAV decodes from ``path``: the count every check compares with."""
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def stored_files(stack: Stack) -> set[str]:
    folder = stack.log.parent / "data" / "uploads"
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def upload(client: httpx.Client, path: Path, name: str | None = None) -> httpx.Response:
    with path.open("rb") as file:
        return client.post("/api/uploads", files={"file": (name or path.name, file)})


def wait_job(client: httpx.Client, job_id: str, timeout_s: float = JOB_S) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] not in ("queued", "running"):
            return job
        if time.monotonic() > deadline:
            pytest.fail(f"job {job_id} still {job['state']} after {timeout_s} s: {job}")
        time.sleep(0.1)


def wait_for_job_of(client: httpx.Client, upload_id: str, timeout_s: float = 30.0) -> str:
    """The id of the job of ``upload_id``, once the API lists one."""
    deadline = time.monotonic() + timeout_s
    while True:
        jobs = [j for j in client.get("/api/jobs").json()["jobs"] if j["upload"] == upload_id]
        if jobs:
            return str(jobs[0]["id"])
        if time.monotonic() > deadline:
            pytest.fail(f"no job of upload {upload_id} after {timeout_s} s")
        time.sleep(0.05)


def gateway_metric(client: httpx.Client, name: str, **labels: str) -> float | None:
    """One sample of the gateway's /metrics, as Prometheus would scrape it; None if absent."""
    resp = client.get("/metrics")
    assert resp.status_code == 200, resp.text
    samples = [s for f in text_string_to_metric_families(resp.text) for s in f.samples]
    return value(samples, name, **labels)


def test_bad_uploads_are_refused_clearly_and_leave_nothing_on_disk(
    uploads_stack: Stack, client: httpx.Client, tmp_path: Path
) -> None:
    # given a text file named .mp4, the clip cut in half, and a file over the limit
    text = tmp_path / "match.mp4"
    text.write_text("this is not a video\n" * 100)
    clip = require_asset(CLIP).read_bytes()
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(clip[: len(clip) // 2])
    big = tmp_path / "big.mp4"
    big.write_bytes(clip * (UPLOAD_MAX_MB + 1))
    before = client.get("/api/uploads").json()["total"]
    files_before = stored_files(uploads_stack)
    bad_before = gateway_metric(client, "pitchside_uploads_total", result="bad_video") or 0
    # when each is uploaded, then each gets its own 4xx and a message naming the problem
    resp = upload(client, text)
    assert resp.status_code == 422 and resp.json()["error"] == "bad_video", resp.text
    assert "match.mp4" in resp.json()["detail"]
    resp = upload(client, truncated)
    assert resp.status_code == 422 and resp.json()["error"] == "bad_video", resp.text
    resp = upload(client, big)  # its Content-Length says so: refused before it is read
    assert resp.status_code == 413, resp.text
    assert "PITCHSIDE_UPLOAD_MAX_MB" in resp.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: cut off while it streams
        boundary = b"--b0undary"
        disposition = b'Content-Disposition: form-data; name="file"; filename="x.mp4"'
        yield boundary + b"\r\n" + disposition + b"\r\n\r\n"
        for _ in range((UPLOAD_MAX_MB + 1) * 4):
            yield b"\0" * 2**18
        yield b"\r\n" + boundary + b"--\r\n"

    resp = client.post(
        "/api/uploads", content=chunks(),
        headers={"Content-Type": "multipart/form-data; boundary=b0undary"},
    )  # fmt: skip
    assert resp.status_code == 413, resp.text
    resp = client.post("/api/uploads", content=b"x", headers={"Content-Type": "video/mp4"})
    assert resp.status_code == 415, resp.text
    resp = client.post("/api/uploads", files={"other": ("x.mp4", b"123")})
    assert resp.status_code == 422 and "'file'" in resp.json()["detail"], resp.text
    resp = client.post("/api/uploads", files={"file": ("empty.mp4", b"")})
    assert resp.status_code == 422 and "empty" in resp.json()["detail"], resp.text
    # and nothing was kept: no record, no file, no partial file
    assert client.get("/api/uploads").json()["total"] == before
    assert stored_files(uploads_stack) == files_before
    # and the gateway counted the two that were not videos
    bad = gateway_metric(client, "pitchside_uploads_total", result="bad_video")
    assert bad == bad_before + 2
    assert gateway_metric(client, "pitchside_uploads_total", result="content_too_large")


def test_an_upload_is_probed_listed_played_live_and_deleted(
    uploads_stack: Stack, client: httpx.Client
) -> None:
    # given the real clip, uploaded
    clip = require_asset(CLIP)
    resp = upload(client, clip, name="../../etc/final match.mp4")
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert resp.headers["location"] == f"/api/uploads/{body['id']}"
    # then it is described as PyAV sees it, under the client's name without its folders
    assert body["name"] == "final match.mp4" and body["size"] == clip.stat().st_size
    assert (body["width"], body["height"]) == (848, 478)
    assert body["frames"] == decoded_frames(clip)
    assert 24 < body["fps"] < 26 and body["duration_s"] == pytest.approx(body["frames"] / 25, 0.1)
    assert client.get(f"/api/uploads/{body['id']}").json() == body
    assert body in client.get("/api/uploads").json()["uploads"]
    assert f"{body['id']}.video" in stored_files(uploads_stack)
    # when it is played live, then a viewer gets its frames with detections
    resp = client.post("/api/streams", json={"source": body["source"], "id": "replay"})
    assert resp.status_code == 201, resp.text
    assert resp.json()["source"] == f"upload:{body['id']}"
    frames = asyncio.run(collect(f"{uploads_stack.ws_url}/ws/streams/replay", 10))
    assert [meta["w"] for meta, _ in frames] == [848] * 10
    assert client.delete("/api/streams/replay").status_code == 204
    # and an unknown or malformed upload is a clear error
    resp = client.post("/api/streams", json={"source": "upload:0123456789abcdef"})
    assert resp.status_code == 422 and "no upload" in resp.json()["detail"], resp.text
    assert client.get("/api/uploads/0123456789abcdef").status_code == 404
    assert client.get("/api/uploads/nope").status_code == 422
    # when it is deleted, then its record and its file are gone
    assert client.delete(f"/api/uploads/{body['id']}").status_code == 204
    assert client.get(f"/api/uploads/{body['id']}").status_code == 404
    assert f"{body['id']}.video" not in stored_files(uploads_stack)
    assert client.delete(f"/api/uploads/{body['id']}").status_code == 404


def test_a_job_analyses_every_frame_once_and_its_results_download(
    uploads_stack: Stack, client: httpx.Client, tmp_path: Path
) -> None:
    # given the clip uploaded, and the frames PyAV decodes from it
    clip = require_asset(CLIP)
    frames = decoded_frames(clip)
    upload_id = upload(client, clip).json()["id"]
    # when a job analyses it
    resp = client.post("/api/jobs", json={"upload": upload_id})
    assert resp.status_code == 201, resp.text
    job = resp.json()
    assert job["state"] in ("queued", "running") and job["frames_total"] == frames
    ended_before = gateway_metric(client, "pitchside_jobs_ended_total", state="done") or 0
    # then while it runs the gateway shows its progress under its stream's name
    stream = f"job-{job['id']}"
    deadline = time.monotonic() + JOB_S
    while gateway_metric(client, "pitchside_job_frames_expected", stream=stream) != frames:
        assert time.monotonic() < deadline, "no progress series for the running job"
        time.sleep(0.1)
    assert gateway_metric(client, "pitchside_job_progress_timestamp_seconds", stream=stream)
    # and it ends done, every frame with its result
    done = wait_job(client, job["id"])
    assert done["state"] == "done", done
    assert done["frames_done"] == done["frames_total"] == frames and done["progress"] == 1.0
    assert done["fps"] > 0 and done["eta_s"] is None and done["error"] is None
    assert done in client.get("/api/jobs").json()["jobs"]
    assert gateway_metric(client, "pitchside_jobs_ended_total", state="done") == ended_before + 1
    assert (gateway_metric(client, "pitchside_jobs", state="done") or 0) >= 1
    deadline = time.monotonic() + JOB_S  # its progress series go at the keeper's next tick
    while gateway_metric(client, "pitchside_job_frames_done", stream=stream) is not None:
        assert time.monotonic() < deadline, "the ended job's progress series stayed"
        time.sleep(0.1)
    # and results.jsonl holds one line per frame, in frame order, with people found
    resp = client.get(done["links"]["results_jsonl"])
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in resp.text.splitlines()]
    assert [line["seq"] for line in lines] == list(range(frames))
    times = [line["time_s"] for line in lines]
    assert times == sorted(times) and times[1] == pytest.approx(0.04, abs=0.002)
    people = sorted(sum(d["label"] == "person" for d in line["detections"]) for line in lines)
    assert people[len(people) // 2] >= 5, people
    for line in lines:
        for det in line["detections"]:
            x1, y1, x2, y2 = det["box"]
            assert 0 <= x1 < x2 <= 848 and 0 <= y1 < y2 <= 478 and 0.25 <= det["score"] <= 1
    # and results.csv has the same frames, row for row
    resp = client.get(done["links"]["results_csv"])
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert [int(r["seq"]) for r in rows] == list(range(frames))
    assert [json.loads(r["detections"]) for r in rows] == [line["detections"] for line in lines]
    # and the annotated video is an H.264 MP4 of every frame, at the clip's size
    resp = client.get(done["links"]["video"])
    assert resp.status_code == 200 and resp.headers["content-type"] == "video/mp4"
    video = tmp_path / "annotated.mp4"
    video.write_bytes(resp.content)
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.codec_context.width, stream.codec_context.height) == (848, 478)
    assert decoded_frames(video) == frames
    # and an ended job cannot be cancelled; an unknown one is 404
    assert client.delete(f"/api/jobs/{job['id']}").status_code == 409
    assert client.get("/api/jobs/0123456789abcdef").status_code == 404
    assert client.post("/api/jobs", json={"upload": "0123456789abcdef"}).status_code == 404


def test_a_running_job_holds_its_upload_and_cancels(client: httpx.Client) -> None:
    # given a job of the clip, running
    upload_id = upload(client, require_asset(CLIP)).json()["id"]
    job = client.post("/api/jobs", json={"upload": upload_id}).json()
    # when its upload is deleted while it runs, then that is refused
    resp = client.delete(f"/api/uploads/{upload_id}")
    assert resp.status_code == 409 and resp.json()["error"] == "upload_in_use", resp.text
    # when it is cancelled, then it ends cancelled and stays so
    resp = client.delete(f"/api/jobs/{job['id']}")
    assert resp.status_code == 200 and resp.json()["state"] == "cancelled", resp.text
    assert wait_job(client, job["id"])["state"] == "cancelled"
    assert client.get(f"/api/jobs/{job['id']}/video.mp4").status_code == 409
    # and then the upload and its jobs can go
    assert client.delete(f"/api/uploads/{upload_id}").status_code == 204
    assert client.get(f"/api/jobs/{job['id']}").status_code == 404


def test_pitchside_analyse_uploads_waits_and_downloads(
    uploads_stack: Stack, tmp_path: Path
) -> None:
    # given the clip, when `pitchside analyse` runs against the stack
    clip = require_asset(CLIP)
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "pitchside", "analyse", str(clip), "--out", str(out),
         "--url", uploads_stack.base_url],
        capture_output=True, text=True, timeout=JOB_S + 60,
        env={k: v for k, v in os.environ.items() if not k.startswith("PITCHSIDE_")},
    )  # fmt: skip
    # then it succeeds, having shown its progress, and the results are in the folder
    assert done.returncode == 0, done.stderr
    assert "upload 08fd33_4.mp4 [" in done.stderr and "100%" in done.stderr, done.stderr
    frames = decoded_frames(clip)
    lines = (out / "results.jsonl").read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == list(range(frames))
    assert len((out / "results.csv").read_text().splitlines()) == frames + 1
    assert decoded_frames(out / "video.mp4") == frames
    assert f"{frames} frames analysed" in done.stdout
    # and a file that is no video fails with the gateway's reason and status 1
    bad = tmp_path / "notes.mp4"
    bad.write_text("no video here")
    failed = subprocess.run(
        [sys.executable, "-m", "pitchside", "analyse", str(bad), "--url", uploads_stack.base_url],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert failed.returncode == 1 and "bad_video" in failed.stderr, failed.stderr


def test_the_viewer_uploads_with_a_progress_bar_analyses_and_offers_the_downloads(
    uploads_stack: Stack, client: httpx.Client, artifacts_dir: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.integration.test_browser import FLAGS, require_chromium

    chromium = require_chromium()
    clip = require_asset(CLIP)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(uploads_stack.base_url + "/")
            # when a user picks the clip and uploads it
            page.set_input_files("#upload-file", str(clip))
            page.click("#upload-button")
            # then the progress bar fills and the upload is listed with its facts
            page.wait_for_function(
                "(() => { const bar = document.querySelector('#upload-progress');"
                " return bar.max > 1000000 && bar.value === bar.max; })()",
                timeout=30_000,
            )
            item = page.locator("#uploads-list li", has_text=clip.name).first
            expect(item).to_be_visible(timeout=30_000)
            upload_id = item.get_attribute("data-id")
            assert client.get(f"/api/uploads/{upload_id}").json()["name"] == clip.name
            # when it is analysed, then the job runs to done and offers its three downloads
            item.locator("button.analyse").click()
            job_id = wait_for_job_of(client, str(upload_id))
            job = page.locator(f'#jobs-list li[data-id="{job_id}"]')
            expect(job).to_have_attribute("data-state", "done", timeout=JOB_S * 1000)
            expect(job.locator("a[data-link]")).to_have_count(3)
            href = job.locator('a[data-link="results_jsonl"]').get_attribute("href")
            lines = client.get(str(href)).text.splitlines()
            assert len(lines) == decoded_frames(clip)
            page.screenshot(path=str(artifacts_dir / "viewer-uploads.png"))
            assert errors == []
        finally:
            browser.close()
