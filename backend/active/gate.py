"""Activation gate: a new classifier replaces the active one only if it is not worse.

Both versions are judged on the same objects, the survey task's stored validation split
(:mod:`backend.validation`), from their written predictions (``predictions.parquet``), with
balanced accuracy and ECE and paired bootstrap confidence intervals. The candidate is refused
when it would lose a class the active model predicts, when its balanced accuracy is lower by
more than :data:`BALANCED_ACCURACY_TOLERANCE`, or when its ECE is higher by more than
:data:`ECE_TOLERANCE` and significantly so. The decision and its reason are stored beside the
version (``gate.json``) so ``models``, ``jobs`` and the app can say why. Torch-free.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from backend.evaluation.metrics import (
    balanced_accuracy,
    bootstrap_ci,
    expected_calibration_error,
    map_decisions,
    map_probabilities,
    predicted_classes,
)
from backend.products import read_predictions

BALANCED_ACCURACY_TOLERANCE = 0.02
ECE_TOLERANCE = 0.03
BOOTSTRAP_RESAMPLES = 1000


@dataclass
class GateDecision:
    """Whether to activate ``candidate``, why, and the figures behind it."""

    activate: bool
    reason: str
    candidate: str
    active: str | None
    n_validation: int
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _probabilities(
    survey: str, version: str, rows: np.ndarray
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(probabilities, their classes, decided class names) of ``version`` at ``rows``."""
    table = read_predictions(survey, "classifier", version)
    columns = [c for c in table.columns if c.startswith("p_")]
    probs = table[columns].to_numpy(np.float64)[rows]
    return probs, [c[2:] for c in columns], predicted_classes(table, rows)


def _scores(
    probs: np.ndarray, decided: np.ndarray, labels: np.ndarray, rows: np.ndarray
) -> dict[str, float]:
    sub_y, sub_d = labels[rows], decided[rows]
    return {
        "balanced_accuracy": balanced_accuracy(sub_y, sub_d),
        "accuracy": float(np.mean(sub_d == sub_y)),
        "ece": expected_calibration_error(probs[rows], sub_y),
    }


def _fmt(value: float, ci: tuple[float, float]) -> str:
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def compare(
    survey: str,
    candidate: str,
    active: str | None,
    labels: np.ndarray,
    classes: list[str],
    val_rows: np.ndarray,
    *,
    seed: int = 0,
) -> GateDecision:
    """Judge ``candidate`` against ``active`` on ``val_rows`` (labels: ints into ``classes``)."""
    val_rows = np.asarray(val_rows, dtype=np.int64)
    if active is None or active == candidate:
        return GateDecision(True, "no active classifier to compare with", candidate, active,
                            len(val_rows))  # fmt: skip
    cand_p, cand_classes, cand_names = _probabilities(survey, candidate, val_rows)
    act_p, act_classes, act_names = _probabilities(survey, active, val_rows)
    lost = sorted(set(act_classes) - set(cand_classes))
    if lost:
        return GateDecision(
            False, f"it would lose the class(es) {', '.join(lost)} that {active} predicts",
            candidate, active, len(val_rows),
        )  # fmt: skip
    y = np.asarray(labels)[val_rows]
    if len(y) == 0:
        return GateDecision(
            False, "no validation labels to judge it on: label more objects first",
            candidate, active, 0,
        )  # fmt: skip
    cand, _ = map_probabilities(cand_p, cand_classes, classes, {})
    act, _ = map_probabilities(act_p, act_classes, classes, {})
    cand_d, act_d = map_decisions(cand_names, classes, {}), map_decisions(act_names, classes, {})
    local = np.arange(len(y))
    scores = {"candidate": _scores(cand, cand_d, y, local), "active": _scores(act, act_d, y, local)}

    def delta(metric: str) -> Any:
        return lambda rows: (
            _scores(cand, cand_d, y, rows)[metric] - _scores(act, act_d, y, rows)[metric]
        )

    ci = {
        m: bootstrap_ci(delta(m), len(y), resamples=BOOTSTRAP_RESAMPLES, seed=seed)
        for m in ("balanced_accuracy", "ece")
    }
    d_bacc = scores["candidate"]["balanced_accuracy"] - scores["active"]["balanced_accuracy"]
    d_ece = scores["candidate"]["ece"] - scores["active"]["ece"]
    metrics = {
        **scores,
        "delta": {"balanced_accuracy": d_bacc, "ece": d_ece},
        "delta_ci95": {k: list(v) for k, v in ci.items()},
        "tolerance": {"balanced_accuracy": BALANCED_ACCURACY_TOLERANCE, "ece": ECE_TOLERANCE},
    }
    where = f"on {len(y)} validation objects"
    summary = (
        f"balanced accuracy {scores['candidate']['balanced_accuracy']:.3f} vs "
        f"{scores['active']['balanced_accuracy']:.3f} for {active} "
        f"(difference {_fmt(d_bacc, ci['balanced_accuracy'])}), ECE "
        f"{scores['candidate']['ece']:.3f} vs {scores['active']['ece']:.3f} {where}"
    )
    if d_bacc < -BALANCED_ACCURACY_TOLERANCE:
        return GateDecision(False, f"worse: {summary}", candidate, active, len(y), metrics)
    if d_ece > ECE_TOLERANCE and ci["ece"][0] > 0:
        return GateDecision(
            False, f"worse calibrated: {summary}", candidate, active, len(y), metrics
        )
    return GateDecision(True, f"not worse: {summary}", candidate, active, len(y), metrics)


