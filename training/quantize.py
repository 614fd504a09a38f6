"""INT8 post-training quantization of a YOLO detection export with ONNX Runtime.

:func:`quantize_int8` turns the fp32 ONNX export of :func:`training.train.export_onnx` into a
static INT8 model in QDQ format that the serving engine loads like any other export (the
class names and the rest of Ultralytics' metadata are copied over). It is only a candidate:
``pitchside export --int8 --evaluate`` scores it beside the fp32 model before it may serve.

Choices, measured with the COCO YOLOv8n (``yolov8n-coco-dequant.pt``) exported at imgsz 640,
64 calibration images from the football data set's train split, scored by
:func:`training.evaluate.evaluate` on its 38 valid images relabelled as COCO ``person``
(players, goalkeepers, referees; 870 boxes), on a 2-core AMD EPYC (VNNI) shared with a
training job:

    model                                      person AP50  AP50-95  ms/image
    fp32 export                                      0.629    0.314        72
    int8, these defaults                             0.624    0.310        38
    int8, MinMax calibration                         0.616    0.296        34
    int8, head's last convs quantized too            0.623    0.304        35
    int8, decoding tail quantized too          no detections left (tried at imgsz 320)

- **Calibration input is the serving input.** Each image is letterboxed by the serving
  engine's :func:`workers.engines.fill_batch` at the rectangular size a worker feeds
  (:func:`workers.engines.input_hw_for`: 1920x1080 at imgsz 640 is 384x640), grey
  padding included, one image per batch for a dynamic-batch model.
- **QDQ, per-channel symmetric INT8 weights, asymmetric UINT8 activations (U8S8).** QDQ is
  the format the ONNX Runtime CPU kernels are optimised for. UINT8 activations are what ONNX
  Runtime recommends for x86; QInt8 activations (S8S8) ran 3x slower here (24 against 8
  ms/image at imgsz 320) for no accuracy gain.
- **Percentile (99.999) calibration**, not MinMax: MinMax stretches each activation's 8-bit
  range to the largest value seen, so a few outliers (SiLU outputs, large logits) cost every
  other value its resolution; scores drift and boxes are lost. 99.99 clips too much and
  99.9999 too little (person recall at conf 0.25: 0.428 and 0.468, against 0.492 at 99.999
  and 0.494 for fp32, 16 calibration images).
- **The decoding tail stays float** (:func:`float_nodes`): the per-level concatenations, the
  DFL softmax and its fixed conv, the anchor grid, strides, the class sigmoid and the output
  concatenation, which puts box coordinates in pixels and 0..1 scores in one tensor that no
  single 8-bit scale can hold. It costs nothing measurable to run in float.
- **So do the head's six last 1x1 convolutions** (box-distribution and class logits): 80 kB
  more for the AP50-95 above. Tail and convolutions are found from the graph (walking back
  from the output), not from Ultralytics' node names.

The INT8 file is 3.6 MB against 12.7 MB.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pitchside.errors import InvalidRequestError, ModelError
from workers.engines import (
    DEFAULT_STRIDE,
    check_detection_output,
    check_task,
    fill_batch,
    input_hw_for,
    parse_names,
)

log = logging.getLogger(__name__)

#: Calibration method: see the module's docstring for the measurement.
CALIBRATION = "Percentile"
PERCENTILE = 99.999
#: Activation type: asymmetric UINT8 (ONNX Runtime's recommended U8S8 on x86).
ACTIVATION_TYPE = "QUInt8"
DEFAULT_MAX_IMAGES = 64
QUANT_METADATA_KEY = "quantization"  # added to the metadata: how the model was quantized
_QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger",
                      "MatMulInteger", "DynamicQuantizeLinear"})  # fmt: skip


def quantize_int8(
    fp32_onnx: Path,
    calib_images: list[Path],
    out: Path,
    imgsz: int = 640,
    max_images: int = DEFAULT_MAX_IMAGES,
    *,
    calibration: str = CALIBRATION,
    activation_type: str = ACTIVATION_TYPE,
    float_tail: bool = True,
    float_head_convs: bool = True,
    preprocess: bool = True,
    percentile: float = PERCENTILE,
) -> Path:
    """Quantize ``fp32_onnx`` to a static INT8 QDQ model calibrated on ``calib_images``.

    Args:
        fp32_onnx: an Ultralytics YOLO detection export (float32 input, ``names`` metadata).
        calib_images: images like those the model will serve (BGR-readable by OpenCV).
        out: where to write the INT8 model (its folder is created).
        imgsz: long side of the network input, as the workers will run it.
        max_images: calibrate on at most this many, spread evenly over ``calib_images``.
        calibration: ``"Percentile"`` or ``"MinMax"``.
        activation_type: ``"QUInt8"`` or ``"QInt8"``.
        float_tail: keep the decoding tail after the head's last convolutions in float.
        float_head_convs: keep the head's last convolutions themselves in float too.
        preprocess: run ONNX Runtime's ``quant_pre_process`` (shape inference, constant
            folding) first; it falls back to the plain export if that fails.
        percentile: the percentile of ``"Percentile"`` calibration.

        The keyword-only arguments are the alternatives the module's docstring compares;
        their defaults are the measured best.

    Returns:
        ``out``.

    Raises:
        InvalidRequestError: no calibration images, an image that is missing or unreadable,
            a bad ``imgsz``/``max_images``/``calibration``/``activation_type``.
        ModelError: ``fp32_onnx`` is missing, not ONNX, not a float YOLO detection export, or
            already quantized.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}
    types = {"quint8": QuantType.QUInt8, "qint8": QuantType.QInt8}
    if calibration.lower() not in methods:
        raise InvalidRequestError(f"calibration must be MinMax or Percentile, got {calibration!r}")
    if activation_type.lower() not in types:
        raise InvalidRequestError(
            f"activation type must be QUInt8 or QInt8, got {activation_type!r}"
        )
    if max_images < 1:
        raise InvalidRequestError(f"max_images must be at least 1, got {max_images}")
    model = _load_detection_model(fp32_onnx)
    stride = int(_metadata(model).get("stride", DEFAULT_STRIDE))
    if imgsz < stride or imgsz % stride:
        raise InvalidRequestError(f"imgsz must be a positive multiple of {stride}, got {imgsz}")
    images = select_images(calib_images, max_images)
    reader = LetterboxReader(images, model, imgsz, stride)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    method = methods[calibration.lower()]
    with tempfile.TemporaryDirectory(prefix="pitchside-quant-") as tmp:
        source = Path(tmp) / "prepared.onnx"
        prepared = _prepare(model, source, preprocess)
        excluded = sorted(float_nodes(prepared.graph, float_tail, float_head_convs))
        log.info(
            "quantizing %s on %d calibration images (%s, %s activations); %d nodes kept in float",
            fp32_onnx.name, len(images), method.name, activation_type, len(excluded),
        )  # fmt: skip
        extra: dict[str, Any] = {"ActivationSymmetric": False, "WeightSymmetric": True}
        if method is CalibrationMethod.Percentile:
            extra["CalibPercentile"] = percentile
            # The histogram calibrator keeps every activation of every image until it has
            # collected them all (GBs for 64 images at 640): fold them in one batch at a
            # time. Per-batch collection also lets batches of different sizes mix.
            extra["CalibStridedMinMax"] = 1
        # (MinMax keeps only a min and a max per tensor and batch. Its CalibMaxIntermediate-
        # Outputs option would drop data: ONNX Runtime 1.32 clears without merging.)
        quantized = Path(tmp) / "quantized.onnx"
        chatter = io.StringIO()  # the histogram calibrator print()s its progress
        try:
            with contextlib.redirect_stdout(chatter):
                quantize_static(
                    model_input=str(source),
                    model_output=str(quantized),
                    calibration_data_reader=reader,
                    quant_format=QuantFormat.QDQ,
                    per_channel=True,
                    reduce_range=False,
                    activation_type=types[activation_type.lower()],
                    weight_type=QuantType.QInt8,
                    nodes_to_exclude=excluded,
                    calibrate_method=method,
                    extra_options=extra,
                )
        except InvalidRequestError:  # an image the reader could not decode
            raise
        except Exception as exc:  # onnxruntime raises plain ValueError/RuntimeError
            raise ModelError(f"ONNX Runtime could not quantize {fp32_onnx.name}: {exc}") from exc
        log.debug("calibration: %s", chatter.getvalue().strip())
        note = (
            f"int8 static QDQ by onnxruntime: per-channel QInt8 weights, {activation_type} "
            f"activations, {method.name} calibration on {len(images)} images at imgsz {imgsz}, "
            f"{len(excluded)} head nodes in float"
        )
        _copy_metadata(model, quantized, note)
        shutil.move(str(quantized), str(out))  # only a complete model ever lands at ``out``
    return out


