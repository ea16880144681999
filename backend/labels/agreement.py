"""Agreement between labellers: Krippendorff's alpha over everyone, Cohen's kappa per pair.

Both correct raw agreement for chance (class frequencies), so a pair that agrees 70% of the time
on a survey dominated by one class can still score near 0. Vote sources (Galaxy Zoo fractions)
take part as labellers answering their most voted class, named ``votes:<source>``.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

MIN_COMMON = 5  # objects two labellers must share before their kappa is reported
CACHE_SIZE = 16  # reports kept (per process), keyed by the content of the answers
_CACHE: OrderedDict[tuple[str, int, int], dict[str, Any]] = OrderedDict()
_CACHE_LOCK = threading.Lock()


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
    """From one answer per (object_id, user) (columns object_id, user, value); a later row for
    the same (object_id, user) wins. Cached by content: the same answers give the same report
    object without recomputing (treat it as read-only)."""
    answers = answers[["object_id", "user", "value"]].astype(str)
    digest = hashlib.sha256(
        pd.util.hash_pandas_object(answers, index=False).to_numpy().tobytes()
    ).hexdigest()
    key = (digest, len(answers), min_common)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    report = compute_report(answers, min_common)
    with _CACHE_LOCK:
        _CACHE[key] = report
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return report


def compute_report(answers: pd.DataFrame, min_common: int) -> dict[str, Any]:
    """The report, with sparse matrix products over (labeller x object) indicator matrices:
    cost grows with the labels shared, not with the number of labeller pairs times objects."""
    user_codes, all_users = pd.factorize(answers["user"], sort=True)
    object_codes, all_objects = pd.factorize(answers["object_id"])
    value_codes, classes = pd.factorize(answers["value"], sort=True)
    n_objects, n_classes = len(all_objects), len(classes)
    key = user_codes.astype(np.int64) * n_objects + object_codes
    last = ~pd.Series(key).duplicated(keep="last").to_numpy()  # one answer per (object, user)
    u, o, v = user_codes[last], object_codes[last], value_codes[last].astype(np.int64)
    counts = np.bincount(u, minlength=len(all_users))
    per_object = np.bincount(o, minlength=n_objects)
    report: dict[str, Any] = {
        "labellers": dict(zip(all_users.tolist(), counts.tolist(), strict=True)),
        "objects": n_objects,
        "objects_with_2_or_more": int((per_object >= 2).sum()),
        "krippendorff_alpha": None,
        "pairs": [],
    }
    if report["objects_with_2_or_more"] == 0:
        report["note"] = "no object has labels from two labellers yet"
        return report
    shared = per_object[o] >= 2
    u, o, v = u[shared], o[shared], v[shared]
    present, u = np.unique(u, return_inverse=True)  # labellers who share an object, sorted
    users = all_users[present].tolist()
    n_users = len(users)
    if n_classes >= 2:
        report["krippendorff_alpha"] = _nominal_alpha(o, v, n_objects, n_classes)
    ones = np.ones(len(u), dtype=np.float64)
    labelled_t = sparse.csr_matrix((ones, (o, u)), shape=(n_objects, n_users))
    # same[a, b]: objects a and b gave the same class (columns: object * n_classes + class)
    by_class = sparse.csr_matrix(
        (ones, (u, o * n_classes + v)), shape=(n_users, n_objects * n_classes)
    )
    same = (by_class @ by_class.T).toarray()
    # marginal_k[a, b]: a's labels of class k on objects b labelled too; their sum over k is
    # the number of objects both labelled, and sum_k marginal_k * marginal_k.T is n^2 p_e
    common = np.zeros((n_users, n_users))
    expected = np.zeros((n_users, n_users))
    for k in range(n_classes):
        in_k = v == k
        if not in_k.any():
            continue
        class_k = sparse.csr_matrix((ones[in_k], (u[in_k], o[in_k])), shape=(n_users, n_objects))
        marginal = (class_k @ labelled_t).toarray()
        common += marginal
        expected += marginal * marginal.T
    a_idx, b_idx = np.triu_indices(n_users, k=1)
    n = common[a_idx, b_idx]
    keep = n >= max(min_common, 1)
    a_idx, b_idx, n = a_idx[keep], b_idx[keep], n[keep]
    agree_n, e = same[a_idx, b_idx], expected[a_idx, b_idx]
    denominator = n * n - e  # kappa = (p_o - p_e) / (1 - p_e), times n^2 above and below
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = ((agree_n * n - e) / denominator).astype(object)
    kappa[np.isclose(denominator, 0.0)] = None  # both gave one and the same class throughout
    names = np.asarray(users, dtype=object)
    report["pairs"] = [
        {"a": a, "b": b, "common": c, "agreement": g, "cohen_kappa": k}
        for a, b, c, g, k in zip(
            names[a_idx].tolist(), names[b_idx].tolist(), n.astype(np.int64).tolist(),
            (agree_n / n).tolist(), kappa.tolist(), strict=True,
        )
    ]  # fmt: skip
    return report


def _nominal_alpha(
    objects: np.ndarray, values: np.ndarray, n_objects: int, n_classes: int
) -> float | None:
    """Krippendorff's alpha (nominal) from the coincidences of units labelled twice or more."""
    n_uc = np.zeros((n_objects, n_classes))
    np.add.at(n_uc, (objects, values), 1.0)
    m_u = n_uc.sum(axis=1)
    pairable = m_u >= 2
    n_uc, m_u = n_uc[pairable], m_u[pairable]
    n_c = n_uc.sum(axis=0)
    total = n_c.sum()
    observed_same = (n_uc * (n_uc - 1) / (m_u - 1)[:, None]).sum()
    expected = total * total - (n_c * n_c).sum()
    if expected <= 0:
        return None
    return float(1.0 - (total - 1) * (total - observed_same) / expected)


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
