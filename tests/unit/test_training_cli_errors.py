"""A user's mistake at a training command ends as one line on stderr and exit status 2.

Each case runs the real ``pitchside`` command in a subprocess, as a user would, and fails it
before anything slow (no Ultralytics, no MLflow): the line must name what is wrong, and no
traceback may reach the terminal.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
USAGE = 2


def tiny_data_set(root: Path, splits: tuple[str, ...] = ("train", "val")) -> Path:
    """A YOLO data set of one 32x32 image and label per split; returns its data.yaml."""
    for split in splits:
        (root / split / "images").mkdir(parents=True)
        (root / split / "labels").mkdir(parents=True)
        cv2.imwrite(str(root / split / "images" / "a.png"), np.zeros((32, 32, 3), np.uint8))
        (root / split / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    lines = [f"path: {root}", *(f"{s}: {s}/images" for s in splits), "names: [player]"]
    data = root / "data.yaml"
    data.write_text("\n".join(lines) + "\n")
    return data


def run_pitchside(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PITCHSIDE_DATA_DIR": str(tmp_path / "state"),
        "PYTHONPATH": str(REPO),
    }
    return subprocess.run(
        [sys.executable, "-m", "pitchside", *args],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )  # fmt: skip


# Each case: (command line from tmp_path, words the one error line must contain).
Case = Callable[[Path], tuple[list[str], list[str]]]


def train_missing_data(tmp: Path) -> tuple[list[str], list[str]]:
    base = tmp / "base.pt"
    base.write_bytes(b"not read: the data set is checked first")
    missing = tmp / "missing.yaml"
    named = str(missing.resolve())
    return ["train", "--data", str(missing), "--base", str(base)], [named, "no data set"]


def train_missing_base(tmp: Path) -> tuple[list[str], list[str]]:
    data = tiny_data_set(tmp / "data")
    base = tmp / "nope.pt"
    return ["train", "--data", str(data), "--base", str(base)], [str(base), "no base checkpoint"]


def train_data_set_without_the_promotion_split(tmp: Path) -> tuple[list[str], list[str]]:
    data = tiny_data_set(tmp / "data")  # train and val only; promotion scores on test
    base = tmp / "base.pt"
    base.write_bytes(b"not read")
    return ["train", "--data", str(data), "--base", str(base)], [str(data.resolve()), "'test'"]


def train_data_yaml_without_names(tmp: Path) -> tuple[list[str], list[str]]:
    data = tmp / "data.yaml"
    data.write_text("train: train/images\nval: val/images\n")
    base = tmp / "base.pt"
    base.write_bytes(b"not read")
    return ["train", "--data", str(data), "--base", str(base)], [str(data.resolve()), "'names'"]


def evaluate_missing_model(tmp: Path) -> tuple[list[str], list[str]]:
    data = tiny_data_set(tmp / "data", ("train", "val", "test"))
    present = tmp / "present.onnx"
    present.write_bytes(b"not read: every model is checked before the first is scored")
    missing = tmp / "missing.onnx"
    return ["evaluate", str(present), str(missing), "--data", str(data)], [str(missing)]


def evaluate_missing_data_set(tmp: Path) -> tuple[list[str], list[str]]:
    model = tmp / "model.onnx"
    model.write_bytes(b"not read")
    missing = tmp / "gone" / "data.yaml"
    named = str(missing.resolve())
    return ["evaluate", str(model), "--data", str(missing)], [named, "no data set"]


def export_missing_checkpoint(tmp: Path) -> tuple[list[str], list[str]]:
    missing = tmp / "missing.pt"
    return ["export", str(missing)], [str(missing), "no checkpoint"]


def models_promote_missing_data_set(tmp: Path) -> tuple[list[str], list[str]]:
    onnx = tmp / "best.onnx"
    onnx.write_bytes(b"not read")
    missing = tmp / "missing.yaml"
    args = ["models", "promote", "run-id", "--data", str(missing), "--onnx", str(onnx)]
    return args, [str(missing.resolve()), "no data set"]


def tiny_folders(root: Path, splits: tuple[str, ...] = ("train", "val")) -> Path:
    """Classification folders: one 32x32 image of class ``golf`` per split."""
    for split in splits:
        (root / split / "golf").mkdir(parents=True)
        cv2.imwrite(str(root / split / "golf" / "a.png"), np.zeros((32, 32, 3), np.uint8))
    return root


def classify_given_a_data_yaml(tmp: Path) -> tuple[list[str], list[str]]:
    data = tiny_data_set(tmp / "data")
    base = tmp / "base.pt"
    base.write_bytes(b"not read")
    args = ["train", "--task", "classify", "--data", str(data), "--base", str(base)]
    return args, [str(data.resolve()), "is a file", "train/<class>/"]


def classify_without_val(tmp: Path) -> tuple[list[str], list[str]]:
    data = tiny_folders(tmp / "balls", ("train",))
    base = tmp / "base.pt"
    base.write_bytes(b"not read")
    args = ["train", "--task", "classify", "--data", str(data), "--base", str(base)]
    return args, [str(data.resolve()), "no val/ folder"]


def classify_without_the_promotion_split(tmp: Path) -> tuple[list[str], list[str]]:
    data = tiny_folders(tmp / "balls")
    base = tmp / "base.pt"
    base.write_bytes(b"not read")
    args = ["train", "--task", "classify", "--data", str(data), "--base", str(base),
            "--promote-split", "test"]  # fmt: skip
    return args, [str(data.resolve()), "no 'test' split"]


def classify_missing_base(tmp: Path) -> tuple[list[str], list[str]]:
    data = tiny_folders(tmp / "balls")
    base = tmp / "nope.pt"
    args = ["train", "--task", "classify", "--data", str(data), "--base", str(base)]
    return args, [str(base), "no base checkpoint"]


def evaluate_classifier_given_a_checkpoint(tmp: Path) -> tuple[list[str], list[str]]:
    data = tiny_folders(tmp / "balls")
    model = tmp / "best.pt"
    model.write_bytes(b"not read")
    return ["evaluate", str(model), "--data", str(data), "--split", "val"], [str(model), "ONNX"]


CASES: dict[str, Case] = {
    "classify-given-a-data-yaml": classify_given_a_data_yaml,
    "classify-without-val": classify_without_val,
    "classify-no-promotion-split": classify_without_the_promotion_split,
    "classify-missing-base": classify_missing_base,
    "evaluate-classifier-checkpoint": evaluate_classifier_given_a_checkpoint,
    "train-missing-data": train_missing_data,
    "train-missing-base": train_missing_base,
    "train-no-promotion-split": train_data_set_without_the_promotion_split,
    "train-yaml-without-names": train_data_yaml_without_names,
    "evaluate-missing-model": evaluate_missing_model,
    "evaluate-missing-data": evaluate_missing_data_set,
    "export-missing-checkpoint": export_missing_checkpoint,
    "models-promote-missing-data": models_promote_missing_data_set,
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_user_error_is_one_line_and_exit_status_2(case: Case, tmp_path: Path):
    # given a command line with one mistake in it
    args, expected = case(tmp_path)
    # when the command runs
    result = run_pitchside(tmp_path, *args)
    # then it ends with the usage status and one line naming the problem, no traceback
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == USAGE, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"pitchside {args[0]}"), lines[0]
    for word in expected:
        assert word in lines[0], (word, lines[0])
    assert not (tmp_path / "state" / "runs").exists()  # nothing was started


@pytest.mark.parametrize("command", ["train", "evaluate", "export", "models"])
def test_an_imgsz_that_is_no_multiple_of_32_is_a_usage_error(command: str, tmp_path: Path):
    # given an --imgsz the network cannot take, every other argument well formed
    data = tiny_data_set(tmp_path / "data", ("train", "val", "test"))
    model = tmp_path / "model.pt"
    model.write_bytes(b"not read")
    args = {
        "train": ["train", "--data", str(data), "--base", str(model)],
        "evaluate": ["evaluate", str(model), "--data", str(data)],
        "export": ["export", str(model)],
        "models": ["models", "promote", "run-id", "--data", str(data), "--onnx", str(model)],
    }[command]
    # when the command runs
    result = run_pitchside(tmp_path, *args, "--imgsz", "650")
    # then argparse refuses it: its usage, then one line naming the option and the value
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == USAGE, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("usage: pitchside"), result.stderr
    assert all(line.startswith(" ") for line in lines[1:-1]), result.stderr  # usage goes on
    assert lines[-1].startswith("pitchside "), lines[-1]
    assert "argument --imgsz: must be a multiple of 32" in lines[-1], lines[-1]
    assert "got 650" in lines[-1], lines[-1]
