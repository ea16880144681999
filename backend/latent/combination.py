"""Combination rules of the anomaly scorers, and their choice from labelled anomalies.

A rule is a formula over scorer names, e.g. ``max(knn,sharpness,asymmetry)`` or
``max(knn,sharpness,mean(iforest,knn,asymmetry))``. Every scorer enters as its rank percentile
in [0, 1] and every node's value is rank-normalised again, so nodes nest:

- ``max``: an object extreme for any one argument ranks high (the injected anomalies of the
  demo: each kind is extreme for one scorer);
- ``mean``: objects unusual for several arguments at once rank high (gz1's mergers and
  artefacts: moderately unusual for the isolation forest, kNN and asymmetry together);
- ``fisher``: Fisher's combination of the arguments' tail probabilities, ``-sum log(1 - p +
  1/N)``: between the two (one extreme value or several moderate ones).

A missing (NaN) percentile counts as 0 in ``max`` and ``fisher`` and is left out of ``mean``.

:func:`choose` picks, among the small fixed set :data:`CANDIDATES`, the formula whose ranking
puts a survey's labelled anomalies highest (average precision) on the rows that are not held
out (the stored validation split's ``val`` part never steers the choice); with fewer than
:data:`MIN_POSITIVES` labelled anomalies there it keeps the default. When the scores include
``likeness`` (the share of an object's nearest neighbours that are labelled anomalies,
:mod:`backend.latent.likeness`, its own label left out) the formulas of
:data:`LIKENESS_CANDIDATES` compete too: "more like the anomalies I labelled".
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from backend.latent.errors import LatentError
from backend.latent.scorers import rank_normalise

RULES = ("max", "mean", "fisher")
DEFAULT_FORMULA = "max(knn,sharpness,asymmetry)"  # the product's default (anomaly.py)
# the formulas a survey's labelled anomalies choose from: a fixed, small set (low capacity, so
# a choice on a few dozen labelled objects cannot fit their noise); the default first, so a tie
# keeps it
CANDIDATES = (
    DEFAULT_FORMULA,
    "fisher(knn,sharpness,asymmetry)",
    "max(iforest,knn,sharpness,asymmetry)",
    "fisher(iforest,knn,sharpness,asymmetry)",
    "mean(iforest,knn,asymmetry)",
    "fisher(iforest,knn,asymmetry)",
    "mean(iforest,knn)",
    "max(knn,sharpness,mean(iforest,knn,asymmetry))",
)
# formulas reading ``likeness``, candidates when it was computed (>= MIN_POSITIVES labelled
# anomalies outside the held-out rows); fisher and mean with asymmetry ranked the held-out half
# of gz1's labelled anomalies best of the likeness formulas measured (docs/results.md, Q3)
LIKENESS = "likeness"
LIKENESS_CANDIDATES = ("fisher(likeness,asymmetry)", "mean(likeness,asymmetry)")
MIN_POSITIVES = 10  # labelled anomalies outside the held-out rows needed to choose
_TOKEN = re.compile(r"\s*([A-Za-z_]+|\(|\)|,)")


@dataclass(frozen=True)
class Formula:
    """A rule (``max``, ``mean``, ``fisher``) over scorer names and nested formulas."""

    rule: str
    args: tuple[Formula | str, ...]

    @property
    def text(self) -> str:
        inner = ",".join(a if isinstance(a, str) else a.text for a in self.args)
        return f"{self.rule}({inner})"

    @property
    def scorers(self) -> tuple[str, ...]:
        """The scorer names read, in order of first use."""
        names: list[str] = []
        for arg in self.args:
            names += [arg] if isinstance(arg, str) else list(arg.scorers)
        return tuple(dict.fromkeys(names))


def parse(text: str) -> Formula:
    """The formula written in ``text``; a malformed one raises a :class:`LatentError`."""
    tokens = [t for t in _TOKEN.findall(text)]
    if "".join(tokens) != re.sub(r"\s+", "", text):
        raise LatentError(f"anomaly combination {text!r}: unexpected characters")
    formula, end = _parse(tokens, 0, text)
    if not isinstance(formula, Formula) or end != len(tokens):
        raise LatentError(f"anomaly combination {text!r}: expected one rule, e.g. max(knn,lof)")
    return formula


def _parse(tokens: list[str], at: int, text: str) -> tuple[Formula | str, int]:
    if at >= len(tokens) or not tokens[at][0].isalpha():
        raise LatentError(f"anomaly combination {text!r}: expected a name at token {at + 1}")
    name = tokens[at]
    if at + 1 >= len(tokens) or tokens[at + 1] != "(":
        return name, at + 1
    if name not in RULES:
        raise LatentError(f"anomaly combination {text!r}: unknown rule {name!r} ({RULES})")
    args: list[Formula | str] = []
    at += 2
    while True:
        arg, at = _parse(tokens, at, text)
        args.append(arg)
        if at < len(tokens) and tokens[at] == ",":
            at += 1
            continue
        if at < len(tokens) and tokens[at] == ")":
            return Formula(name, tuple(args)), at + 1
        raise LatentError(f"anomaly combination {text!r}: unclosed {name}(")


def evaluate(formula: Formula | str, norm: Mapping[str, np.ndarray]) -> np.ndarray:
    """The formula's value per object, a rank percentile in [0, 1], from the scorers'
    percentiles ``norm`` (name -> (N,) array, NaN where a scorer has no score)."""
    if isinstance(formula, str):
        if formula not in norm:
            raise LatentError(f"anomaly combination needs scorer {formula!r}, which did not run")
        return np.asarray(norm[formula], dtype=np.float64)
    stacked = np.vstack([evaluate(a, norm) for a in formula.args])
    finite = np.isfinite(stacked)
    if formula.rule == "max":
        value = np.where(finite, stacked, 0.0).max(axis=0)
    elif formula.rule == "mean":
        value = np.where(finite, stacked, 0.0).sum(axis=0) / np.maximum(finite.sum(axis=0), 1)
    else:  # fisher: tail probabilities 1 - p, floored at 1/N
        n = stacked.shape[1]
        value = -np.log(1.0 - np.where(finite, stacked, 0.0) + 1.0 / n).sum(axis=0)
    return rank_normalise(value).astype(np.float64)


def average_precision(score: np.ndarray, positive: np.ndarray) -> float:
    """Average precision of ``positive`` rows ranked by ``score`` (highest first; ties broken
    against the positives, so a constant score earns only the base rate)."""
    positive = np.asarray(positive, dtype=bool)
    if not positive.any():
        return float("nan")
    order = np.lexsort((positive, -np.nan_to_num(score, nan=-np.inf)))
    hits = positive[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].mean())


@dataclass(frozen=True)
class Choice:
    """Which formula ranks a survey's labelled anomalies best, and on what."""

    formula: str
    reason: str
    n_positive: int  # labelled anomalies on the rows the choice was made on
    n_rows: int  # rows the choice was made on (all but the held-out ones)
    n_held_out: int
    scores: dict[str, float]  # each candidate's average precision on those rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "formula": self.formula,
            "reason": self.reason,
            "n_positive": self.n_positive,
            "n_rows": self.n_rows,
            "n_held_out": self.n_held_out,
            "average_precision": self.scores,
        }


