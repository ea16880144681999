"""Label weights: how much one label counts in the consensus (a person's label counts 1)."""

from __future__ import annotations

import math

MAX_WEIGHT = 100.0  # a label may count as much as 100 people's, never more


def weight_problem(value: object) -> str | None:
    """Why ``value`` is not a usable weight (finite, above 0, at most 100), or None."""
    try:
        weight = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return f"must be a finite number in (0, {MAX_WEIGHT:g}], got {value!r}"
    if not math.isfinite(weight):
        return f"must be a finite number in (0, {MAX_WEIGHT:g}], got {value!r}"
    if weight <= 0:
        return f"must be above 0 (at most {MAX_WEIGHT:g}), got {value!r}"
    if weight > MAX_WEIGHT:
        return f"must be at most {MAX_WEIGHT:g} (and above 0), got {value!r}"
    return None
