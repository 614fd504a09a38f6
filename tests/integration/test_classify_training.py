"""A tiny real classifier training (``--task classify``) tracked in a temporary sqlite MLflow
store; its export scored by the serving engine and agreeing with Ultralytics' own validation;
champion/challenger promotion of ``ball-classifier`` on real evaluations."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pitchside.cli import main
from pitchside.errors import DatasetError, EvaluationError, ModelError
from pitchside.models import tracking_store
from pitchside.settings import Settings
from tests.conftest import ASSETS, require_asset
from training import classify_data
from training.classify import train_classifier
from training.classify_eval import evaluate_classifier
from training.models_cli import list_versions
from training.promote import champion_model_file, promote_classifier
from training.tracking import CHAMPION, CLASSIFIER_EXPERIMENT, CLASSIFIER_MODEL
from training.train import TrainConfig, TrainResult
from workers.engines import Classifier, load_classifier

pytestmark = pytest.mark.slow

DATA = ASSETS / "datasets" / "sports-balls"
BASE = ASSETS / "models" / "yolov8n-coco-dequant.pt"
IMGSZ = 64
PER_CLASS = 3


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    require_asset(DATA)
    require_asset(BASE)
    data_dir = tmp_path_factory.mktemp("classify-data")
    return Settings.from_env({}).replace(data_dir=data_dir, threads=2)


@pytest.fixture(scope="module")
def tiny_run(store: Settings) -> TrainResult:
    """Two epochs on three images of each class at 64 px: real, small, ~15 s on 2 cores."""
    cfg = TrainConfig(
        data=DATA, base=BASE, epochs=2, imgsz=IMGSZ, batch=16, limit=PER_CLASS, threads=2,
        name="tiny-classify",
    )  # fmt: skip
    return train_classifier(cfg, store)


@pytest.fixture(scope="module")
def staged(tiny_run: TrainResult) -> Path:
    """The run's own linked copy: three images of each class in each split."""
    return tiny_run.run_dir / "data"


def test_training_logs_top1_top5_and_the_confusion_matrix(tiny_run: TrainResult, store):
    mlflow = tracking_store(store, CLASSIFIER_EXPERIMENT)
    client = mlflow.MlflowClient()
    run = client.get_run(tiny_run.run_id)
    # the run is in the classifier's own experiment, with its parameters
    assert client.get_experiment(run.info.experiment_id).name == CLASSIFIER_EXPERIMENT
    params = run.data.params
    assert params["task"] == "classify" and params["imgsz"] == str(IMGSZ)
    assert params["data_images_train"] == str(15 * PER_CLASS)
    assert params["data_names"].split(",")[6] == "football"
    assert len(params["data_fingerprint"]) == 64 and "code_version" in run.data.tags
    # top-1 and top-5 for each epoch, as it ended
    assert [m.step for m in client.get_metric_history(tiny_run.run_id, "metrics/top1")] == [1, 2]
    assert [m.step for m in client.get_metric_history(tiny_run.run_id, "metrics/top5")] == [1, 2]
    # the served export's figures, and the reports
    final = run.data.metrics
    assert 0.0 <= final["final/top1"] <= final["final/top5"] <= 1.0
    assert "final/recall/football" in final
    logged = {f.path for f in client.list_artifacts(tiny_run.run_id, "metrics")}
    assert {"metrics/confusion_val.csv", "metrics/confusion_val.png"} <= logged
    weights = {f.path for f in client.list_artifacts(tiny_run.run_id, "weights")}
    assert {"weights/best.pt", "weights/best.onnx"} <= weights