def needed_scorers(candidates: Sequence[str] = CANDIDATES) -> tuple[str, ...]:
    """Every scorer the candidate formulas read."""
    names: list[str] = []
    for text in candidates:
        names += list(parse(text).scorers)
    return tuple(dict.fromkeys(names))


def candidates_for(norm: Mapping[str, np.ndarray]) -> tuple[str, ...]:
    """The fixed candidates, and :data:`LIKENESS_CANDIDATES` when ``norm`` has ``likeness``."""
    return CANDIDATES + (LIKENESS_CANDIDATES if LIKENESS in norm else ())


def choose(
    norm: Mapping[str, np.ndarray],
    positive: np.ndarray,
    held_out: np.ndarray,
    candidates: Sequence[str] | None = None,
    default: str = DEFAULT_FORMULA,
) -> Choice:
    """The candidate (default :func:`candidates_for` ``norm``) whose ranking (over the whole
    survey) gives the ``positive`` objects (the labelled anomalies) the highest average
    precision among the rows not ``held_out``; the first best wins, ``default`` first. Fewer
    than :data:`MIN_POSITIVES` positives there: ``default``."""
    positive = np.asarray(positive, dtype=bool)
    held_out = np.asarray(held_out, dtype=bool)
    rows = ~held_out
    n_pos = int((positive & rows).sum())
    common = {"n_positive": n_pos, "n_rows": int(rows.sum()), "n_held_out": int(held_out.sum())}
    if n_pos < MIN_POSITIVES:
        reason = (
            f"{n_pos} labelled anomalies outside the held-out rows (fewer than {MIN_POSITIVES})"
        )
        return Choice(default, reason, scores={}, **common)
    candidates = candidates_for(norm) if candidates is None else tuple(candidates)
    candidates = tuple(dict.fromkeys([default, *candidates]))  # the default always competes
    scores: dict[str, float] = {}
    for text in candidates:
        value = evaluate(parse(text), norm)
        scores[text] = round(average_precision(value[rows], positive[rows]), 4)
    best = max(candidates, key=lambda t: scores[t])  # first of the best
    reason = (
        f"ranks the {n_pos} labelled anomalies best (average precision {scores[best]:.3f}, "
        f"default {scores.get(default, float('nan')):.3f}) on {int(rows.sum())} objects; "
        f"{int(held_out.sum())} held out"
    )
    return Choice(best, reason, scores=scores, **common)
