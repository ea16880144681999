"""Domain-shift warnings of the app (pure functions, escaped text; no torch).

The ``ood`` product (``python -m backend ood``) gives each object an out-of-distribution score
against what the encoder learnt from and the survey a verdict; these functions turn it into the
banner of a survey, the note of a selection, the note of an uploaded cutout and the tempered
classifier confidence of the details panel.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np

OOD = "ood_score"  # column of SurveyData.table
LIKE = "like the training data"
NO_REFERENCE = "no reference: scored against itself"  # backend.latent.ood_product: imported
FINETUNE = "fine-tune the encoder on this survey (Models & jobs → Fine-tune encoder)"


def fraction_beyond(scores: np.ndarray, p99: float) -> float:
    """Fraction of finite ``scores`` above the reference's 99th percentile (NaN when none)."""
    s = np.asarray(scores, dtype=np.float64)
    s = s[np.isfinite(s)]
    return float(np.mean(s > p99)) if len(s) else float("nan")


def survey_warning(summary: dict[str, Any] | None) -> str | None:
    """The survey's banner (Markdown, escaped) when it is unlike the encoder's training data."""
    if not summary or summary.get("verdict") in (None, LIKE, NO_REFERENCE):
        return None
    survey = html.escape(str(summary.get("survey", "this survey")))
    return (
        f"**Domain shift**: {survey} is {html.escape(str(summary['verdict']))} the encoder "
        f"{html.escape(str(summary.get('encoder', '')))} learnt from "
        f"({summary['fraction_beyond_p99']:.0%} of objects beyond the 99th percentile of its "
        f"training data): maps, similarities and classifier confidences may mislead; {FINETUNE}."
    )


def selection_note(scores: np.ndarray, summary: dict[str, Any] | None) -> str:
    """A Markdown note for a selection mostly unlike the training data ('' otherwise)."""
    if not summary or not len(scores):
        return ""
    beyond = fraction_beyond(scores, float(summary["reference_p99"]))
    if not np.isfinite(beyond) or beyond < 0.5:
        return ""
    return f" · ⚠ {beyond:.0%} of the selection is out of distribution for the encoder: {FINETUNE}"


def upload_note(scores: np.ndarray, p99: float, filename: str) -> str:
    """HTML note for an uploaded cutout unlike the encoder's training data ('' otherwise)."""
    beyond = fraction_beyond(scores, p99)
    if not np.isfinite(beyond) or beyond < 0.5:
        return ""
    return (
        f"<div class='ls-ood-warning'>⚠ {html.escape(filename)} is unlike what the encoder "
        f"learnt from (OOD score {float(np.nanmedian(scores)):.3f}, the training data's 99th "
        f"percentile {p99:.3f}): its neighbours may not be alike.</div>"
    )


def tempered_confidence(
    confidence: float, score: float | None, summary: dict[str, Any] | None
) -> tuple[float, str]:
    """(confidence shown, note) for the details panel: beyond the reference's 99th percentile
    the classifier's probability is shrunk halfway towards chance per multiple of that
    percentile past it ('' note when in distribution). Chance is 1 / n_classes, passed in
    ``summary['n_classes']`` (default 2)."""
    if summary is None or score is None or not np.isfinite(score):
        return confidence, ""
    p99 = float(summary["reference_p99"])
    if score <= p99 or p99 <= 0:
        return confidence, ""
    chance = 1.0 / max(2, int(summary.get("n_classes", 2)))
    weight = 0.5 ** (score / p99)
    shown = chance + (confidence - chance) * weight
    return shown, (
        f"out of distribution (OOD score {score:.3f} > {p99:.3f}): confidence unreliable, "
        f"tempered from {confidence:.2f} to {shown:.2f}"
    )


def detail_html(row: Any, summary: dict[str, Any] | None) -> str:
    """The details panel's domain-shift part: the object's OOD score against the training
    data's percentiles and, when a classifier predicted it, its confidence tempered by it."""
    if summary is None or OOD not in row.index or not np.isfinite(float(row[OOD])):
        return ""
    score, p99 = float(row[OOD]), float(summary["reference_p99"])
    where = "beyond" if score > p99 else "within"
    out = (
        f"<h4>Domain shift</h4><div class='lsd-small'>OOD score {score:.3f}: {where} the "
        f"training data's 99th percentile ({p99:.3f})</div>"
    )
    probs = [float(row[c]) for c in row.index if str(c).startswith("p_")]
    if probs and "pred_class" in row.index:
        _, note = tempered_confidence(max(probs), score, {**summary, "n_classes": len(probs)})
        if note:
            out += f"<div class='lsd-small ls-ood-warning'>⚠ {html.escape(note)}</div>"
    return out
