"""Promotion decisions on real evaluations through the serving engine: the project's default
detector against weaker real models (a one-epoch run, and the default model with one class
switched off), all scored on the same held-out test split."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from pitchside.settings import Settings, default_model_path
from tests.conftest import ASSETS, require_asset
from training.evaluate import EvalResult, evaluate
from training.promote import decide

pytestmark = pytest.mark.slow

DATA = ASSETS / "datasets" / "football-players-detection" / "data.yaml"


def without_class(model: Path, class_name: str, out: Path) -> Path:
    """The same network with one class's scores multiplied by zero: a real model that lost
    exactly one class."""
    proto = onnx.load(str(model))
    meta = {p.key: p.value for p in proto.metadata_props}
    names = ast.literal_eval(meta["names"])  # an Ultralytics dict literal: {0: 'ball', ...}
    index = next(i for i, n in names.items() if n == class_name)
    graph = proto.graph
    output = graph.output[0].name
    for node in graph.node:
        node.output[:] = [f"{o}_raw" if o == output else o for o in node.output]
    mask = np.ones((1, 4 + len(names), 1), dtype=np.float32)
    mask[0, 4 + index, 0] = 0.0
    graph.initializer.append(numpy_helper.from_array(mask, name="class_mask"))
    graph.node.append(helper.make_node("Mul", [f"{output}_raw", "class_mask"], [output]))
    onnx.save(proto, str(out))
    return out


@pytest.fixture(scope="module")
def scores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, EvalResult]:
    require_asset(DATA)
    model = default_model_path()
    if not model.exists():
        pytest.fail(f"the default detector {model} is missing (see models/MODEL_CARD.md)")
    tmp = tmp_path_factory.mktemp("promo")
    settings = Settings.from_env({}).replace(data_dir=tmp, threads=2)
    no_referee = without_class(model, "referee", tmp / "no-referee.onnx")
    return {
        "default": evaluate(model, DATA, settings, split="test"),
        "no_referee": evaluate(no_referee, DATA, settings, split="test"),
    }


def test_default_model_beats_a_copy_that_lost_a_class(scores):
    default, no_referee = scores["default"], scores["no_referee"]
    # the copy really lost the referee class and only that
    assert no_referee.per_class["referee"].ap50 == 0.0
    assert no_referee.per_class["player"].ap50 == pytest.approx(
        default.per_class["player"].ap50, abs=0.02
    )
    # the default model as candidate against the weaker champion: promoted
    better = decide(default, no_referee)
    assert better.promote, better.reasons
    # the weaker copy as candidate against the default: refused, naming the class
    worse = decide(no_referee, default)
    assert not worse.promote
    assert any("referee AP50 fell" in r for r in worse.reasons), worse.reasons


def test_a_class_regression_blocks_promotion_even_when_map_rises(scores):
    # given the copy without referees as champion, and a candidate scored identically except
    # for a higher mAP50-95 than the default (as if it had gained elsewhere)
    default, no_referee = scores["default"], scores["no_referee"]
    import dataclasses

    candidate = dataclasses.replace(no_referee, map50_95=default.map50_95 + 0.05)
    decision = decide(candidate, default)
    # then the referee regression alone refuses it
    assert not decision.promote
    assert any("referee regressed" in r for r in decision.reasons), decision.reasons