def select_images(images: Sequence[Path], max_images: int) -> list[Path]:
    """At most ``max_images`` of ``images``, spread evenly (neighbouring files are often
    consecutive frames of one clip), each checked to exist and to be in a readable format.

    Raises:
        InvalidRequestError: no images, or one that is missing or not an image OpenCV reads.
    """
    images = [Path(p) for p in images]
    if not images:
        raise InvalidRequestError(
            "no calibration images: INT8 calibration needs images like those the model will "
            "serve (a folder of images or a data set split)"
        )
    if len(images) > max_images:
        step = len(images) / max_images
        images = [images[int(i * step)] for i in range(max_images)]
    for path in images:
        if not path.is_file():
            raise InvalidRequestError(f"calibration image {path} does not exist")
        if not cv2.haveImageReader(str(path)):
            raise InvalidRequestError(f"calibration image {path} is not an image OpenCV can read")
    return images


class LetterboxReader:
    """Calibration batches letterboxed exactly as a worker letterboxes its frames.

    An ONNX Runtime ``CalibrationDataReader`` by what it does (``get_next``, ``set_range``,
    ``len``, iteration), not by inheritance: onnxruntime ships no type information, and that
    ABC's ``__subclasshook__`` accepts any class with a ``get_next`` anyway.

    Each batch is one image at its own :func:`~workers.engines.input_hw_for` size for a
    dynamic model; a fixed input size is used as it is, and a fixed batch of ``N`` is filled
    with ``N`` images of the same size (the last one repeats images). Every image is decoded
    once up front for its size, so an undecodable one fails before the calibration starts,
    and again when its batch is due: 64 decoded 1080p frames would hold 400 MB.

    Raises:
        InvalidRequestError: an image cannot be decoded.
    """

    def __init__(self, images: Sequence[Path], model: Any, imgsz: int, stride: int) -> None:
        self.images = list(images)
        self.imgsz = imgsz
        self.stride = stride
        tensor = model.graph.input[0]
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                for d in tensor.type.tensor_type.shape.dim]  # fmt: skip
        self.input_name = tensor.name
        self.batch, _, self.fixed_h, self.fixed_w = dims
        self._batches = self._plan()
        self._start, self._end = 0, len(self._batches)
        self._next = 0

    def _hw(self, path: Path) -> tuple[int, int]:
        if self.fixed_h and self.fixed_w:
            return self.fixed_h, self.fixed_w
        src_hw = _image_hw(path)
        h, w = input_hw_for(src_hw, self.imgsz, self.stride)
        return self.fixed_h or h, self.fixed_w or w

    def _plan(self) -> list[tuple[tuple[int, int], list[Path]]]:
        """Batches of (input size, images): same-size images together, order kept."""
        by_hw: dict[tuple[int, int], list[Path]] = defaultdict(list)
        for path in self.images:
            by_hw[self._hw(path)].append(path)
        size = self.batch or 1
        batches = []
        for hw, paths in by_hw.items():
            for start in range(0, len(paths), size):
                chunk = paths[start : start + size]
                chunk += [chunk[i % len(chunk)] for i in range(size - len(chunk))]
                batches.append((hw, chunk))
        return batches

    def __len__(self) -> int:
        return len(self._batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._start, self._end = start_index, min(end_index, len(self._batches))
        self._next = self._start

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= self._end:
            return None
        hw, paths = self._batches[self._next]
        self._next += 1
        images = []
        for path in paths:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise InvalidRequestError(f"calibration image {path} cannot be decoded")
            images.append(image)
        batch = np.empty((len(images), 3, *hw), dtype=np.float32)
        fill_batch(images, batch)  # what Detector.prepare does with a worker's frames
        return {self.input_name: batch}

    def __iter__(self) -> LetterboxReader:  # as CalibrationDataReader iterates
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        batch = self.get_next()
        if batch is None:
            raise StopIteration
        return batch


def float_nodes(graph: Any, tail: bool = True, head_convs: bool = True) -> set[str]:
    """Names of the nodes to keep in float: the decoding tail and optionally the head's
    last convolutions.

    Walking back from the graph's outputs, the first ``Conv`` nodes met on each path are the
    head's last convolutions, except the DFL's fixed conv (a weighted sum over a softmax,
    walked through); ``Shape`` nodes end a path too (they read a size, not values).
    The tail is every node met on the way plus everything downstream of those convolutions:
    for YOLOv8/11 the per-level concatenations, the DFL softmax and its fixed conv, the
    anchor grid built from the feature map sizes, strides, sigmoid and the output concat.

    Raises:
        ModelError: an output is not computed by convolutions (not a YOLO detector).
    """
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[Any]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)
    boundary: dict[str, Any] = {}
    behind: set[str] = set()  # met walking back, convolutions excluded
    graph_inputs = {i.name for i in graph.input} - {i.name for i in graph.initializer}
    stack = [producer[o.name] for o in graph.output if o.name in producer]
    while stack:
        node = stack.pop()
        if node.name in behind or node.name in boundary:
            continue
        if node.op_type == "Conv" and not _is_dfl(node, producer):
            boundary[node.name] = node
            continue
        behind.add(node.name)
        if node.op_type == "Shape":
            continue
        if any(i in graph_inputs for i in node.input):
            raise ModelError("the model's output is computed from its input without "
                             "convolutions: not a YOLO detection export")  # fmt: skip
        stack.extend(producer[i] for i in node.input if i in producer)
    if not boundary:
        raise ModelError("the model's output is not computed by convolutions: not a YOLO export")
    downstream: set[str] = set()
    stack = [c for n in boundary.values() for o in n.output for c in consumers[o]]
    while stack:
        node = stack.pop()
        if node.name in downstream:
            continue
        downstream.add(node.name)
        stack.extend(c for o in node.output for c in consumers[o])
    out = behind | downstream if tail else set()
    if head_convs:
        out |= set(boundary) - downstream
    return out


