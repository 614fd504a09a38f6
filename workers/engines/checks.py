"""Validators every engine applies to an Ultralytics export's metadata and shapes.

ONNX metadata holds strings (``names`` is a Python dict literal); OpenVINO's
``metadata.yaml`` holds parsed YAML values. Both are accepted, so that each runtime refuses
the same models with the same messages.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence

from pitchside.errors import ModelError


def parse_names(model_id: str, metadata: Mapping[str, object]) -> dict[int, str]:
    """Class names from an Ultralytics export's ``names`` metadata.

    Args:
        model_id: names the model in messages.
        metadata: ``names`` as a ``{int: str}`` dict literal (ONNX), or a mapping or list
            (YAML).

    Raises:
        ModelError: no ``names`` entry, or one that is not a ``{int: str}`` table.
    """
    raw = metadata.get("names")
    if raw is None:
        raise ModelError(
            f"model {model_id!r} has no class names in its metadata; export it with "
            "Ultralytics (yolo export format=onnx), which writes them"
        )
    try:
        names: object = ast.literal_eval(raw) if isinstance(raw, str) else raw
        if isinstance(names, list):
            names = dict(enumerate(names))
        if not isinstance(names, Mapping):
            raise TypeError(f"a {type(names).__name__}, not a mapping")
        parsed = {int(k): str(v) for k, v in names.items()}
    except (ValueError, TypeError, SyntaxError) as exc:
        raise ModelError(
            f"model {model_id!r} has unreadable class names in its metadata: {str(raw)[:80]!r}"
        ) from exc
    if not parsed:
        raise ModelError(f"model {model_id!r} has an empty class name table")
    return parsed


def parse_stride(model_id: str, metadata: Mapping[str, object], default: int) -> int:
    """The ``stride`` metadata entry, ``default`` when absent.

    Raises:
        ModelError: a stride that is not a positive integer.
    """
    raw = metadata.get("stride", default)
    try:
        stride = int(str(raw))
    except ValueError:
        stride = 0
    if stride < 1:
        raise ModelError(f"model {model_id!r} has a stride of {raw!r}, expected a positive integer")
    return stride


def check_task(model_id: str, metadata: Mapping[str, object]) -> None:
    """Refuse a model whose metadata says it is not a plain YOLO detector.

    Raises:
        ModelError: ``task`` is not ``detect``, or an end-to-end (NMS-free) export.
    """
    task = metadata.get("task", "detect")
    if task != "detect":
        raise ModelError(
            f"model {model_id!r} is a {task!r} model; workers need a detection model "
            "(task 'detect')"
        )
    if str(metadata.get("end2end", "False")).strip().lower() == "true":
        raise ModelError(
            f"model {model_id!r} is an end-to-end (NMS-free) export, not supported yet; "
            "export it with end2end=False"
        )


def check_detection_output(model_id: str, shape: Sequence[int | str | None], nc: int) -> None:
    """Refuse an output that is not ``(B, 4 + nc, A)``; symbolic dimensions pass.

    Raises:
        ModelError: naming the shape found and the one expected.
    """
    dim = shape[1] if len(shape) == 3 else None
    if len(shape) != 3 or (isinstance(dim, int) and dim != 4 + nc):
        raise ModelError(
            f"model {model_id!r} is not a detection model: its output is shaped "
            f"{tuple(shape)}, expected (batch, {4 + nc}, anchors) for 4 box values and "
            f"{nc} classes"
        )
