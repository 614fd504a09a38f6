"""Which runtime serves which model: the loader's table, decided from the path alone, and
runtimes imported only when a model needs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pitchside.errors import ModelError, SettingsError
from workers.engines.base import infer_in_chunks
from workers.engines.checks import check_task, parse_names, parse_stride
from workers.engines.loading import ModelKind, model_file
from workers.engines.openvino import resolve_providers

REPO = Path(__file__).resolve().parents[2]


def _openvino_export(folder: Path, stem: str = "best") -> Path:
    folder.mkdir()
    (folder / f"{stem}.xml").write_text("<net/>")
    (folder / f"{stem}.bin").write_bytes(b"\0")
    (folder / "metadata.yaml").write_text("task: detect\n")
    return folder


def test_onnx_file_is_served_by_onnxruntime(tmp_path: Path) -> None:
    path = tmp_path / "best.onnx"
    path.write_bytes(b"\0")
    assert model_file(path) == (ModelKind.ONNX, path)


def test_openvino_folder_and_its_xml_are_served_by_openvino(tmp_path: Path) -> None:
    folder = _openvino_export(tmp_path / "best_openvino_model")
    assert model_file(folder) == (ModelKind.OPENVINO, folder / "best.xml")
    assert model_file(folder / "best.xml") == (ModelKind.OPENVINO, folder / "best.xml")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "best.pt",
            "is a PyTorch checkpoint; workers serve ONNX and OpenVINO exports: export it first",
        ),
        ("missing.onnx", "does not exist"),
        ("models:/football-detector@champion", "resolve registry URIs with pitchside.models"),
    ],
)
def test_paths_that_are_not_models_are_refused(tmp_path: Path, name: str, message: str) -> None:
    path = Path(name) if name.startswith("models:") else tmp_path / name
    if path.suffix == ".pt":
        path.write_bytes(b"\0")  # refused for what it is, not because it is missing
    with pytest.raises(ModelError, match=message):
        model_file(path)


def test_folder_without_a_graph_is_refused(tmp_path: Path) -> None:
    (tmp_path / "weights.onnx").write_bytes(b"\0")
    with pytest.raises(ModelError, match=r"is a folder with no \.xml file"):
        model_file(tmp_path)


def test_openvino_runs_on_cpu_for_auto_or_a_list_that_allows_the_cpu() -> None:
    assert resolve_providers("auto") == ["OpenVINO:CPU"]
    assert resolve_providers("CUDAExecutionProvider,CPUExecutionProvider") == ["OpenVINO:CPU"]
    with pytest.raises(SettingsError, match="got 'TensorrtExecutionProvider'"):
        resolve_providers("TensorrtExecutionProvider")


def test_metadata_validators_take_onnx_strings_and_yaml_values() -> None:
    assert parse_names("m", {"names": "{0: 'player', 1: 'ball'}"}) == {0: "player", 1: "ball"}
    assert parse_names("m", {"names": {0: "player", 1: "ball"}}) == {0: "player", 1: "ball"}
    assert parse_stride("m", {"stride": "16"}, 32) == 16
    assert parse_stride("m", {"stride": 64}, 32) == 64 and parse_stride("m", {}, 32) == 32
    check_task("m", {"task": "detect", "end2end": False})
    for end2end in ("True", True):
        with pytest.raises(ModelError, match="end-to-end"):
            check_task("m", {"end2end": end2end})
    with pytest.raises(ModelError, match="unreadable class names"):
        parse_names("m", {"names": 7})


def test_fixed_batch_runs_in_padded_chunks_and_dynamic_batch_in_one_call() -> None:
    calls: list[int] = []

    def run(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        return batch[:, :1, 0, :2] * 2  # (n, 1, 2), row i from image i

    batch = np.arange(5 * 3 * 2 * 2, dtype=np.float32).reshape(5, 3, 2, 2)
    out = infer_in_chunks(batch, 2, run)
    assert calls == [2, 2, 2] and out.shape == (5, 1, 2)
    np.testing.assert_array_equal(out, batch[:, :1, 0, :2] * 2)
    calls.clear()
    assert infer_in_chunks(batch, None, run).shape == (5, 1, 2) and calls == [5]


def test_importing_the_engines_imports_no_runtime() -> None:
    code = (
        "import sys, workers.engines; "
        "loaded = [m for m in ('onnxruntime', 'openvino') if m in sys.modules]; "
        "assert not loaded, loaded"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