def _is_dfl(conv: Any, producer: dict[str, Any]) -> bool:
    """Whether ``conv`` is the Distribution Focal Loss integral: a conv over a softmax."""
    node = producer.get(conv.input[0])
    while node is not None and node.op_type in ("Transpose", "Reshape"):
        node = producer.get(node.input[0])
    return node is not None and node.op_type == "Softmax"


def _load_detection_model(path: Path) -> Any:
    import onnx

    if not path.is_file():
        raise ModelError(f"no ONNX model at {path}")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError and friends
        raise ModelError(f"{path} is not an ONNX model: {exc}") from exc
    meta = _metadata(model)
    model_id = path.name
    check_task(model_id, meta)
    parse_names(model_id, meta)  # raises when the names are missing
    graph = model.graph
    if any(n.op_type in _QDQ_OPS for n in graph.node):
        raise ModelError(f"model {model_id!r} is already quantized; quantize the fp32 export")
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    float_type = 1  # onnx.TensorProto.FLOAT
    if (
        len(inputs) != 1
        or inputs[0].type.tensor_type.elem_type != float_type
        or len(inputs[0].type.tensor_type.shape.dim) != 4
    ):
        raise ModelError(
            f"model {model_id!r} is not a float32 YOLO detection export: it takes "
            f"{[i.name for i in inputs]}, expected one float32 (batch, 3, height, width) input"
        )
    out_dims = [d.dim_value if d.HasField("dim_value") else d.dim_param or None
                for d in graph.output[0].type.tensor_type.shape.dim]  # fmt: skip
    check_detection_output(model_id, out_dims, len(parse_names(model_id, meta)))
    return model


