"""Helpers for the engine tests: tiny ONNX graphs with chosen shapes, and box matching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from training.evaluate import box_iou  # the matching the evaluation itself uses

#: Metadata of a valid two-class Ultralytics detection export.
TWO_CLASSES = {"names": "{0: 'player', 1: 'ball'}", "task": "detect", "stride": "32"}


def tiny_onnx(
    path: Path,
    out_channels: int = 6,
    flat_output: bool = False,
    batch: int | str = "batch",
    hw: tuple[int | str, int | str] = ("height", "width"),
    metadata: dict[str, str] | None = None,
) -> Path:
    """A 1x1 conv from an image batch: ``(B, out_channels, H*W)``, or ``(B, out_channels)``
    after global pooling when ``flat_output`` (a classifier's shape)."""
    weight = helper.make_tensor(
        "w", TensorProto.FLOAT, [out_channels, 3, 1, 1], np.zeros(out_channels * 3).tolist()
    )
    nodes = [helper.make_node("Conv", ["images", "w"], ["conv"])]
    if flat_output:
        nodes += [
            helper.make_node("GlobalAveragePool", ["conv"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["output0"]),
        ]
        out_shape: list[int | str] = [batch, out_channels]
    else:
        shape = helper.make_tensor("shape", TensorProto.INT64, [3], [0, out_channels, -1])
        nodes.append(helper.make_node("Reshape", ["conv", "shape"], ["output0"]))
        out_shape = [batch, out_channels, "anchors"]
    inits = [weight] + ([] if flat_output else [shape])
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, *hw])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, out_shape)],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def greedy_match(
    ours: np.ndarray, theirs: np.ndarray, min_iou: float = 0.0
) -> list[tuple[int, int, float]]:
    """One-to-one pairs ``(i, j, iou)`` of boxes of one class, best pair first, each with an
    IoU above ``min_iou``."""
    if len(ours) == 0 or len(theirs) == 0:
        return []
    iou = box_iou(ours, theirs)
    pairs: list[tuple[int, int, float]] = []
    while iou.size and iou.max() > min_iou:
        i, j = np.unravel_index(int(iou.argmax()), iou.shape)
        pairs.append((int(i), int(j), float(iou[i, j])))
        iou[i, :] = -1
        iou[:, j] = -1
    return pairs
