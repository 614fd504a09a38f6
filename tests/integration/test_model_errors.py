"""Every way a model can be wrong gives a ModelError with a message a user can act on;
tiny ONNX graphs built here exercise the shape checks and the batch handling."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pitchside.errors import ModelError, SettingsError
from pitchside.settings import Settings
from tests.conftest import COCO_ONNX, IMAGES_DIR, require_asset
from tests.integration.engine_helpers import TWO_CLASSES, tiny_onnx
from workers.engines import inspect_model, load_detector

SETTINGS = Settings.from_env({}).replace(threads=1, imgsz=128)
REPO = Path(__file__).resolve().parents[2]


def _load(uri: str | Path) -> None:
    load_detector(str(uri), SETTINGS)


def test_load_detector_raises_when_file_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"model file .*nope\.onnx.* does not exist"):
        _load(tmp_path / "nope.onnx")


def test_load_detector_raises_when_onnx_file_holds_text(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_text("this is not a model\n")
    with pytest.raises(ModelError, match="'model.onnx' is not an ONNX model"):
        _load(path)


def test_load_detector_raises_when_onnx_file_is_a_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "frame.onnx"
    path.write_bytes(next(require_asset(IMAGES_DIR).glob("*.jpg")).read_bytes())
    with pytest.raises(ModelError, match="is not an ONNX model"):
        _load(path)


def test_load_detector_raises_when_model_has_no_class_names(tmp_path: Path) -> None:
    path = tiny_onnx(tmp_path / "bare.onnx")
    with pytest.raises(ModelError, match="has no class names in its metadata"):
        _load(path)


def test_load_detector_raises_when_model_is_a_classifier_by_metadata(tmp_path: Path) -> None:
    path = tiny_onnx(tmp_path / "cls.onnx", metadata={**TWO_CLASSES, "task": "classify"})
    with pytest.raises(ModelError, match="is a 'classify' model; workers need a detection model"):
        _load(path)


def test_load_detector_raises_when_output_is_not_detection_shaped(tmp_path: Path) -> None:
    # given a model that says "detect" but outputs (B, 6) like a classifier
    path = tiny_onnx(tmp_path / "flat.onnx", flat_output=True, metadata=TWO_CLASSES)
    with pytest.raises(ModelError, match=r"not a detection model: its output is shaped"):
        _load(path)


def test_load_detector_raises_when_output_channels_do_not_match_names(tmp_path: Path) -> None:
    # given (B, 4 + 5, A) output but two class names
    path = tiny_onnx(tmp_path / "nc.onnx", out_channels=9, metadata=TWO_CLASSES)
    with pytest.raises(ModelError, match=r"expected \(batch, 6, anchors\) for 4 box values and 2"):
        _load(path)


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("models:/football-detector@champion", "is not in the registry"),
        ("models:/football-detector", "is not of the form models:/NAME@ALIAS"),
        (
            "/somewhere/best.pt",
            "is a PyTorch checkpoint; workers serve ONNX and OpenVINO exports: export it first",
        ),
    ],
)
def test_load_detector_raises_when_uri_is_not_an_onnx_file(
    uri: str, message: str, tmp_path: Path
) -> None:
    with pytest.raises(ModelError, match=message):
        load_detector(uri, SETTINGS.replace(data_dir=tmp_path))


def test_load_detector_raises_when_file_is_of_no_known_kind(tmp_path: Path) -> None:
    path = tmp_path / "model.engine"
    path.write_bytes(b"a TensorRT plan, say")
    with pytest.raises(ModelError, match="is of no kind workers serve: expected an .onnx file"):
        _load(path)


def test_load_detector_raises_when_uri_is_a_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="is a folder"):
        _load(tmp_path)


def test_load_detector_raises_settings_error_naming_available_providers() -> None:
    settings = SETTINGS.replace(providers="CUDAExecutionProvider,NopeProvider")
    with pytest.raises(SettingsError, match="CPUExecutionProvider") as info:
        load_detector(str(require_asset(COCO_ONNX)), settings)
    assert "NopeProvider" in str(info.value)


def test_dynamic_model_runs_batch_together_at_rect_input_size(tmp_path: Path) -> None:
    # given a valid two-class model with dynamic batch, height and width
    detector = load_detector(str(tiny_onnx(tmp_path / "dyn.onnx", metadata=TWO_CLASSES)), SETTINGS)
    # when three 16:9 frames are prepared and inferred at imgsz 128
    images = [np.full((1080, 1920, 3), 100, np.uint8) for _ in range(3)]
    prepared = detector.prepare(images)
    raw = detector.infer(prepared)
    # then the input is 72 px rounded up to 96 by 128, one call gives all three outputs
    assert detector.input_hw_for((1080, 1920)) == (96, 128)
    assert prepared.batch.shape == (3, 3, 96, 128)
    assert raw.shape == (3, 6, 96 * 128)
    assert detector.postprocess(raw, prepared) == [[], [], []], "zero weights: no boxes"


def test_fixed_batch_model_runs_in_chunks_when_batch_is_larger(tmp_path: Path) -> None:
    # given a model exported with a fixed batch of 2 and a fixed 64x64 input
    path = tiny_onnx(tmp_path / "b2.onnx", batch=2, hw=(64, 64), metadata=TWO_CLASSES)
    detector = load_detector(str(path), SETTINGS)
    # when five images are detected
    prepared = detector.prepare([np.zeros((50, 80, 3), np.uint8)] * 5)
    # then the fixed input size is used and the output has one row per image
    assert detector.input_hw_for((1080, 1920)) == (64, 64)
    assert detector.infer(prepared).shape == (5, 6, 64 * 64)


def test_inspect_model_reports_names_and_input_shape_of_real_model() -> None:
    info = inspect_model(str(require_asset(COCO_ONNX)), SETTINGS)
    assert info.model_id == "yolov8n_int8.onnx"
    assert info.names[0] == "person" and len(info.names) == 80
    assert info.input_shape == (1, 3, 640, 640)
    assert "CPUExecutionProvider" in info.providers


def test_inspect_model_raises_when_model_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        inspect_model(str(tmp_path / "missing.onnx"), SETTINGS)


def test_inspect_model_checks_the_providers_of_its_settings() -> None:
    # given PITCHSIDE_PROVIDERS naming a provider this onnxruntime lacks
    settings = SETTINGS.replace(providers="NopeProvider")
    # then the check fails as a worker would, naming it and the available ones
    with pytest.raises(SettingsError, match="NopeProvider") as info:
        inspect_model(str(require_asset(COCO_ONNX)), settings)
    assert "CPUExecutionProvider" in str(info.value)


def test_inspect_model_reads_the_registry_of_its_settings(tmp_path: Path) -> None:
    # given MLFLOW_TRACKING_URI pointing at a store of its own
    store = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    settings = SETTINGS.replace(mlflow_tracking_uri=store, data_dir=tmp_path / "data")
    # then a registry URI is looked up there, not in the default store
    with pytest.raises(ModelError, match=r"is not in the registry at sqlite:///.*elsewhere\.db"):
        inspect_model("models:/football-detector@champion", settings)


def test_worker_command_exits_2_with_clear_log_line_when_model_is_missing(tmp_path: Path) -> None:
    # given a worker pointed at a model that does not exist (and at no Redis at all)
    env = {
        **os.environ,
        "PITCHSIDE_MODEL": str(tmp_path / "gone.onnx"),
        "REDIS_URL": "redis://127.0.0.1:9",
    }
    # when it starts
    proc = subprocess.run(
        [sys.executable, "-m", "workers", "--name", "w-test"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # then it exits 2 at once with one line naming the model
    assert proc.returncode == 2, proc.stderr
    assert "worker cannot run: model file" in proc.stderr and "gone.onnx" in proc.stderr
    assert "Traceback" not in proc.stderr
