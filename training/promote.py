"""Champion/challenger: register a candidate and move the ``champion`` alias only if it wins.

The decisions (:func:`decide` for detectors, :func:`decide_classifier` for classifiers) are
pure and tested without MLflow. :func:`challenge` evaluates the candidate and the current
champion on the same held-out split, logs both sets of figures and the decision to the
candidate's run, registers the candidate as a new version of its registered model
(``football-detector`` through :func:`promote`, ``ball-classifier`` through
:func:`promote_classifier`, each with its own ``champion``) and moves the alias when the
decision says so.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, TypeVar

from pitchside.errors import EvaluationError, InvalidRequestError, ModelNotFoundError
from pitchside.models import ResolvedModel, registry_uri, resolve, tracking_store
from pitchside.settings import Settings
from training.classify_eval import (
    ClassifyResult,
    check_classifier_file,
    evaluate_classifier,
    format_classify_table,
)
from training.evaluate import EvalResult, check_model_file, evaluate, format_table
from training.tracking import (
    CHAMPION,
    CLASSIFIER_EXPERIMENT,
    CLASSIFIER_MODEL,
    EXPERIMENT,
    REGISTERED_MODEL,
    register_artifact,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_CLASS_DROP = 0.02
# A classifier's recall per class moves in steps of one image: 0.1 with ten per class.
DEFAULT_MAX_RECALL_DROP = 0.10


@dataclass(frozen=True, slots=True)
class Decision:
    promote: bool
    reasons: list[str]


def decide(
    candidate: EvalResult,
    champion: EvalResult | None,
    max_class_drop: float = DEFAULT_MAX_CLASS_DROP,
) -> Decision:
    """Promote when mAP50-95 is higher and no class's AP50 falls by more than ``max_class_drop``.

    Raises:
        EvaluationError: the two were scored on different splits (different images or labels).
    """
    if champion is None:
        return Decision(True, ["no champion yet: the first candidate becomes champion"])
    if candidate.split_sha256 != champion.split_sha256:
        raise EvaluationError("candidate and champion were scored on different held-out splits")
    reasons = []
    gain = candidate.map50_95 - champion.map50_95
    better = gain > 0
    reasons.append(
        f"mAP50-95 {candidate.map50_95:.4f} vs champion {champion.map50_95:.4f} ({gain:+.4f})"
    )
    regressed = []
    for name, champ_cls in champion.per_class.items():
        cand_cls = candidate.per_class.get(name)
        cand_ap50 = cand_cls.ap50 if cand_cls else 0.0
        drop = champ_cls.ap50 - cand_ap50
        if drop > max_class_drop:
            regressed.append(name)
            reasons.append(
                f"{name} AP50 fell {drop:.4f} ({champ_cls.ap50:.4f} -> {cand_ap50:.4f}), "
                f"more than the allowed {max_class_drop:.4f}"
            )
    if not better:
        reasons.append("not promoted: mAP50-95 is not higher")
    if regressed:
        reasons.append(f"not promoted: {', '.join(regressed)} regressed")
    if better and not regressed:
        reasons.append("promoted: higher mAP50-95 and no class regressed beyond the margin")
    return Decision(better and not regressed, reasons)


def decide_classifier(
    candidate: ClassifyResult,
    champion: ClassifyResult | None,
    max_recall_drop: float = DEFAULT_MAX_RECALL_DROP,
) -> Decision:
    """Promote when top-1 is higher and no class's recall falls by more than
    ``max_recall_drop``.

    Raises:
        EvaluationError: the two were scored on different splits (different images).
    """
    if champion is None:
        return Decision(True, ["no champion yet: the first candidate becomes champion"])
    if candidate.split_sha256 != champion.split_sha256:
        raise EvaluationError("candidate and champion were scored on different held-out splits")
    gain = candidate.top1 - champion.top1
    reasons = [f"top-1 {candidate.top1:.4f} vs champion {champion.top1:.4f} ({gain:+.4f})"]
    regressed = []
    for name, champ_cls in champion.per_class.items():
        cand_cls = candidate.per_class.get(name)
        drop = champ_cls.recall - (cand_cls.recall if cand_cls else 0.0)
        if drop > max_recall_drop + 1e-9:  # one image in ten is exactly 0.1
            regressed.append(name)
            reasons.append(
                f"{name} recall fell {drop:.4f} ({champ_cls.recall:.4f} -> "
                f"{champ_cls.recall - drop:.4f}), more than the allowed {max_recall_drop:.4f}"
            )
    if gain <= 0:
        reasons.append("not promoted: top-1 is not higher")
    if regressed:
        reasons.append(f"not promoted: {', '.join(regressed)} regressed")
    if gain > 0 and not regressed:
        reasons.append("promoted: higher top-1 and no class's recall fell beyond the margin")
    return Decision(gain > 0 and not regressed, reasons)


class Scored(Protocol):
    """What a task's evaluation gives that promotion needs (detection's :class:`EvalResult`,
    classification's :class:`~training.classify_eval.ClassifyResult`)."""

    @property
    def split_sha256(self) -> str: ...

    def flat_metrics(self, prefix: str = "") -> dict[str, float]: ...

    def to_dict(self) -> dict[str, Any]: ...


S = TypeVar("S", bound=Scored)


@dataclass(frozen=True, slots=True)
class PromotionOutcome:
    decision: Decision
    version: str  # the candidate's new registry version
    champion_version: str | None  # the champion it was compared with
    candidate: Scored
    champion: Scored | None


def champion_model_file(
    settings: Settings, registered: str = REGISTERED_MODEL
) -> ResolvedModel | None:
    """The current champion of ``registered``, its ONNX file downloaded; None when no
    version has the alias.

    Raises:
        ModelError: the champion version has no ONNX artifact or cannot be downloaded.
    """
    try:
        return resolve(registry_uri(registered, CHAMPION), settings)
    except ModelNotFoundError:
        return None


