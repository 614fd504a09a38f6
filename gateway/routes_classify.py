"""``POST /api/classify``: the ball type of one uploaded image, recorded in the history.

The image is checked exactly as ``POST /api/predict`` checks it (:mod:`gateway.routes_predict`:
the body's size 413, the format 415, the pixel count 413, an undecodable file 422) and run
through the gateway's classifier (``PITCHSIDE_CLASSIFIER``, by default the project's
``models/ball-classifier.onnx``). The answer is the recorded prediction, with ``task``
``classify`` and its ``labels``, most probable first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, cast

from fastapi import APIRouter, Query, Request

from gateway import multipart
from gateway.image_probe import ACCEPTED
from gateway.predictions import PredictionOut
from gateway.routes_predict import FIELD, decode_upright, read_image_upload, timings
from pitchside.results import NewPrediction

if TYPE_CHECKING:
    from gateway.app import State

log = logging.getLogger(__name__)

router = APIRouter(tags=["predictions"])

MAX_TOP = 100  # labels asked for; a model with fewer classes answers all of them
_ERROR = {"description": "{error, detail}", "content": {"application/json": {}}}


@router.post(
    "/api/classify",
    summary="Classify one image (JPEG, PNG or WebP): its most probable ball types, recorded",
    openapi_extra=multipart.openapi_body(FIELD, f"the image: {ACCEPTED}"),
    responses={
        400: _ERROR | {"description": "the multipart body cannot be parsed"},
        413: _ERROR | {"description": "the body, or the image's pixel count, is over the limit"},
        415: _ERROR | {"description": f"not multipart/form-data, or the file is no {ACCEPTED}"},
        422: _ERROR
        | {"description": "no 'file' field, an empty or undecodable image, or a bad 'top'"},
        503: _ERROR
        | {"description": "busy, the classifier cannot be loaded, or the store is down"},
    },
)
async def classify(
    request: Request,
    top: int = Query(
        5,
        ge=1,
        le=MAX_TOP,
        description="labels to answer, most probable first (at most the model's classes)",
    ),  # fmt: skip
) -> PredictionOut:
    state = cast("State", request.state)
    classifier, store = state["classifier"], state["results"]
    upload, info = await read_image_upload(request)
    received = time.perf_counter()
    async with classifier.admit():
        image = await decode_upright(upload.data, info)
        height, width = image.shape[:2]
        decoded = time.perf_counter()
        classified = await classifier.classify(image, top)
        del image
    total_ms = (time.perf_counter() - received) * 1000
    record = await asyncio.to_thread(
        store.add_prediction,
        NewPrediction(
            model_name=classified.model.name, model_version=classified.model.version,
            width=width, height=height, detections=[], task="classify",
            labels=[label.to_dict() for label in classified.labels],
            timings=timings(decoded - received, classified.wait_ms,
                            classified.inference_ms, total_ms),
            filename=multipart.clean_filename(upload.filename),
        ),
    )  # fmt: skip
    best = classified.labels[0]
    log.info(
        "classification %d: %s %dx%d, %s (%.2f) in %.0f ms",
        record.id, info.format, width, height, best.name, best.score, total_ms,
    )  # fmt: skip
    return PredictionOut.of(record)
