"""``POST /api/classify`` with the project's default ball-type classifier on real images, its
record in ``GET /api/history``, and every input a user can get wrong.

The gateway runs in-process (httpx's ASGI transport, its lifespan entered for real) with a
real redis-server and the results store in a SQLite file of the test's own.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from redis.asyncio import Redis

from gateway import predictor as predictor_module
from gateway.app import create_app
from pitchside.settings import Settings, default_classifier_path, default_model_path
from tests.conftest import ASSETS, require_asset
from tests.integration.test_gateway_api import serving

VAL = ASSETS / "datasets" / "sports-balls" / "val"
OPERATOR = "op-token-0123456789abcdef"
VIEWER = "view-token-0123456789abcdef"


def _val_image(cls: str, index: int = 0) -> Path:
    images = sorted(require_asset(VAL / cls).glob("*.jpg"))
    return images[index]


@pytest.fixture
def classify_settings(settings: Settings) -> Settings:
    if not default_classifier_path().is_file():
        pytest.fail(f"{default_classifier_path()} is missing: the default classifier ships")
    return settings.replace(threads=2)


@pytest.fixture
async def client(classify_settings: Settings, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(classify_settings)) as c:
        yield c


async def _classify(
    client: httpx.AsyncClient,
    data: bytes,
    name: str = "ball.jpg",
    kind: str = "image/jpeg",
    query: str = "",
) -> httpx.Response:
    return await client.post(
        f"/api/classify{query}", files={"file": (name, data, kind)}, timeout=60
    )


async def test_classify_answers_the_five_most_probable_labels_and_the_model(
    client: httpx.AsyncClient,
) -> None:
    # given a photograph of a ball from the held-out split
    image = _val_image("tennis_ball")
    # when it is posted
    resp = await _classify(client, image.read_bytes(), image.name)
    # then 200: five distinct labels, most probable first, probabilities summing to at most 1
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["task"] == "classify" and body["detections"] == []
    labels = body["labels"]
    assert len(labels) == 5 and len({label["cls"] for label in labels}) == 5, labels
    scores = [label["score"] for label in labels]
    assert scores == sorted(scores, reverse=True), scores
    assert 0 < sum(scores) <= 1 + 1e-6, scores
    # and the model, the image's size, its name and the timings are those of this upload
    assert body["model"] == {
        "id": "ball-classifier.onnx",
        "name": "ball-classifier.onnx",
        "version": None,
    }
    image_h, image_w = _read(image).shape[:2]
    assert (body["width"], body["height"], body["filename"]) == (image_w, image_h, image.name)
    assert set(body["timings"]) == {"decode_ms", "wait_ms", "inference_ms", "total_ms"}
    assert body["timings"]["inference_ms"] > 0
    assert body["timings"]["total_ms"] >= body["timings"]["inference_ms"]


async def test_default_classifier_knows_a_football(client: httpx.AsyncClient) -> None:
    # given a photograph of a football from the held-out split
    image = _val_image("football")
    # when it is posted to a gateway with the default classifier
    resp = await _classify(client, image.read_bytes(), image.name)
    # then football is the most probable label
    assert resp.status_code == 200, resp.text
    labels = resp.json()["labels"]
    assert labels[0]["label"] == "football", labels


async def test_a_classification_is_kept_in_the_history_apart_from_detections(
    client: httpx.AsyncClient,
) -> None:
    # given two classifications of real images and a detection
    first = (await _classify(client, _val_image("tennis_ball").read_bytes())).json()
    second = await _classify(client, _val_image("basketball").read_bytes(), query="?top=3")
    assert second.status_code == 200 and len(second.json()["labels"]) == 3
    detected = await client.post(
        "/api/predict", files={"file": ("b.jpg", _val_image("basketball").read_bytes())},
        timeout=60,
    )  # fmt: skip
    assert detected.status_code == 200, detected.text
    # then each is read back by id with its task and labels
    again = (await client.get(f"/api/history/{first['id']}")).json()
    assert again == first
    # and the history filters by task, counting only that task
    classified = (await client.get("/api/history?task=classify")).json()
    assert classified["total"] == 2
    assert [item["id"] for item in classified["items"]] == [second.json()["id"], first["id"]]
    detections = (await client.get("/api/history?task=detect")).json()
    assert detections["total"] == 1 and detections["items"][0]["labels"] == []
    assert (await client.get("/api/history")).json()["total"] == 3
    bad = await client.get("/api/history?task=segment")
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_request"


async def test_top_asks_for_up_to_the_models_classes(client: httpx.AsyncClient) -> None:
    data = _val_image("golf_ball").read_bytes()
    every = await _classify(client, data, query="?top=100")
    assert every.status_code == 200 and len(every.json()["labels"]) == 15
    for query in ("?top=0", "?top=101", "?top=two"):
        resp = await _classify(client, data, query=query)
        assert resp.status_code == 422, (query, resp.text)
        assert resp.json()["error"] == "invalid_request"


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert isinstance(image, np.ndarray), f"OpenCV cannot read {path}"
    return image


def _encoded(path: Path, ext: str) -> bytes:
    ok, buf = cv2.imencode(ext, _read(path))
    assert ok
    return bytes(buf.tobytes())


@pytest.mark.parametrize(("ext", "kind"), [(".png", "image/png"), (".webp", "image/webp")])
async def test_png_and_webp_are_classified_like_the_jpeg(
    client: httpx.AsyncClient, ext: str, kind: str
) -> None:
    image = _val_image("football")
    resp = await _classify(client, _encoded(image, ext), f"ball{ext}", kind)
    assert resp.status_code == 200, resp.text
    assert resp.json()["labels"][0]["label"] == "football"


async def test_bad_input_answers_4xx_and_records_nothing(
    client: httpx.AsyncClient, classify_settings: Settings
) -> None:
    jpeg = _val_image("football").read_bytes()
    cases = {
        "not an image": (await _classify(client, b"GIF89a not a ball", "x.gif"), 415),
        "a text file": (await _classify(client, b"hello", "x.txt", "text/plain"), 415),
        "cut short": (await _classify(client, jpeg[: len(jpeg) // 3]), 422),
        "empty": (await _classify(client, b""), 422),
        "no file field": (
            await client.post("/api/classify", files={"image": ("x.jpg", jpeg)}, timeout=30),
            422,
        ),
        "not multipart": (
            await client.post(
                "/api/classify", content=jpeg, headers={"content-type": "image/jpeg"}
            ),
            415,
        ),
    }
    for name, (resp, status) in cases.items():
        assert resp.status_code == status, (name, resp.text)
        assert resp.json()["detail"], name
    assert (await client.get("/api/history")).json()["total"] == 0


async def test_an_image_over_the_limits_is_refused(
    classify_settings: Settings, redis: Redis
) -> None:
    small = classify_settings.replace(predict_max_mb=1, predict_max_pixels=100 * 100)
    jpeg = _val_image("football").read_bytes()
    big = np.random.default_rng(0).integers(0, 256, (1200, 1200, 3), np.uint8)
    ok, buf = cv2.imencode(".png", big)
    assert ok and len(buf) > 2**20
    async with serving(create_app(small)) as client:
        pixels = await _classify(client, jpeg)
        assert pixels.status_code == 413 and "PITCHSIDE_PREDICT_MAX_PIXELS" in pixels.text
        body = await _classify(client, bytes(buf.tobytes()), "big.png", "image/png")
        assert body.status_code == 413 and "PITCHSIDE_PREDICT_MAX_MB" in body.text


@pytest.mark.parametrize(
    "classifier", [str(default_model_path()), "/nowhere/ball-classifier.onnx"],
    ids=["a-detector", "missing"],
)  # fmt: skip
async def test_an_unloadable_classifier_answers_503_and_is_retried(
    classify_settings: Settings, redis: Redis, classifier: str, caplog: pytest.LogCaptureFixture
) -> None:
    jpeg = _val_image("football").read_bytes()
    async with serving(create_app(classify_settings.replace(classifier=classifier))) as client:
        for _ in range(2):  # the next request tries the load again, and says so again
            caplog.clear()
            resp = await _classify(client, jpeg)
            assert resp.status_code == 503, resp.text
            assert resp.json()["error"] == "model_unavailable"
            assert "classifier" in resp.json()["detail"]
            assert "cannot load its classifier" in caplog.text
        # predictions of the detector are unaffected
        detected = await client.post("/api/predict", files={"file": ("b.jpg", jpeg)}, timeout=60)
        assert detected.status_code == 200, detected.text


async def test_a_classifier_that_appears_after_a_failed_load_is_loaded_at_the_next_request(
    classify_settings: Settings, redis: Redis, tmp_path: Path
) -> None:
    # given a gateway whose classifier file is not there yet
    later = tmp_path / "later-classifier.onnx"
    jpeg = _val_image("football").read_bytes()
    async with serving(create_app(classify_settings.replace(classifier=str(later)))) as client:
        refused = await _classify(client, jpeg)
        assert refused.status_code == 503 and refused.json()["error"] == "model_unavailable"
        # when the file is put in place
        shutil.copyfile(default_classifier_path(), later)
        # then the next request loads it and is answered, with the model it loaded
        resp = await _classify(client, jpeg)
        assert resp.status_code == 200, resp.text
        assert resp.json()["model"]["name"] == later.name
        assert len(resp.json()["labels"]) == 5


async def test_classify_needs_the_operators_token_as_predict_does(
    classify_settings: Settings, redis: Redis
) -> None:
    # given a gateway with an operator's and a viewer's token
    secured = classify_settings.replace(token=OPERATOR, viewer_token=VIEWER)
    jpeg = _val_image("football").read_bytes()
    async with serving(create_app(secured)) as client:
        for path in ("/api/predict", "/api/classify"):
            # when an image is posted without a token, with the viewer's and the operator's
            answers = [
                await client.post(
                    path, files={"file": ("b.jpg", jpeg, "image/jpeg")}, headers=headers,
                    timeout=60,
                )
                for headers in ({}, _bearer(VIEWER), _bearer(OPERATOR))
            ]  # fmt: skip
            # then only the operator's is served, for predict and classify alike
            statuses = [(r.status_code, r.json().get("error")) for r in answers]
            assert statuses[:2] == [(401, "unauthorized"), (403, "read_only")], (path, statuses)
            assert statuses[2][0] == 200, (path, answers[2].text)
        # and the history (a read) is open to the viewer, holding the two served images
        history = await client.get("/api/history", headers=_bearer(VIEWER))
        assert history.status_code == 200 and history.json()["total"] == 2


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_burst_beyond_the_places_is_told_to_come_back(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given one place only, so that the second of two simultaneous images finds it taken
    monkeypatch.setattr(predictor_module, "MAX_IN_FLIGHT", 1)
    jpeg = _val_image("football").read_bytes()
    answers = await asyncio.gather(*(_classify(client, jpeg) for _ in range(4)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses[0] == 200 and 503 in statuses, statuses
    busy = next(r for r in answers if r.status_code == 503)
    assert busy.json()["error"] == "predictor_busy"
