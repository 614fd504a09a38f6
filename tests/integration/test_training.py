"""A tiny real training run tracked in a temporary sqlite MLflow store, its ONNX export scored
through the serving engine, and champion/challenger promotion on real evaluations."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pitchside.models import tracking_store
from pitchside.settings import Settings
from tests.conftest import ASSETS, require_asset
from training.evaluate import evaluate
from training.models_cli import list_versions
from training.promote import champion_model_file, promote
from training.tracking import CHAMPION, EXPERIMENT, REGISTERED_MODEL
from training.train import TrainConfig, TrainResult, train

pytestmark = pytest.mark.slow

DATA = ASSETS / "datasets" / "football-players-detection" / "data.yaml"
BASE = ASSETS / "models" / "yolov8n-coco-dequant.pt"
IMGSZ = 160


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    require_asset(DATA)
    require_asset(BASE)
    data_dir = tmp_path_factory.mktemp("train-data")
    return Settings.from_env({}).replace(data_dir=data_dir, threads=2)


@pytest.fixture(scope="module")
def tiny_run(store: Settings) -> TrainResult:
    """One epoch on six images per split at 160 px: real, small, about 20 s on 2 cores."""
    cfg = TrainConfig(
        data=DATA, base=BASE, epochs=1, imgsz=IMGSZ, batch=2, limit=6, cache=False,
        threads=2, name="tiny", close_mosaic=0,
    )  # fmt: skip
    return train(cfg, store)


def test_train_logs_parameters_metrics_and_artifacts(tiny_run: TrainResult, store: Settings):
    # given a finished tiny run
    mlflow = tracking_store(store, EXPERIMENT)
    client = mlflow.MlflowClient()
    run = client.get_run(tiny_run.run_id)
    # then its parameters name the data, the base weights and the knobs
    params = run.data.params
    assert params["imgsz"] == str(IMGSZ) and params["epochs"] == "1" and params["limit"] == "6"
    assert len(params["data_fingerprint"]) == 64
    assert len(params["base_sha256"]) == 64
    assert params["data_images_train"] == "6"
    assert "code_version" in run.data.tags
    # and per-epoch metrics were logged at step 1
    history = client.get_metric_history(tiny_run.run_id, "metrics/mAP50-95")
    assert [m.step for m in history] == [1]
    assert client.get_metric_history(tiny_run.run_id, "train/box_loss")
    # and the artifacts are there
    artifacts = {f.path for d in ("weights", "curves", "metrics")
                 for f in client.list_artifacts(tiny_run.run_id, d)}  # fmt: skip
    assert {"weights/best.pt", "weights/best.onnx", "curves/results.csv", "curves/curves.png",
            "metrics/per_class_val.csv"} <= artifacts, artifacts  # fmt: skip


def test_train_never_writes_into_the_data_set(tiny_run: TrainResult):
    source_labels = DATA.parent / "train" / "labels"
    assert not (DATA.parent / "train" / "labels.cache").exists()
    assert source_labels.is_dir()
    assert (tiny_run.run_dir / "data" / "train" / "labels.cache").exists()


def test_exported_onnx_has_dynamic_size_and_scores_through_the_serving_engine(
    tiny_run: TrainResult, store: Settings
):
    import onnxruntime as ort

    # given the run's ONNX export
    assert tiny_run.onnx is not None
    session = ort.InferenceSession(str(tiny_run.onnx), providers=["CPUExecutionProvider"])
    shape = session.get_inputs()[0].shape
    assert not isinstance(shape[2], int) and not isinstance(shape[3], int), shape
    assert "goalkeeper" in session.get_modelmeta().custom_metadata_map["names"]
    # when it is evaluated through the engine the workers use, on rectangular input
    result = evaluate(tiny_run.onnx, DATA, store, split="test", imgsz=IMGSZ)
    # then every class has a row and the figures are in range
    assert set(result.per_class) == {"ball", "goalkeeper", "player", "referee"}
    assert result.images == 13
    assert 0.0 <= result.map50_95 <= result.map50 <= 1.0
    assert sum(c.labels for c in result.per_class.values()) > 200


def test_first_candidate_becomes_champion_and_a_worse_one_does_not(
    tiny_run: TrainResult, store: Settings, tmp_path: Path
):
    # given an empty registry, the tiny run is promoted
    first = promote(tiny_run.run_id, tiny_run.onnx, DATA, store, split="test", imgsz=IMGSZ)
    assert first.decision.promote and first.champion_version is None
    # when the very same model is offered again it is not better, so the champion stays
    again = promote(tiny_run.run_id, tiny_run.onnx, DATA, store, split="test", imgsz=IMGSZ)
    assert not again.decision.promote
    assert again.champion_version == first.version
    assert again.candidate.split_sha256 == again.champion.split_sha256
    # then the alias still points at the first version, and the decision is logged
    client = tracking_store(store, EXPERIMENT).MlflowClient()
    assert (
        str(client.get_model_version_by_alias(REGISTERED_MODEL, CHAMPION).version) == first.version
    )
    assert client.get_run(tiny_run.run_id).data.tags["promoted"] == "false"
    assert f"{first.version:>7}  champion" in list_versions(store)
    champion = champion_model_file(store)
    assert champion is not None
    assert champion.version == first.version and champion.path.suffix == ".onnx"
    shutil.rmtree(champion.path.parent, ignore_errors=True)
