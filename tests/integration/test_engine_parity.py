"""Our ONNX Runtime detector against Ultralytics' own predict, same model, same frames."""

from __future__ import annotations

import os
from collections import Counter

import cv2
import numpy as np
import pytest

from pitchside.settings import Settings
from tests.conftest import COCO_ONNX, IMAGES_DIR, require_asset
from tests.integration.engine_helpers import greedy_match
from workers.engines import Detector, load_detector

os.environ.setdefault("YOLO_OFFLINE", "1")
from ultralytics import YOLO  # noqa: E402

CONF = 0.25
IOU = 0.7  # Ultralytics predict's default; both sides get it explicitly
MIN_MEAN_IOU = 0.95


@pytest.fixture(scope="module")
def detector() -> Detector:
    settings = Settings.from_env({}).replace(threads=2, conf=CONF, iou=IOU)
    return load_detector(str(require_asset(COCO_ONNX)), settings)


def test_engine_matches_ultralytics_predict_on_real_frames(detector: Detector) -> None:
    # given the four real 1080p match frames and Ultralytics running the same ONNX model
    paths = sorted(require_asset(IMAGES_DIR).glob("*.jpg"))
    assert len(paths) == 4, f"expected four frames in {IMAGES_DIR}"
    yolo = YOLO(str(COCO_ONNX), task="detect")
    all_ious: list[float] = []
    for path in paths:
        image = cv2.imread(str(path))
        # when both detect at conf 0.25
        ours = detector.detect([image])[0]
        result = yolo.predict(image, conf=CONF, iou=IOU, imgsz=640, verbose=False)[0]
        their_boxes = result.boxes.xyxy.cpu().numpy()
        their_cls = result.boxes.cls.cpu().numpy().astype(int)
        our_boxes = np.asarray([d.box for d in ours], dtype=np.float32).reshape(-1, 4)
        our_cls = np.asarray([d.cls for d in ours], dtype=int)
        # then per class the counts are within one and matched boxes overlap closely
        our_counts, their_counts = Counter(our_cls.tolist()), Counter(their_cls.tolist())
        ious: list[float] = []
        for cls in sorted(set(our_counts) | set(their_counts)):
            pairs = greedy_match(our_boxes[our_cls == cls], their_boxes[their_cls == cls])
            ious += [iou for _, _, iou in pairs]
        mean_iou = float(np.mean(ious)) if ious else 0.0
        named = {detector.names[c]: (our_counts[c], their_counts[c]) for c in sorted(their_counts)}
        print(
            f"\n{path.name}: ours {len(ours)} boxes, ultralytics {len(their_boxes)}; "
            f"per class (ours, theirs) {named}; {len(ious)} matched, mean IoU {mean_iou:.4f}"
        )
        for cls in set(our_counts) | set(their_counts):
            assert abs(our_counts[cls] - their_counts[cls]) <= 1, (
                f"{path.name}: class {detector.names[cls]!r}: {our_counts[cls]} boxes vs "
                f"{their_counts[cls]} from Ultralytics"
            )
        assert mean_iou >= MIN_MEAN_IOU, f"{path.name}: mean IoU {mean_iou:.4f}"
        all_ious += ious
    print(f"all frames: {len(all_ious)} matched boxes, mean IoU {np.mean(all_ious):.4f}")
    assert all_ious, "the frames must contain detections"