def activate_if_not_worse(
    survey: str,
    candidate: str,
    labels: np.ndarray,
    classes: list[str],
    *,
    task: str = "class",
    force: bool = False,
    together: dict[str, str] | None = None,
    before_switch: Callable[[], object] | None = None,
) -> GateDecision:
    """Judge a registered classifier whose predictions are written, record the decision beside
    it, and make it active when it passes (or when ``force``: a person's explicit choice).

    ``together`` names other versions (e.g. the fine-tuned encoder the classifier reads) that
    switch in the same atomic write and get the same decision recorded; ``before_switch`` runs
    after a pass and before the switch (building their products), so users see all or none.
    """
    from backend.registry import ModelRegistry
    from backend.survey import Survey
    from backend.validation import validation_split

    registry = ModelRegistry()
    s = Survey.open(survey)
    split = validation_split(survey, task, s.catalog["object_id"].to_numpy(), labels)
    active = registry.active_versions(survey).get("classifier")
    decision = compare(survey, candidate, active, labels, classes, split.val_rows)
    if force and not decision.activate:
        decision.activate = True
        decision.reason = f"activated on request although {decision.reason}"
    registry.record_gate("classifier", candidate, decision.to_dict())
    for kind, version in (together or {}).items():
        registry.record_gate(kind, version, decision.to_dict())
    if decision.activate:
        if before_switch is not None:
            before_switch()
        registry.set_active_many(survey, {**(together or {}), "classifier": candidate})
    return decision


def gate_retrained_head(
    survey: str, head: str, *, together: dict[str, str] | None = None, force: bool = False
) -> GateDecision:
    """The gate for a classifier head retrained on another encoder
    (:func:`backend.pipeline.build.retrain_head`), judged on the labels it learnt from: its
    parent's catalog columns and the label store's consensus, on its task's validation split."""
    from backend.active.loop import catalog_sources, merged_labels
    from backend.labels.store import LabelStore
    from backend.pipeline.kinds import Target
    from backend.registry import ModelRegistry

    registry = ModelRegistry()
    version = registry.get("classifier", head)
    parent = registry.get("classifier", str(version.meta["parent"]))
    active = registry.active_versions(survey).get("classifier")
    if active is None or not Target("predictions", survey, "classifier", active).exists():
        reason = "no predictions of an active classifier to compare with"
        decision = GateDecision(True, reason, head, active, 0)
        for kind, other in {**(together or {}), "classifier": head}.items():
            registry.record_gate(kind, other, decision.to_dict())
        registry.set_active_many(survey, {**(together or {}), "classifier": head})
        return decision
    training = version.meta.get("training", {})
    task = str((training.get("labels") or {}).get("task") or training.get("task") or "class")
    labels, classes, _ = merged_labels(survey, LabelStore(), task, catalog_sources(parent))
    return activate_if_not_worse(
        survey, head, labels, classes, task=task, together=together, force=force
    )
