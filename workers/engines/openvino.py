"""OpenVINO engine for Ultralytics YOLO OpenVINO exports (``yolo export format=openvino``).

An export is a folder holding ``<name>.xml`` (the graph), ``<name>.bin`` (the weights) and
``metadata.yaml`` (class names, stride, task), which are read and checked as an ONNX
export's metadata is. The model is compiled for OpenVINO's CPU device with the LATENCY hint
and the worker's thread count; a model whose batch dimension is fixed runs a batch in
chunks of that size. ``openvino`` is an optional extra (``pip install 'pitchside[openvino]'``):
it is imported only when an OpenVINO model is opened.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import yaml

from pitchside.errors import ModelError, SettingsError
from workers.engines.base import DEFAULT_STRIDE, Engine, InputShape, Runtime, dim, infer_in_chunks
from workers.engines.checks import check_detection_output, check_task, parse_names, parse_stride

log = logging.getLogger(__name__)

EXTRA = "openvino"  # the pitchside extra that installs it
DEVICE = "CPU"
PROVIDER = f"OpenVINO:{DEVICE}"
METADATA = "metadata.yaml"  # Ultralytics writes it next to the .xml
_ORT_CPU = "CPUExecutionProvider"
_DTYPES = {"f32": np.float32, "f16": np.float16}


def import_openvino() -> ModuleType:
    """The ``openvino`` module.

    Raises:
        ModelError: it is not installed, naming the extra that installs it.
    """
    try:
        return importlib.import_module("openvino")
    except ImportError as exc:
        raise ModelError(
            f"serving an OpenVINO model needs OpenVINO: pip install 'pitchside[{EXTRA}]'"
        ) from exc


def resolve_providers(spec: str) -> list[str]:
    """What runs an OpenVINO model for a ``PITCHSIDE_PROVIDERS`` value: its CPU device.

    ``PITCHSIDE_PROVIDERS`` lists ONNX Runtime providers; ``auto``, or a list that allows the
    CPU (``CPUExecutionProvider`` or ``OpenVINO:CPU``), is honoured on the CPU.

    Raises:
        SettingsError: a list that allows only accelerators.
    """
    wanted = {p.strip() for p in spec.split(",") if p.strip()}
    if spec.strip().lower() == "auto" or wanted & {_ORT_CPU, PROVIDER}:
        return [PROVIDER]
    raise SettingsError(
        f"PITCHSIDE_PROVIDERS must be 'auto' or include {_ORT_CPU} to serve an OpenVINO "
        f"model, which runs on OpenVINO's CPU device ({PROVIDER}); got {spec!r}. Serve an "
        ".onnx export to use an accelerator"
    )


def read_metadata(xml: Path) -> dict[str, Any]:
    """The ``metadata.yaml`` next to an export's ``.xml``, parsed.

    Raises:
        ModelError: it is missing, unreadable or not a mapping.
    """
    path = xml.with_name(METADATA)
    if not path.is_file():
        raise ModelError(
            f"model {xml.name!r} has no {METADATA} next to it (class names, stride, task); "
            "export it with Ultralytics (yolo export format=openvino), which writes it"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ModelError(f"model {xml.name!r} has an unreadable {METADATA}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelError(
            f"model {xml.name!r}: {METADATA} must be a mapping, got {type(data).__name__}"
        )
    return data


class OpenVinoEngine:
    """One OpenVINO compiled model of a YOLO detection export, on the CPU.

    Each calling thread gets its own infer request; ``lanes`` CPU streams let that many
    callers infer at once (one stream runs one request at a time).

    Args:
        path: the export's ``.xml`` (``.bin`` and ``metadata.yaml`` beside it).
        threads: inference threads for each caller; 0 lets OpenVINO choose.
        lanes: callers that will infer at once.

    Raises:
        ModelError: OpenVINO is not installed, or the export is unreadable or not a YOLO
            detection model.
    """

    def __init__(self, path: Path, threads: int = 0, lanes: int = 1) -> None:
        ov = import_openvino()
        self.model_id = path.name
        metadata = read_metadata(path)
        check_task(self.model_id, metadata)
        self.names = parse_names(self.model_id, metadata)
        self.stride = parse_stride(self.model_id, metadata, DEFAULT_STRIDE)
        self.providers = [PROVIDER]
        core = ov.Core()
        try:
            model = core.read_model(str(path))
        except RuntimeError as exc:  # what OpenVINO raises for any unreadable model
            raise ModelError(
                f"model {self.model_id!r} is not an OpenVINO model OpenVINO can read: {exc}"
            ) from exc
        inputs, outputs = model.inputs, model.outputs
        shape = inputs[0].get_partial_shape() if len(inputs) == 1 else None
        dtype = _DTYPES.get(inputs[0].get_element_type().get_type_name()) if inputs else None
        if shape is None or shape.rank.is_dynamic or len(shape) != 4 or dtype is None:
            raise ModelError(
                f"model {self.model_id!r} is not a detection model: it takes "
                f"{[(sorted(i.get_names()), str(i.get_partial_shape())) for i in inputs]}, "
                "expected one float image batch (batch, 3, height, width)"
            )
        b, c, h, w = (d.get_length() if d.is_static else None for d in shape)
        self.input_shape: InputShape = (dim(b), dim(c), dim(h), dim(w))
        if self.input_shape[1] not in (None, 3):
            raise ModelError(
                f"model {self.model_id!r} takes {self.input_shape[1]} channels, expected 3"
            )
        out_shape = outputs[0].get_partial_shape()
        if out_shape.rank.is_static:
            dims = [d.get_length() if d.is_static else None for d in out_shape]
            check_detection_output(self.model_id, dims, len(self.names))
        config: dict[str, Any] = {
            "PERFORMANCE_HINT": "LATENCY",
            # Measured on the 2-core dev box: two callers on one stream take turns (22 fps
            # in all at one thread each); on two streams they run side by side (38 fps).
            "NUM_STREAMS": lanes,
            "INFERENCE_NUM_THREADS": threads * lanes,  # across all streams; 0: OpenVINO's
        }
        try:
            self._compiled = core.compile_model(model, DEVICE, config)
        except RuntimeError as exc:
            raise ModelError(
                f"model {self.model_id!r} does not compile for {DEVICE}: {exc}"
            ) from exc
        self._dtype = dtype
        self._output = self._compiled.output(0)
        self._local = threading.local()  # .request: this thread's infer request

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on a letterboxed batch; thread-safe.

        Args:
            batch: ``(N, 3, H, W)`` float32 RGB in [0, 1] (shared with OpenVINO, not copied,
                for a float32 model).

        Returns:
            ``(N, 4 + nc, A)`` float32 raw output, the caller's own.
        """
        return infer_in_chunks(
            batch.astype(self._dtype, copy=False), self.input_shape[0], self._run
        )

    def _run(self, batch: np.ndarray) -> np.ndarray:
        request = getattr(self._local, "request", None)
        if request is None:  # an infer request serves one thread at a time
            request = self._local.request = self._compiled.create_infer_request()
        # share_outputs=False: this thread's next run reuses the request's output buffer.
        result = request.infer({0: batch}, share_inputs=True, share_outputs=False)
        return np.asarray(result[self._output], dtype=np.float32)


def _open(path: Path, providers: Sequence[str], threads: int, lanes: int) -> Engine:
    return OpenVinoEngine(path, threads, lanes)


RUNTIME = Runtime(providers=resolve_providers, check_providers=[PROVIDER], open=_open)
