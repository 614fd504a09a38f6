"""``POST /api/predict`` and ``GET /api/history`` with the real COCO model on real match frames.

The gateway runs in-process (httpx's ASGI transport, its lifespan entered for real) with a
real redis-server, the results store in a SQLite file of the test's own (one test on the
private PostgreSQL) and the serving engine loaded as a worker loads it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from redis.asyncio import Redis

from gateway import predictor as predictor_module
from gateway.app import create_app
from pitchside.errors import ResultsStoreError
from pitchside.settings import Settings
from tests.conftest import COCO_ONNX, IMAGES_DIR, require_asset
from tests.integration.postgres import (  # noqa: F401
    postgres_server_fixture,
    postgres_url_fixture,
)
from tests.integration.test_gateway_api import serving

W, H = 1920, 1080


def _frames() -> list[Path]:
    frames = sorted(require_asset(IMAGES_DIR).glob("frame_*.jpg"))
    assert len(frames) >= 4, f"expected the four match frames in {IMAGES_DIR}"
    return frames


@pytest.fixture
def frame_jpeg() -> bytes:
    return _frames()[0].read_bytes()


@pytest.fixture
def predict_settings(settings: Settings) -> Settings:
    require_asset(COCO_ONNX)
    return settings.replace(threads=2)


@pytest.fixture
async def client(predict_settings: Settings, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(predict_settings)) as c:
        yield c


async def _predict(
    client: httpx.AsyncClient, data: bytes, name: str = "frame.jpg", kind: str = "image/jpeg"
) -> httpx.Response:
    return await client.post("/api/predict", files={"file": (name, data, kind)}, timeout=60)


def _encoded(jpeg: bytes, ext: str, *params: int) -> bytes:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    ok, buf = cv2.imencode(ext, image, list(params))
    assert ok
    return bytes(buf.tobytes())


def _assert_people_inside(body: dict[str, Any], width: int = W, height: int = H) -> None:
    people = [d for d in body["detections"] if d["label"] == "person"]
    assert len(people) >= 5, f"expected players found in a match frame, got {body['detections']}"
    for det in body["detections"]:
        x1, y1, x2, y2 = det["box"]
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height, f"box outside the image: {det}"
        assert 0.0 < det["score"] <= 1.0 and det["cls"] == (0 if det["label"] == "person" else 32)


# -------------------------------------------------------------------- predictions


async def test_predict_finds_the_players_of_a_match_frame_in_image_pixels(
    client: httpx.AsyncClient, frame_jpeg: bytes
) -> None:
    # given a real 1920x1080 broadcast frame
    # when it is posted
    resp = await _predict(client, frame_jpeg, "frame_40cd38_7_6.jpg")
    # then 200 with the players boxed inside the image, the model and the timings
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["width"], body["height"], body["filename"]) == (W, H, "frame_40cd38_7_6.jpg")
    _assert_people_inside(body)
    assert body["model"] == {
        "id": "yolov8n_int8.onnx",
        "name": "yolov8n_int8.onnx",
        "version": None,
    }
    timings = body["timings"]
    assert set(timings) == {"decode_ms", "wait_ms", "inference_ms", "total_ms"}
    assert timings["decode_ms"] > 0 and timings["inference_ms"] > 0
    assert timings["total_ms"] >= timings["decode_ms"] + timings["inference_ms"]
    assert isinstance(body["id"], int)


@pytest.mark.parametrize(
    ("ext", "params", "kind"),
    [(".png", (), "image/png"), (".webp", (cv2.IMWRITE_WEBP_QUALITY, 90), "image/webp"),
     (".webp", (cv2.IMWRITE_WEBP_QUALITY, 101), "image/webp")],
    ids=["png", "webp-lossy", "webp-lossless"],
)  # fmt: skip
async def test_predict_takes_png_and_webp_as_well(
    client: httpx.AsyncClient, frame_jpeg: bytes, ext: str, params: tuple[int, ...], kind: str
) -> None:
    resp = await _predict(client, _encoded(frame_jpeg, ext, *params), f"frame{ext}", kind)
    assert resp.status_code == 200, resp.text
    _assert_people_inside(resp.json())


async def test_every_prediction_is_recorded_and_listed_newest_first(
    client: httpx.AsyncClient,
) -> None:
    # given the four match frames posted one after the other
    posted = []
    for frame in _frames():
        resp = await _predict(client, frame.read_bytes(), frame.name)
        assert resp.status_code == 200, resp.text
        posted.append(resp.json())
    # when the history is listed
    resp = await client.get("/api/history")
    # then it holds all four, newest first, as predict answered them
    assert resp.status_code == 200
    page = resp.json()
    assert (page["total"], page["limit"], page["offset"]) == (4, 20, 0)
    assert page["items"] == posted[::-1]
    # and a page further on holds the next ones
    resp = await client.get("/api/history", params={"limit": 2, "offset": 1})
    assert [p["id"] for p in resp.json()["items"]] == [posted[2]["id"], posted[1]["id"]]
    assert resp.json()["total"] == 4
    # and each is there by its id
    one = await client.get(f"/api/history/{posted[0]['id']}")
    assert one.status_code == 200 and one.json() == posted[0]


@pytest.mark.parametrize(
    ("sent", "recorded"),
    [("C:\\Users\\coach\\match day\\frame 1.jpg", "frame 1.jpg"),
     ("../../etc/passwd.jpg", "passwd.jpg"), ("x" * 300 + ".jpg", "x" * 255)],
)  # fmt: skip
async def test_predict_records_the_file_name_without_its_folders(
    client: httpx.AsyncClient, frame_jpeg: bytes, sent: str, recorded: str
) -> None:
    resp = await _predict(client, frame_jpeg, sent)
    assert resp.status_code == 200 and resp.json()["filename"] == recorded


async def test_predict_never_blocks_the_event_loop(
    client: httpx.AsyncClient, frame_jpeg: bytes
) -> None:
    # given a ticker on the event loop, every 5 ms
    ticks: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        loop = asyncio.get_running_loop()
        while not done.is_set():
            ticks.append(loop.time())
            await asyncio.sleep(0.005)

    ticker = asyncio.create_task(tick())
    # when a large PNG is predicted (decode, the model's first load, inference)
    started = asyncio.get_running_loop().time()
    resp = await _predict(client, _encoded(frame_jpeg, ".png"), "frame.png", "image/png")
    elapsed = asyncio.get_running_loop().time() - started
    done.set()
    await asyncio.wait_for(ticker, 5)
    assert resp.status_code == 200
    # then the loop kept ticking: stalls of 50 ms or more add up to under a quarter of it
    gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    stalled = sum(g for g in gaps if g >= 0.05)
    assert stalled < elapsed / 4, f"the loop stalled {stalled:.3f} s of {elapsed:.3f} s"


async def test_predictions_sent_at_once_are_all_answered_and_recorded(
    client: httpx.AsyncClient,
) -> None:
    frames = _frames()
    answers = await asyncio.wait_for(
        asyncio.gather(*(_predict(client, f.read_bytes(), f.name) for f in frames)), 120
    )
    assert [a.status_code for a in answers] == [200] * len(frames)
    assert len({a.json()["id"] for a in answers}) == len(frames)
    assert (await client.get("/api/history")).json()["total"] == len(frames)


async def test_predict_refuses_more_images_than_it_holds_with_503(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a gateway that holds one image at a time
    monkeypatch.setattr(predictor_module, "MAX_IN_FLIGHT", 1)
    frames = _frames()[:3]
    # when three come at once
    answers = await asyncio.wait_for(
        asyncio.gather(*(_predict(client, f.read_bytes(), f.name) for f in frames)), 120
    )
    # then one is predicted and the others are told to come back, nothing recorded for them
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 503, 503]
    assert {a.json()["error"] for a in answers if a.status_code == 503} == {"predictor_busy"}
    assert (await client.get("/api/history")).json()["total"] == 1


async def test_predict_records_in_postgresql_when_database_url_says_so(
    predict_settings: Settings, redis: Redis, postgres_url: str, frame_jpeg: bytes
) -> None:
    # given a gateway whose results store is a PostgreSQL database
    settings = predict_settings.replace(database_url=postgres_url)
    async with serving(create_app(settings)) as client:
        # when an image is predicted
        resp = await _predict(client, frame_jpeg)
        assert resp.status_code == 200, resp.text
        # then the history, read from PostgreSQL, holds it
        page = (await client.get("/api/history")).json()
    assert page["total"] == 1 and page["items"][0] == resp.json()


# -------------------------------------------------------------------- bad requests


def _png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR claiming ``width`` x ``height``, and no pixels."""
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + (13).to_bytes(4, "big") + b"IHDR" + ihdr + b"\0\0\0\0"


