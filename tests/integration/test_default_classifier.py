"""The default ball-type classifier under models/: the serving engine reproduces the figures its
model card publishes (models/ball-classifier.metrics.json), and the ONNX export agrees with
its PyTorch checkpoint image by image."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pitchside.settings import Settings, default_classifier_path
from tests.conftest import ASSETS, require_asset
from training import classify_data
from training.classify_eval import ClassifyResult, evaluate_classifier
from workers.engines import Classifier

pytestmark = pytest.mark.slow

DATA = ASSETS / "datasets" / "sports-balls"
ONNX = default_classifier_path()
PT = ONNX.with_suffix(".pt")
PUBLISHED = ONNX.with_name("ball-classifier.metrics.json")


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    require_asset(DATA)
    for path in (ONNX, PT, PUBLISHED):
        if not path.exists():
            pytest.fail(f"{path} is missing: the default classifier ships with its figures")
    return Settings.from_env({}).replace(data_dir=tmp_path_factory.mktemp("eval"), threads=2)


def test_served_figures_match_the_model_card(settings: Settings):
    served = evaluate_classifier(ONNX, DATA, settings, split="val")
    (published,) = [ClassifyResult.from_dict(d) for d in json.loads(PUBLISHED.read_text())]
    assert served.split_sha256 == published.split_sha256, "the val split changed"
    assert served.images == published.images == 150
    # ONNX Runtime is deterministic on one machine; across CPUs one borderline image may flip
    assert served.top1 == pytest.approx(published.top1, abs=1 / 150 + 1e-9)
    assert served.top5 == pytest.approx(published.top5, abs=1 / 150 + 1e-9)
    for name, card in published.per_class.items():
        assert served.per_class[name].recall == pytest.approx(card.recall, abs=0.1 + 1e-9), name


def test_onnx_agrees_with_the_checkpoint_image_by_image(settings: Settings):
    import torch
    from ultralytics import YOLO

    model = YOLO(str(PT)).model.float().eval()
    classifier = Classifier(ONNX, ["CPUExecutionProvider"], 2)
    assert list(classifier.names.values()) == list(model.names.values())
    samples = classify_data.load(DATA).samples("val")[::5]  # 30 images, two of each class
    for path, _ in samples:
        batch = classifier.prepare([classify_data.read_image(path)])
        with torch.no_grad():
            out = model(torch.from_numpy(batch))
        expected = (out[0] if isinstance(out, tuple) else out).numpy()
        np.testing.assert_allclose(classifier.probabilities(batch), expected, atol=1e-4)
