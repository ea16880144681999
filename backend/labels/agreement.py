"""Agreement between labellers: Krippendorff's alpha over everyone, Cohen's kappa per pair.

Both correct raw agreement for chance (class frequencies), so a pair that agrees 70% of the time
on a survey dominated by one class can still score near 0. Vote sources (Galaxy Zoo fractions)
take part as labellers answering their most voted class, named ``votes:<source>``.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import krippendorff
import numpy as np
import pandas as pd
from sklearn.metrics import cohen_kappa_score

MIN_COMMON = 5  # objects two labellers must share before their kappa is reported


def votes_as_answers(votes: pd.DataFrame) -> pd.DataFrame:
    """(object_id, user, value): each vote source's most voted class per object."""
    if votes.empty:
        return pd.DataFrame(columns=["object_id", "user", "value"])
    top = votes.sort_values("fraction", ascending=False).drop_duplicates(["object_id", "source"])
    return pd.DataFrame({
        "object_id": top["object_id"].astype(str),
        "user": "votes:" + top["source"].astype(str),
        "value": top["value"].astype(str),
    })  # fmt: skip


def agreement_report(answers: pd.DataFrame, min_common: int = MIN_COMMON) -> dict[str, Any]:
    """From one answer per (object_id, user) (columns object_id, user, value)."""
    answers = answers[["object_id", "user", "value"]].astype(str)
    users = sorted(answers["user"].unique())
    per_object = answers.groupby("object_id")["user"].nunique()
    shared = per_object[per_object >= 2].index
    report: dict[str, Any] = {
        "labellers": {u: int((answers["user"] == u).sum()) for u in users},
        "objects": int(per_object.size),
        "objects_with_2_or_more": len(shared),
        "krippendorff_alpha": None,
        "pairs": [],
    }
    if len(shared) == 0:
        report["note"] = "no object has labels from two labellers yet"
        return report
    grid = answers[answers["object_id"].isin(shared)].pivot(
        index="user", columns="object_id", values="value"
    )
    classes = sorted(answers["value"].unique())
    codes = grid.apply(lambda col: col.map({c: i for i, c in enumerate(classes)}))
    data = codes.to_numpy(dtype=float)  # NaN where a labeller did not label the object
    if len(classes) >= 2:
        report["krippendorff_alpha"] = float(
            krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
        )
    for a, b in combinations(grid.index, 2):
        both = grid.loc[a].notna() & grid.loc[b].notna()
        n = int(both.sum())
        if n < min_common:
            continue
        ya, yb = grid.loc[a, both].to_numpy(), grid.loc[b, both].to_numpy()
        kappa = cohen_kappa_score(ya, yb) if len(set(ya) | set(yb)) > 1 else float("nan")
        report["pairs"].append({
            "a": a, "b": b, "common": n, "agreement": float(np.mean(ya == yb)),
            "cohen_kappa": None if np.isnan(kappa) else float(kappa),
        })  # fmt: skip
    return report


def report_text(report: dict[str, Any]) -> str:
    """The report as a few lines of plain text."""
    lines = [
        f"labellers: {len(report['labellers'])}; objects labelled: {report['objects']}; "
        f"by two or more: {report['objects_with_2_or_more']}"
    ]
    for user, n in report["labellers"].items():
        lines.append(f"  {user}: {n} labels")
    alpha = report["krippendorff_alpha"]
    if alpha is not None:
        lines.append(f"Krippendorff's alpha (nominal, all labellers): {alpha:.3f}")
    if report.get("note"):
        lines.append(report["note"])
    for p in report["pairs"]:
        kappa = "n/a" if p["cohen_kappa"] is None else f"{p['cohen_kappa']:.3f}"
        lines.append(
            f"  {p['a']} vs {p['b']}: {p['common']} shared objects, "
            f"{100 * p['agreement']:.0f}% agree, Cohen's kappa {kappa}"
        )
    return "\n".join(lines)