def _multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "b0undary") -> bytes:
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += (
            f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
        )
    return out + f"--{boundary}--\r\n".encode()


MULTIPART = {"content-type": "multipart/form-data; boundary=b0undary"}

BAD_REQUESTS: list[tuple[str, dict[str, str], bytes, int, str]] = [
    # id, headers, body, status, error code
    ("no file field", MULTIPART, _multipart([("image", "a.jpg", b"\xff\xd8\xff")]), 422,
     "invalid_request"),
    ("empty body", MULTIPART, b"", 422, "invalid_request"),
    ("empty file", MULTIPART, _multipart([("file", "a.jpg", b"")]), 422, "invalid_request"),
    ("file as a text field", MULTIPART, _multipart([("file", None, b"hello")]), 422,
     "invalid_request"),
    ("json body", {"content-type": "application/json"}, b'{"file": "x"}', 415,
     "unsupported_media_type"),
    ("no content type", {}, b"\xff\xd8\xff", 415, "unsupported_media_type"),
    ("a text file", MULTIPART, _multipart([("file", "notes.txt", b"not an image at all")]), 415,
     "unsupported_media_type"),
    ("a gif", MULTIPART, _multipart([("file", "a.gif", b"GIF89a\x01\x00\x01\x00")]), 415,
     "unsupported_media_type"),
    ("a png header only", MULTIPART, _multipart([("file", "a.png", _png_header(640, 480))]), 422,
     "bad_image"),
    ("a jpeg cut short", MULTIPART, _multipart([("file", "a.jpg", b"\xff\xd8\xff\xe0\x00\x10JF")]),
     422, "bad_image"),
    ("a png bomb header", MULTIPART, _multipart([("file", "bomb.png", _png_header(60000, 60000))]),
     413, "image_too_large"),
    ("no boundary", {"content-type": "multipart/form-data"}, b"--x\r\n", 400, "malformed_body"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [row[1:] for row in BAD_REQUESTS],
    ids=[row[0] for row in BAD_REQUESTS],
)
async def test_predict_refuses_a_bad_request_with_its_status_and_records_nothing(
    client: httpx.AsyncClient, headers: dict[str, str], body: bytes, status: int, code: str
) -> None:
    # when a request the endpoint cannot use is posted
    resp = await client.post("/api/predict", content=body, headers=headers)
    # then it answers the status and code in the error shape, with a message
    assert resp.status_code == status, resp.text
    assert resp.json()["error"] == code and resp.json()["detail"]
    # and nothing is recorded
    assert (await client.get("/api/history")).json()["total"] == 0


async def test_predict_says_which_field_is_missing(client: httpx.AsyncClient) -> None:
    body = _multipart([("image", "a.jpg", b"\xff\xd8\xff")])
    resp = await client.post("/api/predict", content=body, headers=MULTIPART)
    assert "'file'" in resp.json()["detail"]


async def test_predict_refuses_an_image_over_the_pixel_limit_before_decoding(
    predict_settings: Settings, redis: Redis, frame_jpeg: bytes
) -> None:
    settings = predict_settings.replace(predict_max_pixels=1_000_000)
    async with serving(create_app(settings)) as client:
        resp = await _predict(client, frame_jpeg)
    assert resp.status_code == 413
    assert resp.json()["error"] == "image_too_large"
    assert (
        "1920x1080" in resp.json()["detail"]
        and "PITCHSIDE_PREDICT_MAX_PIXELS" in resp.json()["detail"]
    )


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
async def test_predict_refuses_a_body_over_the_size_limit(
    predict_settings: Settings, redis: Redis, streamed: bool
) -> None:
    # given a gateway taking at most 1 MiB, and a 2 MiB upload, declared or streamed
    settings = predict_settings.replace(predict_max_mb=1)
    body = _multipart([("file", "big.jpg", b"\xff\xd8\xff" + bytes(2 * 2**20))])

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    async with serving(create_app(settings)) as client:
        resp = await client.post(
            "/api/predict", content=chunks() if streamed else body, headers=MULTIPART
        )
        # then 413, naming the limit
        assert resp.status_code == 413, resp.text
        assert resp.json()["error"] == "content_too_large"
        assert "PITCHSIDE_PREDICT_MAX_MB" in resp.json()["detail"]
        assert (await client.get("/api/history")).json()["total"] == 0


async def test_predict_answers_503_when_the_model_cannot_be_loaded(
    predict_settings: Settings, redis: Redis, frame_jpeg: bytes, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    settings = predict_settings.replace(model=str(tmp_path / "missing.onnx"))
    async with serving(create_app(settings)) as client:
        for _ in range(2):  # a failed load is tried again, and fails again
            resp = await _predict(client, frame_jpeg)
            assert resp.status_code == 503
            assert resp.json()["error"] == "model_unavailable"
        assert (await client.get("/api/history")).json()["total"] == 0
    assert "missing.onnx" in caplog.text  # the operator learns why from the log


# -------------------------------------------------------------------- history


@pytest.mark.parametrize(
    "params",
    [{"limit": "0"}, {"limit": "-1"}, {"limit": "many"}, {"offset": "-1"}, {"offset": "x"},
     {"limit": "2.5"}],
    ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()),
)  # fmt: skip
async def test_history_refuses_a_bad_limit_or_offset_with_422(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    resp = await client.get("/api/history", params=params)
    assert resp.status_code == 422
    assert resp.json()["error"] == "invalid_request"
    assert next(iter(params)) in resp.json()["detail"]


async def test_history_serves_at_most_100_a_page(client: httpx.AsyncClient) -> None:
    resp = await client.get("/api/history", params={"limit": 5000})
    assert resp.status_code == 200
    assert resp.json() == {"items": [], "total": 0, "limit": 100, "offset": 0}


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [("/api/history/424242", 404, "prediction_not_found"),
     ("/api/history/0", 422, "invalid_request"), ("/api/history/abc", 422, "invalid_request"),
     (f"/api/history/{2**64}", 422, "invalid_request")],
)  # fmt: skip
async def test_history_of_an_unknown_or_malformed_id_answers_its_status(
    client: httpx.AsyncClient, path: str, status: int, code: str
) -> None:
    resp = await client.get(path)
    assert resp.status_code == status
    assert resp.json()["error"] == code


# -------------------------------------------------------------------- the API's description


async def test_openapi_describes_predict_and_history(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    predict = spec["paths"]["/api/predict"]["post"]
    body = predict["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["required"] == ["file"] and body["properties"]["file"]["format"] == "binary"
    assert {"200", "400", "413", "415", "422", "503"} <= set(predict["responses"])
    ok = predict["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"].endswith("/PredictionOut")
    history = spec["paths"]["/api/history"]["get"]
    assert {p["name"] for p in history["parameters"]} == {"limit", "offset", "task"}
    assert history["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/HistoryPage"
    )
    assert set(spec["paths"]["/api/history/{prediction_id}"]["get"]["responses"]) >= {"200", "404"}
    schemas = spec["components"]["schemas"]
    assert {"DetectionOut", "LabelOut", "ModelOut", "Timings"} <= set(schemas)
    classify = spec["paths"]["/api/classify"]["post"]
    assert {"200", "400", "413", "415", "422", "503"} <= set(classify["responses"])
    assert {p["name"] for p in classify["parameters"]} == {"top"}


# -------------------------------------------------------------------- start-up


async def test_a_gateway_whose_database_is_down_fails_to_start_without_the_password(
    predict_settings: Settings, redis: Redis, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    password = "Pa55-w0rd-xyz"
    url = f"postgresql+psycopg://pitch:{password}@/results?host={tmp_path}&connect_timeout=2"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ResultsStoreError) as caught:
        async with serving(create_app(predict_settings.replace(database_url=url))):
            pass
    assert password not in str(caught.value) and password not in caplog.text
