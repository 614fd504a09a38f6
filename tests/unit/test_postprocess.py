"""NumPy decode and NMS against reference implementations (a naive loop, torchvision,
Ultralytics' own non_max_suppression)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torchvision

from workers import postprocess
from workers.postprocess import (
    batched_nms,
    nms,
    non_max_suppression,
    scale_boxes,
    to_detections,
    xywh2xyxy,
)
from workers.preprocess import letterbox_params

os.environ.setdefault("YOLO_OFFLINE", "1")
from ultralytics.utils.nms import non_max_suppression as ultralytics_nms  # noqa: E402

torch.set_num_threads(1)


def _naive_nms(boxes: np.ndarray, scores: np.ndarray, thres: float) -> list[int]:
    """Textbook greedy NMS, one pair at a time."""

    def iou(a: np.ndarray, b: np.ndarray) -> float:
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = w * h
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union

    keep: list[int] = []
    for i in sorted(range(len(scores)), key=lambda k: -scores[k]):
        if all(iou(boxes[i], boxes[j]) <= thres for j in keep):
            keep.append(i)
    return keep


def _random_boxes(rng: np.random.Generator, n: int, side: float = 640) -> np.ndarray:
    xy = rng.uniform(0, side, size=(n, 2))
    wh = rng.uniform(1, side / 4, size=(n, 2))
    return np.concatenate([xy, xy + wh], axis=1).astype(np.float32)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("thres", [0.3, 0.45, 0.7])
def test_nms_matches_torchvision_and_naive_loop_on_random_boxes(seed: int, thres: float) -> None:
    # given 300 random, heavily overlapping boxes with distinct scores
    rng = np.random.default_rng(seed)
    boxes = _random_boxes(rng, 300)
    scores = rng.permutation(300).astype(np.float32) / 300
    # when NMS runs
    keep = nms(boxes, scores, thres)
    # then it keeps the same boxes, in the same order, as both references
    reference = torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), thres)
    assert keep.tolist() == reference.tolist()
    assert keep.tolist() == _naive_nms(boxes, scores, thres)


@pytest.mark.parametrize("thres", [0.3, 0.7])
def test_nms_gives_the_same_result_with_and_without_the_iou_matrix(
    thres: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given 300 random boxes, NMS'd once with all IoUs at once (the usual path)
    rng = np.random.default_rng(7)
    boxes = _random_boxes(rng, 300)
    scores = rng.permutation(300).astype(np.float32) / 300
    with_matrix = nms(boxes, scores, thres)
    # when the same boxes go through the path for too many candidates for the matrix
    monkeypatch.setattr(postprocess, "NMS_MATRIX_MAX", 0)
    pairwise = nms(boxes, scores, thres)
    # then both keep the same boxes in the same order, as torchvision does
    assert pairwise.tolist() == with_matrix.tolist()
    reference = torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), thres)
    assert pairwise.tolist() == reference.tolist()


@pytest.mark.parametrize(
    ("boxes", "scores", "thres", "expected"),
    [
        # identical boxes: only the best survives
        ([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], [0.5, 0.9, 0.7], 0.5, [1]),
        # disjoint boxes: all survive, best first
        ([[0, 0, 10, 10], [20, 20, 30, 30], [40, 0, 50, 10]], [0.2, 0.3, 0.1], 0.5, [1, 0, 2]),
        # half-overlapping squares have IoU 50/150 = 1/3: equal to the threshold is kept,
        ([[0, 0, 10, 10], [5, 0, 15, 10]], [0.9, 0.8], 1 / 3, [0, 1]),
        # above it is suppressed
        ([[0, 0, 10, 10], [5, 0, 15, 10]], [0.9, 0.8], 0.33, [0]),
        # a suppressed box does not suppress others (chain A-B-C: A kills B, C survives)
        ([[0, 0, 10, 10], [6, 0, 16, 10], [12, 0, 22, 10]], [0.9, 0.8, 0.7], 0.2, [0, 2]),
        # zero-area boxes never suppress each other (0/0 IoU)
        ([[5, 5, 5, 5], [5, 5, 5, 5]], [0.9, 0.8], 0.5, [0, 1]),
    ],
)
def test_nms_keeps_expected_boxes_when_cases_are_hand_made(
    boxes: list[list[float]], scores: list[float], thres: float, expected: list[int]
) -> None:
    b = np.asarray(boxes, dtype=np.float32)
    s = np.asarray(scores, dtype=np.float32)
    assert nms(b, s, thres).tolist() == expected
    assert torchvision.ops.nms(torch.from_numpy(b), torch.from_numpy(s), thres).tolist() == expected


def test_nms_returns_empty_when_there_are_no_boxes() -> None:
    keep = nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5)
    assert keep.shape == (0,) and keep.dtype == np.int64


def test_nms_max_keep_gives_a_prefix_of_the_full_result() -> None:
    rng = np.random.default_rng(7)
    boxes, scores = _random_boxes(rng, 200), rng.random(200).astype(np.float32)
    full = nms(boxes, scores, 0.5)
    assert nms(boxes, scores, 0.5, max_keep=10).tolist() == full[:10].tolist()


def test_nms_raises_when_shapes_do_not_match() -> None:
    with pytest.raises(ValueError, match=r"\(N, 4\) boxes"):
        nms(np.zeros((3, 4), np.float32), np.zeros(2, np.float32), 0.5)


def test_batched_nms_never_suppresses_across_classes_and_matches_torchvision() -> None:
    # given two identical boxes of different classes and one duplicate of class 0
    boxes = np.asarray([[0, 0, 10, 10], [0, 0, 10, 10], [1, 1, 10, 10]], dtype=np.float32)
    scores = np.asarray([0.9, 0.8, 0.7], dtype=np.float32)
    classes = np.asarray([0, 1, 0])
    # when class-aware NMS runs, then both classes keep their box, the duplicate goes
    assert batched_nms(boxes, scores, classes, 0.5).tolist() == [0, 1]
    # and on random data it agrees with torchvision's batched_nms
    rng = np.random.default_rng(3)
    boxes, scores = _random_boxes(rng, 400), rng.random(400).astype(np.float32)
    classes = rng.integers(0, 5, 400)
    reference = torchvision.ops.batched_nms(
        torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(classes), 0.45
    )
    assert batched_nms(boxes, scores, classes, 0.45).tolist() == reference.tolist()


def _random_raw(rng: np.random.Generator, batch: int, nc: int, anchors: int) -> np.ndarray:
    """Raw YOLO output: xywh in a 640 input, low class scores with a few confident boxes."""
    raw = np.empty((batch, 4 + nc, anchors), dtype=np.float32)
    raw[:, 0:2] = rng.uniform(0, 640, size=(batch, 2, anchors))
    raw[:, 2:4] = rng.uniform(2, 120, size=(batch, 2, anchors))
    raw[:, 4:] = rng.uniform(0, 0.2, size=(batch, nc, anchors)) ** 2
    hot = rng.random((batch, nc, anchors)) < 0.002
    raw[:, 4:][hot] = rng.uniform(0.1, 1.0, size=hot.sum())
    return raw


@pytest.mark.parametrize(("conf", "iou"), [(0.25, 0.7), (0.25, 0.45), (0.05, 0.5)])
def test_non_max_suppression_matches_ultralytics_on_random_output(conf: float, iou: float) -> None:
    # given a raw (2, 84, 8400) output
    raw = _random_raw(np.random.default_rng(11), 2, 80, 8400)
    # when both decode it
    ours = non_max_suppression(raw, conf, iou)
    theirs = ultralytics_nms(torch.from_numpy(raw.copy()), conf, iou, max_det=300)
    # then each image has the same boxes, scores and classes in the same order
    assert len(ours) == 2
    for mine, ref in zip(ours, theirs, strict=True):
        assert mine.shape == tuple(ref.shape), "the same number of detections"
        assert mine.shape[0] > 5, "the case must exercise NMS"
        np.testing.assert_allclose(mine, ref.numpy(), rtol=0, atol=1e-4)


def test_non_max_suppression_caps_detections_at_max_det() -> None:
    # given many confident, disjoint candidates
    raw = _random_raw(np.random.default_rng(5), 1, 3, 2000)
    raw[:, 2:4] = 1.0  # tiny boxes: almost none overlap
    raw[:, 4] = np.linspace(0.3, 0.9, 2000)
    # when decoded with max_det 50, then 50 come back, best first
    (dets,) = non_max_suppression(raw, 0.25, 0.7, max_det=50)
    assert dets.shape == (50, 6)
    assert np.all(np.diff(dets[:, 4]) <= 0), "highest score first"


def test_non_max_suppression_drops_candidates_at_or_below_conf() -> None:
    # given two far-apart boxes, one scored exactly at the threshold
    raw = np.zeros((1, 6, 2), dtype=np.float32)
    raw[0, :4, 0] = [100, 100, 20, 20]
    raw[0, :4, 1] = [300, 300, 20, 20]
    raw[0, 4, 0], raw[0, 5, 1] = 0.25, 0.6
    # when decoded at conf 0.25, then only the box above it is kept, as class 1, in xyxy
    (dets,) = non_max_suppression(raw, 0.25, 0.5)
    assert dets.shape == (1, 6)
    assert dets[0].tolist() == pytest.approx([290, 290, 310, 310, 0.6, 1])


def test_non_max_suppression_returns_empty_rows_when_nothing_is_confident() -> None:
    raw = np.zeros((3, 84, 100), dtype=np.float32)
    out = non_max_suppression(raw, 0.25, 0.7)
    assert [d.shape for d in out] == [(0, 6)] * 3


def test_to_detections_maps_boxes_to_source_pixels_with_labels() -> None:
    # given one box in a 640x640 input holding a 1920x1080 frame (gain 1/3, 140 px top pad)
    lb = letterbox_params((1080, 1920), (640, 640))
    dets = np.asarray([[10, 150, 20, 170, 0.8, 0], [630, 600, 700, 700, 0.5, 32]], np.float32)
    # when turned into Detections
    out = to_detections(dets, lb, {0: "person", 32: "sports ball"})
    # then boxes are in source pixels, clipped to the frame, with their labels
    assert [d.label for d in out] == ["person", "sports ball"]
    assert out[0].box == pytest.approx((30, 30, 60, 90), abs=1e-3)
    assert out[1].box == pytest.approx((1890, 1080, 1920, 1080), abs=1e-3)
    assert out[0].score == pytest.approx(0.8) and out[1].cls == 32
    assert scale_boxes(np.zeros((0, 4), np.float32), lb).shape == (0, 4)


def test_xywh2xyxy_converts_centre_size_to_corners() -> None:
    assert xywh2xyxy(np.asarray([[10, 20, 4, 6]], np.float32)).tolist() == [[8, 17, 12, 23]]
