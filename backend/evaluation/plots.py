"""The report's figures as PNG bytes (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

PRECISION_PNG = "precision_at_10.png"
PROBE_PNG = "probe_balanced_accuracy.png"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _plain(text: str) -> str:
    """Text matplotlib shows as typed (a ``$`` would start mathtext)."""
    return str(text).replace("$", r"\$")


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def _grouped_bars(
    groups: list[str], series: dict[str, list[float | None]], title: str, ylabel: str
) -> bytes:
    """Bars of each series (one colour per series) side by side within each group."""
    plt = _pyplot()
    n = max(len(series), 1)
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(groups) * max(1, n / 2) + 2), 3.6))
    x = np.arange(len(groups))
    for k, (name, values) in enumerate(series.items()):
        heights = [np.nan if v is None else float(v) for v in values]
        ax.bar(x - 0.4 + width * (k + 0.5), heights, width, label=_plain(name))
    ax.set_xticks(x)
    rotate = len(groups) > 4
    ax.set_xticklabels(
        [_plain(g) for g in groups],
        rotation=20 if rotate else 0,
        ha="right" if rotate else "center",
    )
    ax.set_ylim(0, 1.0)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, frameon=False, ncol=min(n, 4))
    return _png(fig)


def precision_figure(report: dict[str, Any]) -> bytes | None:
    """Precision@10 per class, one bar per representation."""
    reps = report.get("representations") or []
    classes = list(report.get("classes") or [])
    if not reps or not classes:
        return None
    series = {r["name"]: [r["precision_at_10"]["per_class"].get(c) for c in classes] for r in reps}
    return _grouped_bars(classes, series, "similarity precision@10 per class", "precision@10")


def probe_figure(report: dict[str, Any]) -> bytes | None:
    """Linear-probe balanced accuracy with 10% and 100% of the train part."""
    reps = report.get("representations") or []
    if not reps:
        return None
    fractions = list(reps[0]["probe"])
    series = {
        f"{f} of train": [r["probe"][f]["balanced_accuracy"] for r in reps] for f in fractions
    }
    return _grouped_bars(
        [r["name"] for r in reps], series, "linear probe on val", "balanced accuracy"
    )


def figures(report: dict[str, Any]) -> dict[str, bytes]:
    """{file name: PNG bytes} of every figure the report can show."""
    out = {}
    for name, make in ((PRECISION_PNG, precision_figure), (PROBE_PNG, probe_figure)):
        png = make(report)
        if png is not None:
            out[name] = png
    return out
