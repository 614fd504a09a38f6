"""Decode YOLOv8/YOLO11 detection output and suppress overlaps, in vectorised NumPy.

Same semantics as Ultralytics' ``non_max_suppression`` with ``agnostic=False``,
``multi_label=False``: a candidate is kept when its best class score is above ``conf``;
boxes are offset by ``class * max_wh`` so one NMS pass never lets two classes suppress each
other; the result is cut to ``max_det`` boxes. Pure functions, no state.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from pitchside.schema import Detection
from workers.preprocess import Letterbox

MAX_DET = 300  # boxes per image at most
MAX_NMS = 30_000  # candidates into NMS at most, the highest scores
MAX_WH = 7680  # per-class box offset in network pixels; larger than any input side
NMS_MATRIX_MAX = 1024  # candidates up to which NMS computes all IoUs at once (4 MB)


def xywh2xyxy(xywh: np.ndarray) -> np.ndarray:
    """``(N, 4)`` centre x, centre y, width, height -> ``(N, 4)`` x1, y1, x2, y2."""
    half = xywh[:, 2:4] / 2
    return np.concatenate((xywh[:, :2] - half, xywh[:, :2] + half), axis=1)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_thres: float, max_keep: int = 0) -> np.ndarray:
    """Greedy non-maximum suppression, as ``torchvision.ops.nms``.

    A box is dropped when its IoU with a higher-scoring kept box is above ``iou_thres``.

    Args:
        boxes: ``(N, 4)`` x1, y1, x2, y2.
        scores: ``(N,)``.
        iou_thres: IoU above which the lower-scoring box is suppressed.
        max_keep: stop after this many kept boxes (0: no limit). Greedy NMS keeps boxes in
            score order, so this gives the first ``max_keep`` of the full result.

    Returns:
        ``(K,)`` int64 indices into ``boxes`` of the kept boxes, highest score first.
    """
    if boxes.ndim != 2 or boxes.shape[1] != 4 or scores.shape != (boxes.shape[0],):
        raise ValueError(
            f"expected (N, 4) boxes and (N,) scores, got {boxes.shape} and {scores.shape}"
        )
    order = np.argsort(-scores, kind="stable")
    limit = max_keep if max_keep > 0 else len(order)
    with np.errstate(divide="ignore", invalid="ignore"):
        if len(order) <= NMS_MATRIX_MAX:
            keep = _greedy_on_iou_matrix(boxes[order], iou_thres, limit)
            return order[np.asarray(keep, dtype=np.int64)]
        return np.asarray(_greedy_pairwise(boxes, order, iou_thres, limit), dtype=np.int64)


def _greedy_on_iou_matrix(boxes: np.ndarray, iou_thres: float, limit: int) -> list[int]:
    """Greedy NMS over boxes sorted by score, with every IoU computed in one go (the usual
    few dozen candidates of a frame: one vectorised step instead of one per kept box)."""
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    areas = (x2 - x1) * (y2 - y1)
    w = np.clip(np.minimum(x2[:, None], x2) - np.maximum(x1[:, None], x1), 0, None)
    h = np.clip(np.minimum(y2[:, None], y2) - np.maximum(y1[:, None], y1), 0, None)
    inter = w * h
    over = inter / (areas[:, None] + areas - inter) > iou_thres  # NaN (empty boxes): False
    suppressed = np.zeros(len(boxes), dtype=bool)
    keep: list[int] = []
    for i in range(len(boxes)):
        if suppressed[i]:
            continue
        keep.append(i)
        if len(keep) >= limit:
            break
        suppressed |= over[i]
    return keep


def _greedy_pairwise(
    boxes: np.ndarray, order: np.ndarray, iou_thres: float, limit: int
) -> list[int]:
    """Greedy NMS computing the IoUs of each kept box with the rest: for many candidates,
    where the full IoU matrix would not fit in memory."""
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    areas = (x2 - x1) * (y2 - y1)
    keep: list[int] = []
    while order.size and len(keep) < limit:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[~(iou > iou_thres)]  # NaN (two empty boxes) suppresses nothing
    return keep


def batched_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    iou_thres: float,
    max_keep: int = 0,
    max_wh: float = MAX_WH,
) -> np.ndarray:
    """Class-aware NMS: boxes of different classes never suppress each other.

    Args:
        boxes: ``(N, 4)`` x1, y1, x2, y2, each coordinate below ``max_wh``.
        scores: ``(N,)``.
        classes: ``(N,)`` integer class ids.
        iou_thres: IoU above which the lower-scoring box of the same class is suppressed.
        max_keep: stop after this many kept boxes (0: no limit).
        max_wh: offset per class id.

    Returns:
        ``(K,)`` int64 indices of the kept boxes, highest score first.
    """
    offset = classes.astype(boxes.dtype)[:, None] * boxes.dtype.type(max_wh)
    return nms(boxes + offset, scores, iou_thres, max_keep)


def non_max_suppression(
    raw: np.ndarray,
    conf: float,
    iou: float,
    max_det: int = MAX_DET,
    max_nms: int = MAX_NMS,
) -> list[np.ndarray]:
    """Decode raw YOLO detection output into boxes per image.

    Args:
        raw: ``(B, 4 + nc, N)`` float: centre x, centre y, width, height in network pixels,
            then one score per class, for ``N`` anchors.
        conf: keep candidates whose best class score is above this.
        iou: IoU threshold of the class-aware NMS.
        max_det: boxes per image at most.
        max_nms: candidates per image into NMS at most (the highest scores).

    Returns:
        ``B`` arrays of shape ``(K, 6)`` float32: x1, y1, x2, y2 (network pixels), score,
        class id; highest score first.
    """
    if raw.ndim != 3 or raw.shape[1] < 5:
        raise ValueError(f"expected raw output of shape (B, 4 + nc, N), got {raw.shape}")
    out: list[np.ndarray] = []
    for pred in raw:  # (4 + nc, N)
        cls_scores = pred[4:]
        best = cls_scores.max(axis=0)
        cand = np.flatnonzero(best > conf)
        if cand.size == 0:
            out.append(np.zeros((0, 6), dtype=np.float32))
            continue
        scores = best[cand]
        if cand.size > max_nms:
            top = np.argsort(-scores, kind="stable")[:max_nms]
            cand, scores = cand[top], scores[top]
        classes = cls_scores[:, cand].argmax(axis=0)
        boxes = xywh2xyxy(pred[:4, cand].T)
        keep = batched_nms(boxes, scores, classes, iou, max_keep=max_det)
        dets = np.empty((keep.size, 6), dtype=np.float32)
        dets[:, :4] = boxes[keep]
        dets[:, 4] = scores[keep]
        dets[:, 5] = classes[keep]
        out.append(dets)
    return out


def scale_boxes(boxes: np.ndarray, lb: Letterbox) -> np.ndarray:
    """Map boxes from network pixels back to source pixels, clipped to the image.

    Args:
        boxes: ``(K, 4)`` x1, y1, x2, y2 in network pixels.
        lb: how the source image was placed in the network input.

    Returns:
        A new ``(K, 4)`` float32 array: x1, y1, x2, y2 in source pixels.
    """
    out = boxes.astype(np.float32, copy=True)
    out[:, [0, 2]] = (out[:, [0, 2]] - lb.pad_x) / lb.scale_x
    out[:, [1, 3]] = (out[:, [1, 3]] - lb.pad_y) / lb.scale_y
    h, w = lb.src_hw
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, w)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, h)
    return out


def to_detections(dets: np.ndarray, lb: Letterbox, names: Mapping[int, str]) -> list[Detection]:
    """Turn one image's ``(K, 6)`` NMS output into Detections in source pixels.

    Args:
        dets: ``(K, 6)`` x1, y1, x2, y2 (network pixels), score, class id.
        lb: how the source image was placed in the network input.
        names: class id -> label.

    Returns:
        ``K`` detections, highest score first.
    """
    boxes = scale_boxes(dets[:, :4], lb).tolist()
    scores = dets[:, 4].tolist()
    classes = dets[:, 5].astype(np.int64).tolist()
    return [
        Detection(box=tuple(box), score=score, cls=cls, label=names.get(cls, str(cls)))
        for box, score, cls in zip(boxes, scores, classes, strict=True)
    ]
