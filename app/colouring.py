"""What the map can be coloured by, and the values and colours of each choice (pure functions).

A :class:`ColourSpec` names one choice: density, a categorical column (classes, labels, catalog
strings) or a continuous one (scores, uncertainties, emulated and catalog numbers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from bokeh.palettes import Category20

from app.data import ANOMALY, ANOMALY_RANK, SCORE_PREFIX
from app.ood import OOD

MAX_CATEGORIES = 16
MISSING = "none"
UNLABELLED = "unlabelled"
OTHER = "other"
GREY = "#6b7280"
HIDDEN_COLUMNS = {"object_id", "index", ANOMALY_RANK, "pred_confidence"}


@dataclass(frozen=True)
class ColourSpec:
    """One entry of the "colour by" menu."""

    key: str  # unique id, also the column name for column-based choices
    label: str  # shown to the user
    group: str  # menu group
    kind: str  # "count", "cat" or "num"
    column: str | None = None
    cmap: str = "viridis"


DENSITY = ColourSpec("density", "Density (objects per pixel)", "Map", "count", cmap="bmy")
LABELS = ColourSpec("labels", "Human labels", "Labels", "cat")


def colour_specs(table: pd.DataFrame) -> list[ColourSpec]:
    """The menu for a survey table (catalog + predictions + anomaly columns), best first."""
    specs = [DENSITY]
    cols = set(table.columns)
    if "pred_class" in cols:
        specs.append(ColourSpec("pred_class", "Predicted class", "Model", "cat", "pred_class"))
    for col, label in (("entropy", "Uncertainty: entropy"), ("bald", "Uncertainty: BALD")):
        if col in cols:
            specs.append(ColourSpec(col, label, "Model", "num", col, "viridis"))
    if ANOMALY in cols:
        specs.append(
            ColourSpec(ANOMALY, "Anomaly score (combined)", "Anomaly", "num", ANOMALY, "plasma")
        )
    for col in sorted(c for c in cols if c.startswith(SCORE_PREFIX)):
        name = col.removeprefix(SCORE_PREFIX)
        specs.append(ColourSpec(col, f"Anomaly score: {name}", "Anomaly", "num", col, "plasma"))
    if OOD in cols:
        specs.append(
            ColourSpec(OOD, "Out of distribution (vs the encoder's training data)", "Model",
                       "num", OOD, "plasma")
        )  # fmt: skip
    specs.append(LABELS)
    for col in [c for c in table.columns if c.endswith("_mean")]:
        name = col.removesuffix("_mean")
        specs.append(ColourSpec(col, f"Emulated {name}", "Emulated", "num", col))
        sigma = f"{name}_sigma"
        if sigma in cols:
            specs.append(ColourSpec(sigma, f"Emulated {name}: σ", "Emulated", "num", sigma))
    if "recon_error" in cols:
        specs.append(
            ColourSpec(
                "recon_error", "Reconstruction error", "Model", "num", "recon_error", "plasma"
            )
        )
    model_cols = {s.column for s in specs} | {c for c in cols if c.startswith("p_")}
    for col in table.columns:
        if col in model_cols or col in HIDDEN_COLUMNS:
            continue
        kind = column_kind(table[col])
        if kind:
            specs.append(ColourSpec(f"catalog:{col}", col, "Catalog", kind, col))
    return specs


def column_kind(values: pd.Series) -> str | None:
    """ "num" for numbers, "cat" for few-valued text/bools, None for ids and constant columns."""
    if pd.api.types.is_bool_dtype(values):
        return "cat"
    if pd.api.types.is_numeric_dtype(values):
        span = values.value_range() if hasattr(values, "value_range") else None
        if span is not None:  # a paged column: from the file's statistics, nothing read
            return "num" if np.isfinite(span).all() and span[0] < span[1] else None
        finite = np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
        if not finite.any() or np.nanmin(values[finite]) == np.nanmax(values[finite]):
            return None
        return "num"
    sample = values.iloc[:200_000].astype(str)
    n_unique = sample.nunique()
    return "cat" if 1 < n_unique <= 4 * MAX_CATEGORIES else None


def categorical(
    values: pd.Series | np.ndarray, colours: dict[str, str] | None = None, missing: str = MISSING
) -> tuple[pd.Categorical, dict[str, str]]:
    """(categorical values, colour per category): the most common categories keep their name,
    the rest become "other"; empty and missing values become ``missing`` (grey)."""
    text = pd.Series(values).astype(object)
    text = text.where(text.notna() & (text.astype(str).str.strip() != ""), missing).astype(str)
    counts = text.value_counts()
    named = [c for c in counts.index if c not in (missing, OTHER)][: MAX_CATEGORIES - 2]
    if len(named) < len(counts) - (missing in counts.index):
        text = text.where(text.isin(named) | (text == missing), OTHER)
    order = [c for c in (colours or {}) if c in set(named)]
    order += sorted(c for c in named if c not in order)
    order += [c for c in (OTHER, missing) if c in set(text.unique())]
    if len(order) < 2:  # holoviews shades a single category as nothing: add an empty one
        order.append(OTHER if OTHER not in order else missing)
    return pd.Categorical(text, categories=order), category_colours(order, colours)


def category_colours(
    categories: list[str], colours: dict[str, str] | None = None
) -> dict[str, str]:
    """Stable colours: the schema's for its classes, grey for none/unlabelled/other, a palette
    for the rest (in category order, skipping colours the schema uses)."""
    colours = colours or {}
    palette = [c for c in Category20[20] if c not in set(colours.values())]
    out, k = {}, 0
    for cat in categories:
        if cat in colours:
            out[cat] = colours[cat]
        elif cat in (MISSING, UNLABELLED, OTHER):
            out[cat] = GREY
        else:
            out[cat] = palette[k % len(palette)]
            k += 1
    return out


def robust_range(values: np.ndarray, lo: float = 1.0, hi: float = 99.0) -> tuple[float, float]:
    """Percentile range of the finite values (on a sample for big arrays)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) > 200_000:
        v = v[np.random.default_rng(0).choice(len(v), 200_000, replace=False)]
    v = v[np.isfinite(v)]
    if not len(v):
        return 0.0, 1.0
    a, b = np.percentile(v, [lo, hi])
    return (float(a), float(b)) if b > a else (float(a) - 0.5, float(a) + 0.5)