def test_engine_agrees_with_ultralytics_validation(tiny_run: TrainResult, staged: Path, store):
    # Ultralytics' validator scored best.pt (torch) on the staged val split; the serving
    # engine scores the ONNX export of the same weights on the same images
    assert tiny_run.onnx is not None
    import torch
    from ultralytics import YOLO

    ours = evaluate_classifier(tiny_run.onnx, staged, store, split="val")
    model = YOLO(str(tiny_run.best_pt)).model.float().eval()
    classifier = Classifier(tiny_run.onnx, ["CPUExecutionProvider"], 2)
    agree = 0
    for image_path, _ in classify_data.load(staged).samples("val"):
        batch = classifier.prepare([classify_data.read_image(image_path)])
        with torch.no_grad():
            torch_probs = model(torch.from_numpy(batch))
            torch_probs = torch_probs[0] if isinstance(torch_probs, tuple) else torch_probs
        onnx_probs = classifier.probabilities(batch)
        np.testing.assert_allclose(onnx_probs, torch_probs.numpy(), atol=1e-4)
        agree += int(onnx_probs.argmax() == torch_probs.numpy().argmax())
    assert agree == ours.images == 15 * PER_CLASS
    # and Ultralytics' final validation of best.pt gives the engine's top-1 and top-5
    mlflow = tracking_store(store, CLASSIFIER_EXPERIMENT)
    final = mlflow.MlflowClient().get_run(tiny_run.run_id).data.metrics
    # within one image: a two-epoch model has near-ties that batching may flip
    one = 1 / ours.images + 1e-6
    assert ours.top1 == pytest.approx(final["final/ultralytics/top1"], abs=one)
    assert ours.top5 == pytest.approx(final["final/ultralytics/top5"], abs=one)


def test_evaluate_cli_scores_a_classifier(tiny_run: TrainResult, staged: Path, tmp_path, capsys):
    out = tmp_path / "scores.json"
    code = main(["evaluate", str(tiny_run.onnx), "--data", str(staged), "--split", "val",
                 "--json", str(out)])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "top-1" in printed and "football" in printed
    (doc,) = json.loads(out.read_text())
    assert doc["images"] == 15 * PER_CLASS and set(doc["per_class"]) == set(
        classify_data.load(staged).names.values()
    )
    assert sum(map(sum, doc["confusion"])) == doc["images"]


def test_first_candidate_becomes_champion_then_a_worse_one_does_not(
    tiny_run: TrainResult, staged: Path, store: Settings, tmp_path: Path
):
    assert tiny_run.onnx is not None
    first = promote_classifier(tiny_run.run_id, tiny_run.onnx, staged, store, split="val")
    assert first.decision.promote and first.champion_version is None
    champion = champion_model_file(store, CLASSIFIER_MODEL)
    assert champion is not None and champion.version == first.version
    # the champion is served by its registry URI, like the detector's
    served = load_classifier(f"models:/{CLASSIFIER_MODEL}@{CHAMPION}", store)
    assert served.model_id == f"{CLASSIFIER_MODEL}/{first.version}"
    # the same model again is not better: top-1 is not higher
    again = promote_classifier(tiny_run.run_id, tiny_run.onnx, staged, store, split="val")
    assert not again.decision.promote
    assert any("top-1 is not higher" in r for r in again.decision.reasons)
    champion = champion_model_file(store, CLASSIFIER_MODEL)
    assert champion is not None and champion.version == first.version
    listing = list_versions(store, CLASSIFIER_MODEL)
    assert "top-1" in listing and CHAMPION in listing
    # the detector's registry is untouched
    assert champion_model_file(store) is None


def test_classifier_refuses_other_classes_and_bad_folders(
    tiny_run: TrainResult, store: Settings, tmp_path: Path
):
    assert tiny_run.onnx is not None
    other = tmp_path / "other"
    for split in ("train", "val"):
        shutil.copytree(DATA / split / "football", other / split / "football")
        shutil.copytree(DATA / split / "golf_ball", other / split / "golf_ball")
    with pytest.raises(EvaluationError, match="classes"):
        evaluate_classifier(tiny_run.onnx, other, store)
    with pytest.raises(DatasetError, match="val/"):
        classify_data.load(DATA / "train")
    with pytest.raises(ModelError, match="detect"):
        Classifier(Path("models/pitchside-football.onnx"), ["CPUExecutionProvider"])