def _metadata(model: Any) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def _prepare(model: Any, dest: Path, preprocess: bool) -> Any:
    """Write the model to quantize at ``dest`` (after ``quant_pre_process`` if asked) and
    return it, every node named (``nodes_to_exclude`` works by name)."""
    import onnx

    onnx.save(model, str(dest))
    if preprocess:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        optimized = dest.with_name("optimized.onnx")
        try:
            # ONNX shape inference and ORT's basic optimisations (constant folding) only:
            # symbolic shape inference is for transformers, and where it fails it leaves a
            # copy of the model in the working directory (onnxruntime 1.32).
            quant_pre_process(str(dest), str(optimized), skip_symbolic_shape=True)
            optimized.replace(dest)
        except Exception as exc:  # an optimisation only: quantize the plain export instead
            log.warning("quant_pre_process failed (%s); quantizing the export as it is", exc)
    prepared = onnx.load(str(dest))
    used = {n.name for n in prepared.graph.node}
    for i, node in enumerate(prepared.graph.node):
        if not node.name:
            node.name = _unique(f"{node.op_type}_{i}", used)
    onnx.save(prepared, str(dest))
    return prepared


def _unique(name: str, used: set[str]) -> str:
    candidate, k = name, 0
    while candidate in used:
        k += 1
        candidate = f"{name}_{k}"
    used.add(candidate)
    return candidate


def _copy_metadata(source: Any, path: Path, note: str) -> None:
    """Give the quantized model the export's metadata (names, stride, task, imgsz ...)."""
    import onnx

    quantized = onnx.load(str(path))
    del quantized.metadata_props[:]
    for prop in source.metadata_props:
        if prop.key != QUANT_METADATA_KEY:
            quantized.metadata_props.add(key=prop.key, value=prop.value)
    quantized.metadata_props.add(key=QUANT_METADATA_KEY, value=note)
    quantized.doc_string = source.doc_string
    onnx.save(quantized, str(path))


def _image_hw(path: Path) -> tuple[int, int]:
    """Height and width of an image (decoded: OpenCV has no header-only reader)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InvalidRequestError(f"calibration image {path} cannot be decoded")
    return image.shape[0], image.shape[1]


def image_files(paths: Iterable[Path]) -> list[Path]:
    """Sorted image files under folders and the files given."""
    from training.dataset import IMAGE_SUFFIXES

    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            out.append(path)
    return out
