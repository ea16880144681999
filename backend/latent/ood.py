"""Out-of-distribution scores: how far an embedding lies from what an encoder learnt from.

The reference of an encoder version is a sample of its training embeddings (unit vectors,
float16, at most ``MAX_ROWS`` rows) and the quantiles of the in-distribution score of that
sample (each row scored against the others: leave-one-out). An object's score is the mean
cosine distance to its ``k`` nearest reference rows; the survey-level summary compares the
scores with the reference's 99th percentile. Pure numpy: no web, no database, no torch.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from backend.atomic import atomic_write
from backend.errors import UserError

REFERENCE_FILE = "ood_reference.npz"
MAX_ROWS = 5000
DEFAULT_K = 10
QUANTILES = (0.5, 0.9, 0.95, 0.99)
#: fraction of objects beyond the reference's 99th percentile -> verdict
LIKE_BELOW, UNLIKE_ABOVE = 0.05, 0.5
VERDICTS = ("like the training data", "partly unlike", "unlike")


@dataclass(frozen=True)
class OODReference:
    """A sample of an encoder's training embeddings and its in-distribution score quantiles."""

    vectors: np.ndarray  # (R, D) float16 unit vectors
    quantiles: dict[float, float]  # q -> leave-one-out score of the reference at q
    k: int
    source: str  # what the sample was taken from (survey and encoder version, or a corpus)
    rows: np.ndarray | None = None  # the sample's rows in the training embeddings

    def own_columns(self, n: int, start: int = 0) -> np.ndarray:
        """For training rows ``start .. start + n``: the reference row holding each (-1: none),
        so that a training object is not scored against itself."""
        out = np.full(n, -1, dtype=np.int64)
        if self.rows is not None:
            inside = (self.rows >= start) & (self.rows < start + n)
            out[self.rows[inside] - start] = np.nonzero(inside)[0]
        return out

    @property
    def threshold(self) -> float:
        """The reference's 99th percentile: beyond it an object is out of distribution."""
        return self.quantiles[0.99]


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32); zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise UserError(f"embeddings must be 2-D (N, D), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise UserError("embeddings contain NaN or infinite values")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def knn_distance(
    reference: np.ndarray, queries: np.ndarray, k: int, *, leave_one_out: bool = False,
    exclude: np.ndarray | None = None, chunk: int = 2048,
) -> np.ndarray:  # fmt: skip
    """Mean cosine distance of each unit query row to its ``k`` nearest reference rows.

    ``leave_one_out``: the queries are the reference itself (row i is not its own neighbour);
    ``exclude``: per query, a reference row that is the query itself (-1: none).
    """
    ref = np.asarray(reference, dtype=np.float32)
    q = np.asarray(queries, dtype=np.float32)
    if q.shape[1] != ref.shape[1]:
        raise UserError(
            f"embeddings have {q.shape[1]} dimensions but the reference has {ref.shape[1]}"
        )
    if leave_one_out:
        exclude = np.arange(len(q))
    k = max(1, min(int(k), len(ref) - (1 if exclude is not None else 0)))
    out = np.empty(len(q), dtype=np.float32)
    for lo in range(0, len(q), chunk):
        sims = q[lo : lo + chunk] @ ref.T
        if exclude is not None:
            own = exclude[lo : lo + chunk]
            hit = np.nonzero(own >= 0)[0]
            sims[hit, own[hit]] = -np.inf
        top = np.partition(-sims, k - 1, axis=1)[:, :k]
        out[lo : lo + chunk] = 1.0 + top.mean(axis=1)  # 1 - mean similarity
    return out


def build_reference(
    embeddings: np.ndarray, *, source: str, k: int = DEFAULT_K, max_rows: int = MAX_ROWS,
    seed: int = 0,
) -> OODReference:  # fmt: skip
    """The reference of an encoder from (a sample of) its training embeddings."""
    n = len(embeddings)
    if n < 2:
        raise UserError(f"an OOD reference needs at least 2 training embeddings, got {n}")
    rows = np.arange(n)
    if n > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(n, max_rows, replace=False))
    vectors = unit_rows(np.asarray(embeddings[rows])).astype(np.float16)
    own = knn_distance(vectors, vectors, k, leave_one_out=True)
    quantiles = {q: float(np.quantile(own, q)) for q in QUANTILES}
    return OODReference(vectors, quantiles, int(k), source, rows)


