"""ONNX Runtime engine for Ultralytics YOLO detection exports (``.onnx``).

Execution providers come from ``PITCHSIDE_PROVIDERS``: ``auto`` takes TensorRT, CUDA and
CPU in that order, keeping those this onnxruntime build has; otherwise a comma list, each
checked. A model whose batch dimension is fixed runs a batch in chunks of that size (one by
one for the usual batch-1 export); a dynamic batch runs in one call.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from pitchside.errors import ModelError, SettingsError
from workers.engines.base import DEFAULT_STRIDE, Engine, InputShape, Runtime, dim, infer_in_chunks
from workers.engines.checks import check_detection_output, check_task, parse_names, parse_stride

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
AUTO_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", CPU)
_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


def resolve_providers(spec: str) -> list[str]:
    """Execution providers for a ``PITCHSIDE_PROVIDERS`` value, best first.

    Raises:
        SettingsError: a named provider is not in this onnxruntime build (the message lists
            the available ones), or the list is empty.
    """
    available = ort.get_available_providers()
    if spec.strip().lower() == "auto":
        return [p for p in AUTO_PROVIDERS if p in available] or [CPU]
    wanted = [p.strip() for p in spec.split(",") if p.strip()]
    unknown = [p for p in wanted if p not in available]
    if not wanted or unknown:
        raise SettingsError(
            f"PITCHSIDE_PROVIDERS must be 'auto' or a comma list of {', '.join(available)}; "
            f"got {spec!r}" + (f" ({', '.join(unknown)} not available here)" if unknown else "")
        )
    return wanted


def open_session(path: Path, providers: Sequence[str], threads: int) -> ort.InferenceSession:
    """An ONNX Runtime session of ``path`` as every pitchside engine runs one.

    Args:
        path: the ``.onnx`` file.
        providers: execution providers, best first (see :func:`resolve_providers`).
        threads: intra-op threads; 0 lets onnxruntime choose (one per physical core).

    Raises:
        ModelError: the file is not an ONNX model onnxruntime can load.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle intra-op threads must not spin: the prepare thread and the event loop need
    # those cores between runs. Measured on the 2-core dev box under load, spinning
    # halves session.run throughput (3.7-5.4 fps spinning against 5.1-9.1 without).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only; ORT warns about unused initializers
    try:
        return ort.InferenceSession(str(path), options, providers=list(providers))
    except Exception as exc:  # onnxruntime raises its own non-RuntimeError types
        raise ModelError(
            f"model {path.name!r} is not an ONNX model onnxruntime can load: {exc}"
        ) from exc


class OrtEngine:
    """One ONNX Runtime session of a YOLO detection model.

    Args:
        path: the ``.onnx`` file.
        providers: execution providers, best first (see :func:`resolve_providers`).
        threads: intra-op threads; 0 lets onnxruntime choose (one per physical core).

    Raises:
        ModelError: the file is not an ONNX model, or not a YOLO detection export.
    """

    def __init__(self, path: Path, providers: Sequence[str], threads: int = 0) -> None:
        self.model_id = path.name
        self._session = open_session(path, providers, threads)
        metadata = self._session.get_modelmeta().custom_metadata_map
        check_task(self.model_id, metadata)
        self.names = parse_names(self.model_id, metadata)
        self.stride = parse_stride(self.model_id, metadata, DEFAULT_STRIDE)
        self.providers = list(self._session.get_providers())
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].type not in _DTYPES:
            raise ModelError(
                f"model {self.model_id!r} is not a detection model: it takes "
                f"{[(i.name, i.shape, i.type) for i in inputs]}, expected one float image "
                "batch (batch, 3, height, width)"
            )
        b, c, h, w = (dim(d) for d in inputs[0].shape)
        self.input_shape: InputShape = (b, c, h, w)
        if c not in (None, 3):
            raise ModelError(f"model {self.model_id!r} takes {c} channels, expected 3")
        check_detection_output(self.model_id, outputs[0].shape, len(self.names))
        self._input_name = inputs[0].name
        self._output_names = [outputs[0].name]
        self._dtype = _DTYPES[inputs[0].type]

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on a letterboxed batch; thread-safe.

        Args:
            batch: ``(N, 3, H, W)`` float32 RGB in [0, 1] (fed as it is to a float32 model).

        Returns:
            ``(N, 4 + nc, A)`` float32 raw output.
        """
        return infer_in_chunks(
            batch.astype(self._dtype, copy=False), self.input_shape[0], self._run
        )

    def _run(self, batch: np.ndarray) -> np.ndarray:
        (out,) = self._session.run(self._output_names, {self._input_name: batch})
        return np.asarray(out, dtype=np.float32)


def _open(path: Path, providers: Sequence[str], threads: int, lanes: int) -> Engine:
    # Concurrent session.run calls share the session; lanes need nothing of it.
    return OrtEngine(path, providers, threads)


RUNTIME = Runtime(providers=resolve_providers, check_providers=[CPU], open=_open)
