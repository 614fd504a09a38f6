"""Detector engines and the Detector that wraps one: letterbox in, Detections out.

This is the public surface of the workers' inference code, the one ``training`` and the
benchmark may import. An :class:`Engine` runs a model on a letterboxed batch on one runtime
(ONNX Runtime for ``.onnx``, OpenVINO for an OpenVINO export); :class:`Detector` adds the
NumPy pre- and post-processing around it; :mod:`workers.engines.loading` picks the runtime
from the model's kind and imports it lazily.

Model URIs:
    ``/path/model.onnx``          an Ultralytics YOLO detection export (ONNX Runtime)
    ``/path/model_openvino_model`` an Ultralytics OpenVINO export folder, or its ``.xml``
                                  (OpenVINO, the ``openvino`` extra)
    ``/path/model-cls.onnx``      an Ultralytics YOLO classification export, for
                                  :class:`Classifier` (ONNX Runtime)
    ``models:/name@alias``        an MLflow registry model (needs the train extra), see
                                  :mod:`pitchside.models`
"""

from __future__ import annotations

from workers.engines.base import DEFAULT_STRIDE, Engine, InputShape, ModelInfo
from workers.engines.checks import check_detection_output, check_task, parse_names
from workers.engines.classifier import (
    Classifier,
    Label,
    center_crop,
    load_classifier,
    load_resolved_classifier,
)
from workers.engines.detector import Detector, Prepared
from workers.engines.loading import inspect_model, load_detector, load_for_worker, load_resolved
from workers.preprocess import fill_batch, input_hw_for

__all__ = [
    "DEFAULT_STRIDE",
    "Classifier",
    "Detector",
    "Engine",
    "InputShape",
    "Label",
    "ModelInfo",
    "Prepared",
    "center_crop",
    "check_detection_output",
    "check_task",
    "fill_batch",
    "inspect_model",
    "input_hw_for",
    "load_classifier",
    "load_detector",
    "load_for_worker",
    "load_resolved",
    "load_resolved_classifier",
    "parse_names",
]