def check_run_artifact(mlflow: ModuleType, run_id: str, artifact: str) -> None:
    """Fail unless run ``run_id`` exists and logged ``artifact``: the registered version's
    source is that artifact, and workers serve what the source holds.

    Raises:
        InvalidRequestError: no such run, or it has no such artifact.
    """
    client = mlflow.MlflowClient()
    try:
        client.get_run(run_id)
    except mlflow.exceptions.MlflowException as exc:
        raise InvalidRequestError(f"cannot read MLflow run {run_id!r}: {exc}") from exc
    folder = artifact.rpartition("/")[0] or None
    logged = {f.path for f in client.list_artifacts(run_id, folder)}
    if artifact not in logged:
        raise InvalidRequestError(
            f"run {run_id} has no artifact {artifact} (it logged {sorted(logged) or 'none'}); "
            "promote the ONNX export that run logged"
        )


def promote(
    run_id: str,
    candidate_onnx: Path,
    data_yaml: Path,
    settings: Settings,
    split: str = "test",
    imgsz: int = 640,
    max_class_drop: float = DEFAULT_MAX_CLASS_DROP,
) -> PromotionOutcome:
    """Evaluate, register and maybe promote the candidate ONNX logged by run ``run_id``.

    Raises:
        ModelError: the candidate is missing or unusable, or the champion cannot be fetched.
        DatasetError: the data set or its ``split`` is unusable.
        EvaluationError: candidate and champion were scored on different splits.
        InvalidRequestError: run ``run_id`` does not exist or did not log the candidate.
    """
    check_model_file(candidate_onnx)  # before the registry is opened (~2 s to import MLflow)

    def score(model: Path) -> EvalResult:
        return evaluate(model, data_yaml, settings, split=split, imgsz=imgsz)

    def judge(cand: EvalResult, champ: EvalResult | None) -> Decision:
        log.info("%s", format_table([r for r in (cand, champ) if r]))
        return decide(cand, champ, max_class_drop)

    return challenge(
        run_id, candidate_onnx, settings, REGISTERED_MODEL, EXPERIMENT, split, score, judge
    )


def challenge(
    run_id: str,
    candidate_onnx: Path,
    settings: Settings,
    registered: str,
    experiment: str,
    split: str,
    score: Callable[[Path], S],
    judge: Callable[[S, S | None], Decision],
) -> PromotionOutcome:
    """Champion/challenger for any task: score the candidate and the champion of
    ``registered`` with ``score``, log both and ``judge``'s decision to run ``run_id``,
    register the candidate as a new version and move the alias when it wins.

    Raises:
        InvalidRequestError: run ``run_id`` does not exist or did not log the candidate.
        Whatever ``score`` and ``judge`` raise.
    """
    mlflow = tracking_store(settings, experiment)
    client = mlflow.MlflowClient()
    artifact = f"weights/{candidate_onnx.name}"
    check_run_artifact(mlflow, run_id, artifact)  # before the minutes of evaluation
    cand = score(candidate_onnx)
    current = champion_model_file(settings, registered)
    champ = score(current.path) if current is not None else None
    decision = judge(cand, champ)
    log.info("%s", "\n".join(decision.reasons))

    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics(cand.flat_metrics(f"{split}/"))
        if champ is not None:
            mlflow.log_metrics(champ.flat_metrics(f"{split}/champion/"))
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "promotion.json"
            report.write_text(json.dumps({
                "decision": asdict(decision),
                "champion_version": current.version if current else None,
                "candidate": cand.to_dict(),
                "champion": champ.to_dict() if champ else None,
            }, indent=2))  # fmt: skip
            mlflow.log_artifact(str(report), artifact_path="promotion")
        mlflow.set_tag("promoted", str(decision.promote).lower())

    version = register_artifact(mlflow, run_id, artifact, registered)
    for key, value in cand.flat_metrics(f"{split}/").items():
        client.set_model_version_tag(registered, version, key, f"{value:.4f}")
    client.set_model_version_tag(registered, version, "split_sha256", cand.split_sha256)
    if decision.promote:
        client.set_registered_model_alias(registered, CHAMPION, version)
        log.info("version %s of %s is the new champion", version, registered)
    champion_version = current.version if current else None
    return PromotionOutcome(decision, str(version), champion_version, cand, champ)


def promote_classifier(
    run_id: str,
    candidate_onnx: Path,
    data_root: Path,
    settings: Settings,
    split: str = "val",
    max_recall_drop: float = DEFAULT_MAX_RECALL_DROP,
) -> PromotionOutcome:
    """As :func:`promote`, for a classifier of ``ball-classifier``, scored on ``split`` of
    the image folders at ``data_root`` by the serving engine.

    Raises:
        ModelError: the candidate is missing or not a classification export.
        DatasetError: the folders or their ``split`` are unusable.
        EvaluationError: the candidate and the champion know other classes than the folders,
            or were scored on different splits.
        InvalidRequestError: run ``run_id`` does not exist or did not log the candidate.
    """
    check_classifier_file(candidate_onnx)

    def score(model: Path) -> ClassifyResult:
        return evaluate_classifier(model, data_root, settings, split=split)

    def judge(cand: ClassifyResult, champ: ClassifyResult | None) -> Decision:
        log.info("%s", format_classify_table([r for r in (cand, champ) if r]))
        return decide_classifier(cand, champ, max_recall_drop)

    return challenge(
        run_id, candidate_onnx, settings, CLASSIFIER_MODEL, CLASSIFIER_EXPERIMENT, split,
        score, judge,
    )  # fmt: skip
