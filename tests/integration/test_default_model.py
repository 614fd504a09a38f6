"""The default detector under models/: served accuracy equals training accuracy, and equals the
figures its model card publishes (models/pitchside-football.metrics.json)."""

from __future__ import annotations

import json

import pytest

from pitchside.settings import Settings, default_model_path
from tests.conftest import ASSETS, require_asset
from training.evaluate import EvalResult, evaluate

pytestmark = pytest.mark.slow

DATA = ASSETS / "datasets" / "football-players-detection" / "data.yaml"
ONNX = default_model_path()
PT = ONNX.with_suffix(".pt")
PUBLISHED = ONNX.with_name("pitchside-football.metrics.json")


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    require_asset(DATA)
    for path in (ONNX, PT, PUBLISHED):
        if not path.exists():
            pytest.fail(
                f"{path} is missing: the default detector ships with its weights and figures"
            )
    return Settings.from_env({}).replace(data_dir=tmp_path_factory.mktemp("eval"), threads=2)


@pytest.fixture(scope="module")
def served(settings: Settings) -> EvalResult:
    return evaluate(ONNX, DATA, settings, split="test")


def test_onnx_through_the_serving_engine_agrees_with_the_pt_checkpoint(served, settings):
    trained = evaluate(PT, DATA, settings, split="test")
    assert served.split_sha256 == trained.split_sha256
    assert abs(served.map50 - trained.map50) <= 0.01, (served.map50, trained.map50)
    assert abs(served.map50_95 - trained.map50_95) <= 0.01, (served.map50_95, trained.map50_95)


def test_served_figures_match_the_model_card(served):
    published = EvalResult.from_dict(json.loads(PUBLISHED.read_text()))
    assert served.split_sha256 == published.split_sha256, "the test split changed"
    assert served.map50_95 == pytest.approx(published.map50_95, abs=0.005)
    for name, card in published.per_class.items():
        assert served.per_class[name].ap50 == pytest.approx(card.ap50, abs=0.005), name
        assert served.per_class[name].ap50_95 == pytest.approx(card.ap50_95, abs=0.005), name
