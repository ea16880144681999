"""The agreement report computed with sparse matrix products equals the pairwise definition
(sklearn's Cohen's kappa per pair, the krippendorff package's alpha), and is cached by content."""

from __future__ import annotations

from itertools import combinations

import krippendorff
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from backend.labels import agreement
from backend.labels.agreement import agreement_report


def reference(answers: pd.DataFrame, min_common: int) -> tuple[float | None, dict]:
    """Alpha and pairs the slow way: one pivot, sklearn per pair (the code this replaced)."""
    grid = answers.pivot(index="user", columns="object_id", values="value")
    grid = grid.loc[:, grid.notna().sum() >= 2]
    classes = sorted(answers["value"].unique())
    codes = grid.apply(lambda col: col.map({c: i for i, c in enumerate(classes)}))
    alpha = krippendorff.alpha(
        reliability_data=codes.to_numpy(float), level_of_measurement="nominal"
    )
    pairs = {}
    for a, b in combinations(grid.index, 2):
        both = grid.loc[a].notna() & grid.loc[b].notna()
        if both.sum() < min_common:
            continue
        ya, yb = grid.loc[a, both].to_numpy(), grid.loc[b, both].to_numpy()
        kappa = cohen_kappa_score(ya, yb) if len(set(ya) | set(yb)) > 1 else None
        pairs[a, b] = (int(both.sum()), float(np.mean(ya == yb)), kappa)
    return float(alpha), pairs


def random_answers(seed: int, users: int = 14, objects: int = 120, k: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, objects)
    rows = []
    for u in range(users):
        seen = rng.random(objects) < rng.uniform(0.05, 0.9)
        noise = rng.uniform(0, 0.8)
        for o in np.flatnonzero(seen):
            value = truth[o] if rng.random() > noise else rng.integers(0, k)
            rows.append((f"o{o:03d}", f"user{u:02d}", f"c{value}"))
    rows += [("o000", "solo", "c0")]  # a labeller who shares nothing
    return pd.DataFrame(rows, columns=["object_id", "user", "value"])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_the_pairwise_definition(seed: int) -> None:
    answers = random_answers(seed)
    report = agreement_report(answers, min_common=5)
    alpha, pairs = reference(answers, 5)
    assert report["krippendorff_alpha"] == pytest.approx(alpha, abs=1e-9)
    got = {(p["a"], p["b"]): p for p in report["pairs"]}
    assert list(got) == list(pairs)  # same pairs, same order
    for key, (common, agree, kappa) in pairs.items():
        assert got[key]["common"] == common
        assert got[key]["agreement"] == pytest.approx(agree)
        if kappa is None:
            assert got[key]["cohen_kappa"] is None
        else:
            assert got[key]["cohen_kappa"] == pytest.approx(kappa, abs=1e-9)
    counts = answers["user"].value_counts()
    assert report["labellers"] == {u: int(counts[u]) for u in sorted(counts.index)}


def test_one_class_everywhere_gives_no_kappa_and_no_alpha() -> None:
    ids = [f"o{i}" for i in range(8)]
    answers = pd.concat(
        [pd.DataFrame({"object_id": ids, "user": u, "value": "spiral"}) for u in ("a", "b")]
    )
    report = agreement_report(answers)
    assert report["pairs"][0]["cohen_kappa"] is None and report["pairs"][0]["agreement"] == 1.0
    assert report["krippendorff_alpha"] is None


def test_reports_are_cached_by_content(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    compute = agreement.compute_report
    monkeypatch.setattr(agreement, "compute_report", lambda a, m: calls.append(1) or compute(a, m))
    answers = random_answers(3)
    first = agreement_report(answers)
    assert agreement_report(answers.copy()) == first and len(calls) == 1  # same labels: cached
    changed = answers.copy()
    changed.loc[0, "value"] = "c9"
    agreement_report(changed)
    assert len(calls) == 2  # a changed label is a new report
