"""The promotion rule, on its own: champion/challenger decisions without MLflow."""

from __future__ import annotations

import pytest

from pitchside.errors import EvaluationError
from training.evaluate import ClassScore, EvalResult
from training.promote import DEFAULT_MAX_CLASS_DROP, decide


def result(map50_95: float, ap50: dict[str, float], split: str = "abc") -> EvalResult:
    per_class = {name: ClassScore(0.5, 0.5, ap, ap * 0.6, 10) for name, ap in ap50.items()}
    return EvalResult("m.onnx", "test", split, 13, 0.5, map50_95, 0.5, 0.5, per_class, [], 10.0)


CHAMP = result(0.40, {"ball": 0.10, "goalkeeper": 0.70, "player": 0.95, "referee": 0.80})


@pytest.mark.parametrize(
    ("candidate", "promote", "mentions"),
    [
        (
            result(0.45, {"ball": 0.12, "goalkeeper": 0.71, "player": 0.96, "referee": 0.80}),
            True,
            "promoted: higher",
        ),
        (
            result(0.38, {"ball": 0.12, "goalkeeper": 0.71, "player": 0.96, "referee": 0.80}),
            False,
            "mAP50-95 is not higher",
        ),
        (
            result(0.45, {"ball": 0.12, "goalkeeper": 0.60, "player": 0.97, "referee": 0.85}),
            False,
            "goalkeeper regressed",
        ),
        # A fall within the margin is tolerated.
        (
            result(0.45, {"ball": 0.09, "goalkeeper": 0.69, "player": 0.96, "referee": 0.80}),
            True,
            "promoted: higher",
        ),
        # Equal is not better: the champion stays.
        (
            result(0.40, {"ball": 0.10, "goalkeeper": 0.70, "player": 0.95, "referee": 0.80}),
            False,
            "not higher",
        ),
        # A class the candidate lost entirely counts as AP50 0.
        (
            result(0.45, {"ball": 0.12, "goalkeeper": 0.71, "player": 0.96}),
            False,
            "referee regressed",
        ),
    ],
    ids=["better", "worse", "one-class-regressed", "within-margin", "equal", "class-missing"],
)
def test_decide_promotes_only_better_without_regression(candidate, promote, mentions):
    # when
    decision = decide(candidate, CHAMP, DEFAULT_MAX_CLASS_DROP)
    # then
    assert decision.promote is promote, decision.reasons
    assert any(mentions in r for r in decision.reasons), decision.reasons


def test_decide_first_candidate_becomes_champion():
    decision = decide(result(0.01, {"player": 0.1}), None)
    assert decision.promote
    assert "first candidate" in decision.reasons[0]


def test_decide_refuses_results_from_different_splits():
    with pytest.raises(EvaluationError, match="different held-out splits"):
        decide(result(0.5, {"player": 0.9}, split="one"), result(0.4, {"player": 0.9}, split="two"))
