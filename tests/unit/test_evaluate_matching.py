"""Scoring helpers of training.evaluate: label parsing, IoU, matching, confusion matrix."""

from __future__ import annotations

import numpy as np

from training.evaluate import box_iou, confusion_matrix, load_labels, match_predictions


def test_load_labels_converts_yolo_rows_to_pixel_boxes(tmp_path):
    label = tmp_path / "a.txt"
    label.write_text("2 0.5 0.5 0.1 0.2\n0 0.25 0.75 0.02 0.02\n")
    boxes = load_labels(label, width=1000, height=500)
    np.testing.assert_allclose(boxes[0], [2, 450, 200, 550, 300])
    np.testing.assert_allclose(boxes[1], [0, 240, 370, 260, 380])
    assert load_labels(tmp_path / "missing.txt", 10, 10).shape == (0, 5)


def test_box_iou_of_known_boxes():
    a = np.array([[0, 0, 10, 10]], dtype=float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], dtype=float)
    np.testing.assert_allclose(box_iou(a, b)[0], [1.0, 1 / 3, 0.0], atol=1e-6)


def test_match_predictions_counts_each_label_once_and_respects_class():
    gt = np.array([[2, 0, 0, 10, 10]], dtype=float)
    pred = np.array(
        [
            [0, 0, 10, 10, 0.9, 2],  # exact: TP at every threshold
            [0, 0, 10, 10, 0.8, 2],  # duplicate of the same label: FP
            [0, 0, 10, 10, 0.7, 1],  # right place, wrong class: FP
        ]
    )
    correct = match_predictions(pred, gt)
    assert correct[0].all()
    assert not correct[1].any()
    assert not correct[2].any()


def test_match_predictions_thresholds_follow_iou():
    gt = np.array([[0, 0, 0, 10, 10]], dtype=float)
    pred = np.array([[0, 0, 10, 8.2, 0.9, 0]])  # IoU 0.82
    correct = match_predictions(pred, gt)[0]
    assert correct[:7].all() and not correct[7:].any()  # 0.50 ... 0.80 yes, 0.85+ no


def test_confusion_matrix_counts_hits_confusions_misses_and_false_alarms():
    cm = np.zeros((3, 3), dtype=np.int64)  # two classes + background
    gt = np.array([[0, 0, 0, 10, 10], [1, 50, 50, 60, 60], [1, 100, 100, 110, 110]], dtype=float)
    pred = np.array(
        [
            [0, 0, 10, 10, 0.9, 0],  # hit class 0
            [50, 50, 60, 60, 0.9, 0],  # class 1 called class 0
            [200, 200, 210, 210, 0.9, 1],  # false alarm
            [100, 100, 110, 110, 0.1, 1],  # below the confusion-matrix confidence: ignored
        ]
    )
    confusion_matrix(pred, gt, nc=2, cm=cm)
    assert cm[0, 0] == 1 and cm[0, 1] == 1  # rows predicted, columns true
    assert cm[2, 1] == 1  # the low-confidence box left a label missed
    assert cm[1, 2] == 1  # false alarm on background
    assert cm.sum() == 4
