"""``likeness``: how many of an object's nearest neighbours are anomalies a person labelled.

For a survey whose label schema declares anomaly classes (:mod:`backend.latent.labelled`),
each object's ``likeness`` is the share of its ``k`` nearest neighbours in the embedding space
that are labelled anomalies outside the held-out (validation) rows: "objects near the
anomalies you labelled". It reads the kNN graph the ``knn`` scorer is computed from (the same
index or cell search, the same ``k``), so it costs one gather over that graph, O(N k), and no
search of its own, at any survey size.

An object's own label never counts towards its likeness (the graph leaves each object out of
its own neighbours; where an approximate search returned fewer than ``k`` and the gap was
filled with the object itself, that entry is not counted either), so the choice of the
combination, which scores labelled objects, cannot reward a formula for reading their labels.

Measured on sdss_gz1 (four encoders, bench ``/work/exp/s10/taskB2/variants.py``, docs/results.md
issue 9 Q3): the plain share among the graph's 10 neighbours did as well as a
distance-weighted share, the share among the 10 or 30 nearest *labelled* objects (which needs a
search of every object among the labelled ones) and counting outward from each labelled
anomaly's neighbours (split-half average precision 0.380 / 0.382 / 0.390 / 0.352-0.374).
"""

from __future__ import annotations

import numpy as np

from backend.latent.errors import LatentError

CHUNK_ROWS = 1 << 20  # rows of the graph gathered at a time (bounded memory at 10^8 objects)


def likeness(ids: np.ndarray, positive: np.ndarray, chunk: int = CHUNK_ROWS) -> np.ndarray:
    """(N,) float32: per row of the kNN graph ``ids`` (N, k: each row's nearest other rows),
    the share of its ``k`` neighbours that are ``positive`` (N,) bool, its own row never
    counted."""
    ids = np.asarray(ids)
    positive = np.asarray(positive, dtype=bool).reshape(-1)
    if ids.ndim != 2 or len(ids) != len(positive):
        raise LatentError(f"likeness needs a kNN graph of {len(positive)} rows, got {ids.shape}")
    n, k = ids.shape
    out = np.zeros(n, dtype=np.float32)
    if k == 0 or not positive.any():
        return out
    for start in range(0, n, chunk):
        block = ids[start : start + chunk]
        rows = np.arange(start, start + len(block))[:, None]
        valid = (block >= 0) & (block != rows)
        hits = positive[np.where(valid, block, 0)] & valid
        out[start : start + len(block)] = hits.sum(axis=1) / k
    return out
