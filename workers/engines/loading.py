"""From a model URI to a warmed-up :class:`~workers.engines.detector.Detector`.

Which runtime opens a model is decided by what the model is, in one table
(:func:`runtime_for`); each runtime is imported only when a model needs it, so a missing
optional runtime only matters to the models that need it:

=================================================  ======================================
model                                              runtime
=================================================  ======================================
``model.onnx``                                     ONNX Runtime (:mod:`workers.engines.ort`)
``model.xml`` (``.bin`` beside it), or the folder  OpenVINO (:mod:`workers.engines.openvino`,
holding them (``yolo export format=openvino``)     the ``openvino`` extra)
``model.pt``                                       refused: export it first
=================================================  ======================================

A ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` URI is first resolved to a local file
with :func:`pitchside.models.resolve`.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from pathlib import Path

from pitchside.errors import ModelError
from pitchside.models import ResolvedModel, is_registry_uri, resolve
from pitchside.settings import Settings
from workers.engines.base import ModelInfo, Runtime
from workers.engines.detector import Detector

log = logging.getLogger(__name__)

CHECK_CONF, CHECK_IOU = 0.25, 0.7  # inspect_model's check inference; no box is looked at


class ModelKind(StrEnum):
    ONNX = "onnx"
    OPENVINO = "openvino"


def runtime_for(kind: ModelKind) -> Runtime:
    """The runtime that serves ``kind``, imported now.

    Raises:
        ModelError: its optional runtime is not installed (raised on opening a model).
    """
    match kind:
        case ModelKind.ONNX:
            from workers.engines import ort

            return ort.RUNTIME
        case ModelKind.OPENVINO:
            from workers.engines import openvino

            return openvino.RUNTIME


def model_file(path: Path) -> tuple[ModelKind, Path]:
    """What kind of model ``path`` is, and the file its runtime opens.

    Raises:
        ModelError: a registry URI, a PyTorch checkpoint, a path that does not exist, a
            folder without an OpenVINO export, an ``.xml`` without its ``.bin``, or a file
            of no known kind.
    """
    if is_registry_uri(str(path)):
        raise ModelError(f"model {str(path)!r}: resolve registry URIs with pitchside.models")
    if path.suffix == ".pt":
        raise ModelError(
            f"model {str(path)!r} is a PyTorch checkpoint; workers serve ONNX and OpenVINO "
            f"exports: export it first (yolo export model={path} format=onnx) and point "
            "PITCHSIDE_MODEL at the .onnx file"
        )
    if not path.exists():
        raise ModelError(f"model file {str(path)!r} does not exist")
    if path.is_dir():
        xmls = sorted(path.glob("*.xml"))
        if len(xmls) != 1:
            found = f"{len(xmls)} .xml files" if xmls else "no .xml file"
            raise ModelError(
                f"model {str(path)!r} is a folder with {found}; workers serve an .onnx file or "
                "an OpenVINO export folder (one <name>.xml, its <name>.bin and metadata.yaml)"
            )
        path = xmls[0]
    if path.suffix == ".onnx":
        return ModelKind.ONNX, path
    if path.suffix == ".xml":
        if not path.with_suffix(".bin").is_file():
            raise ModelError(
                f"model {str(path)!r} is an OpenVINO graph without its weights: "
                f"{path.with_suffix('.bin').name} is not beside it"
            )
        return ModelKind.OPENVINO, path
    raise ModelError(
        f"model {str(path)!r} is of no kind workers serve: expected an .onnx file or an "
        "OpenVINO export (<name>.xml with its .bin, or the folder holding them)"
    )


def load_detector(model_uri: str, settings: Settings) -> Detector:
    """Load, check and warm up the detector ``model_uri`` names (a path or ``models:/...``).

    Uses ``settings.providers``, ``threads``, ``conf``, ``iou`` and ``imgsz``, and for a
    registry URI ``tracking_uri`` and ``data_dir``.

    Raises:
        ModelError: the model is missing, of no servable kind, or not a YOLO detection model.
        SettingsError: ``settings.providers`` names a provider the model's runtime lacks.
    """
    return load_resolved(resolve(model_uri, settings), settings)


def load_resolved(model: ResolvedModel, settings: Settings, lanes: int = 1) -> Detector:
    """As :func:`load_detector`, for a model already resolved to a local file; ``lanes`` is
    how many callers will run it at once, which shares the threads out among them
    (:meth:`Settings.threads_per_session`)."""
    kind, path = model_file(model.path)
    runtime = runtime_for(kind)
    threads = settings.threads_per_session(lanes)
    engine = runtime.open(path, runtime.providers(settings.providers), threads, lanes)
    detector = Detector(
        engine, conf=settings.conf, iou=settings.iou, imgsz=settings.imgsz,
        model_id=model.model_id,
    )  # fmt: skip
    detector.warmup()
    log.info(
        "loaded %s: %d classes, input %s, providers %s, %d threads for each of %d lanes",
        detector.model_id,
        len(engine.names),
        engine.input_shape,
        ",".join(engine.providers),
        threads,
        lanes,
    )
    return detector


def load_for_worker(model: ResolvedModel, settings: Settings) -> tuple[Detector, Detector]:
    """A worker's two sessions of one model: ``(live, lanes)``.

    ``live`` has every thread and runs one batch at a time: the lowest latency, for a worker
    serving only live streams. ``lanes`` gives each of ``settings.lanes`` batches side by side
    its share of the threads: the most frames per second, for analyse streams. With one lane
    they are the same detector.
    """
    live = load_resolved(model, settings)
    if settings.lanes == 1:
        return live, live
    return live, load_resolved(model, settings, settings.lanes)


def inspect_model(model_uri: str, settings: Settings) -> ModelInfo:
    """Check a model without serving it, so that ``pitchside up`` fails fast.

    Resolves ``model_uri`` as a worker would (the registry at ``settings.tracking_uri``),
    checks ``settings.providers`` against the model's runtime, then loads the model on the
    CPU with one thread and runs one inference.

    Returns:
        Model id, class names, input shape (``None`` for dynamic) and the providers a worker
        would use.

    Raises:
        ModelError: as :func:`load_detector`.
        SettingsError: ``settings.providers`` names a provider the model's runtime lacks.
    """
    model = resolve(model_uri, settings)
    kind, path = model_file(model.path)
    runtime = runtime_for(kind)
    providers = runtime.providers(settings.providers)
    engine = runtime.open(path, runtime.check_providers, 1, 1)
    Detector(engine, conf=CHECK_CONF, iou=CHECK_IOU, imgsz=settings.imgsz).warmup()
    return ModelInfo(
        model_id=model.model_id,
        names=dict(engine.names),
        input_shape=engine.input_shape,
        providers=providers,
    )