def score(
    reference: OODReference, embeddings: np.ndarray, *, training: bool = False, chunk: int = 4096
) -> np.ndarray:
    """(N,) float32 OOD score of each embedding: mean cosine distance to its k nearest
    reference rows (higher: less like the training data). ``training``: ``embeddings`` are the
    very embeddings the reference was sampled from (an object is not its own neighbour). Read
    in chunks (memory-mapped ok)."""
    n = len(embeddings)
    out = np.empty(n, dtype=np.float32)
    for lo in range(0, n, chunk):
        block = unit_rows(np.asarray(embeddings[lo : lo + chunk]))
        own = reference.own_columns(len(block), lo) if training else None
        out[lo : lo + len(block)] = knn_distance(reference.vectors, block, reference.k, exclude=own)
    return out


def verdict(fraction_beyond: float) -> str:
    """'like the training data', 'partly unlike' or 'unlike' from the fraction beyond p99."""
    if fraction_beyond < LIKE_BELOW:
        return VERDICTS[0]
    return VERDICTS[1] if fraction_beyond < UNLIKE_ABOVE else VERDICTS[2]


def summarise(scores: np.ndarray, reference: OODReference) -> dict[str, Any]:
    """Median score, fraction beyond the reference's p99 and the verdict of a set of objects."""
    s = np.asarray(scores, dtype=np.float64)
    s = s[np.isfinite(s)]
    if not len(s):
        return {"n": 0, "median": None, "fraction_beyond_p99": None, "verdict": None}
    beyond = float(np.mean(s > reference.threshold))
    return {
        "n": len(s), "median": float(np.median(s)),
        "reference_median": reference.quantiles[0.5], "reference_p99": reference.threshold,
        "fraction_beyond_p99": beyond, "verdict": verdict(beyond),
    }  # fmt: skip


def save_reference(reference: OODReference, path: Path) -> None:
    """Write the reference as one .npz, atomically."""
    qs = np.array(sorted(reference.quantiles), dtype=np.float64)

    def write(tmp: Path) -> None:
        buf = io.BytesIO()
        np.savez(
            buf, vectors=reference.vectors.astype(np.float16), q=qs,
            values=np.array([reference.quantiles[q] for q in qs], dtype=np.float64),
            k=np.int64(reference.k), source=np.array(reference.source),
            rows=np.asarray([] if reference.rows is None else reference.rows, np.int64),
        )  # fmt: skip
        tmp.write_bytes(buf.getvalue())

    atomic_write(Path(path), write)


def load_reference(path: Path) -> OODReference:
    """Read a reference written by :func:`save_reference` (one clear error if unreadable)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            vectors = np.asarray(z["vectors"], dtype=np.float16)
            quantiles = {float(q): float(v) for q, v in zip(z["q"], z["values"], strict=True)}
            rows = np.asarray(z["rows"], np.int64) if "rows" in z.files else None
            rows = rows if rows is not None and len(rows) == len(vectors) else None
            return OODReference(vectors, quantiles, int(z["k"]), str(z["source"]), rows)
    except (OSError, KeyError, ValueError) as exc:
        raise UserError(f"{path}: not a readable OOD reference ({exc})") from exc


def auroc(negatives: np.ndarray, positives: np.ndarray) -> float:
    """Area under the ROC curve of a score separating positives (higher) from negatives."""
    from scipy.stats import rankdata

    neg, pos = np.asarray(negatives, float), np.asarray(positives, float)
    ranks = rankdata(np.concatenate([neg, pos]))
    return float((ranks[len(neg) :].sum() - len(pos) * (len(pos) + 1) / 2) / (len(neg) * len(pos)))
