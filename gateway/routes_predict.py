"""``POST /api/predict``: detect objects in one uploaded image, and record the prediction.

The image (multipart field ``file``: JPEG, PNG or WebP) is checked before it is decoded: the
body is at most ``PITCHSIDE_PREDICT_MAX_MB`` (413), the file must be one of the three formats
(415), and its header's size at most ``PITCHSIDE_PREDICT_MAX_PIXELS`` (413). Decoding and
detection run in threads; the answer is the recorded prediction, with its history id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, cast

import cv2
import numpy as np
from fastapi import APIRouter, Request

from gateway import multipart
from gateway.image_probe import ACCEPTED, ImageInfo, probe
from gateway.predictions import PredictionOut
from pitchside.errors import BadImageError, ImageTooLargeError
from pitchside.results import NewPrediction

if TYPE_CHECKING:
    from gateway.app import State

log = logging.getLogger(__name__)

router = APIRouter(tags=["predictions"])

FIELD = "file"
_ERROR = {"description": "{error, detail}", "content": {"application/json": {}}}


def _state(request: Request) -> State:
    return cast("State", request.state)


@router.post(
    "/api/predict",
    summary="Detect objects in one image (JPEG, PNG or WebP) and record the prediction",
    openapi_extra=multipart.openapi_body(FIELD, f"the image: {ACCEPTED}"),
    responses={
        400: _ERROR | {"description": "the multipart body cannot be parsed"},
        413: _ERROR | {"description": "the body, or the image's pixel count, is over the limit"},
        415: _ERROR | {"description": f"not multipart/form-data, or the file is no {ACCEPTED}"},
        422: _ERROR | {"description": "no 'file' field, an empty file, or an undecodable image"},
        503: _ERROR | {"description": "busy, the detector cannot be loaded, or the store is down"},
    },
)
async def predict(request: Request) -> PredictionOut:
    state = _state(request)
    predictor, store = state["predictor"], state["results"]
    upload, info = await read_image_upload(request)
    received = time.perf_counter()
    async with predictor.admit():
        image = await decode_upright(upload.data, info)
        height, width = image.shape[:2]  # as decoded, turned upright: what the boxes are in
        decoded = time.perf_counter()
        detected = await predictor.detect(image)
        del image
    total_ms = (time.perf_counter() - received) * 1000
    record = await asyncio.to_thread(
        store.add_prediction,
        NewPrediction(
            model_name=detected.model.name, model_version=detected.model.version,
            width=width, height=height,
            detections=[d.to_dict() for d in detected.detections],
            timings=timings(decoded - received, detected.wait_ms, detected.inference_ms,
                            total_ms),
            filename=multipart.clean_filename(upload.filename),
        ),
    )  # fmt: skip
    log.info(
        "prediction %d: %s %dx%d, %d detections in %.0f ms",
        record.id, info.format, width, height, len(record.detections), total_ms,
    )  # fmt: skip
    return PredictionOut.of(record)


def timings(
    decode_s: float, wait_ms: float, inference_ms: float, total_ms: float
) -> dict[str, float]:
    """An image prediction's recorded timings, in ms to the hundredth."""
    return {
        "decode_ms": round(decode_s * 1000, 2),
        "wait_ms": round(wait_ms, 2),
        "inference_ms": round(inference_ms, 2),
        "total_ms": round(total_ms, 2),
    }


async def read_image_upload(request: Request) -> tuple[multipart.FilePart, ImageInfo]:
    """The multipart ``file`` field of ``request`` and its image header, checked against the
    limits before anything is decoded (the checks of ``/api/predict`` and ``/api/classify``).

    Raises:
        PitchsideError: 400, 413, 415 or 422, as the module docs say.
    """
    settings = _state(request)["settings"]
    upload = await multipart.read_file(
        request, FIELD, settings.predict_max_mb * 2**20, "PITCHSIDE_PREDICT_MAX_MB"
    )
    info = probe(upload.data)
    if info.pixels > settings.predict_max_pixels:
        raise ImageTooLargeError(
            f"the image is {info.width}x{info.height} ({info.pixels:,} pixels); at most "
            f"{settings.predict_max_pixels:,} are taken (PITCHSIDE_PREDICT_MAX_PIXELS)"
        )
    return upload, info


async def decode_upright(data: bytes, info: ImageInfo) -> np.ndarray:
    """``(H, W, 3)`` uint8 BGR, decoded in a thread and turned upright by its EXIF.

    Raises:
        BadImageError: the file cannot be decoded (cut short or corrupt).
    """
    image = await asyncio.to_thread(_decode, data)
    if image is None or image.shape[0] * image.shape[1] != info.pixels:  # EXIF may turn it
        raise BadImageError(
            f"the {info.format.upper()} file cannot be decoded (cut short or corrupt)"
        )
    return image


def _decode(data: bytes) -> np.ndarray | None:
    """``(H, W, 3)`` uint8 BGR, or None when OpenCV cannot decode it."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return image if isinstance(image, np.ndarray) else None
