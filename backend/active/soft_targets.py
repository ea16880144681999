"""Vote fractions as soft targets: what a fine-tune learns from objects that carry votes.

A vote set (``labels import-votes``, e.g. Galaxy Zoo fractions) says more than its majority
class: a galaxy with 55% spiral votes is not a certain spiral. The fine-tuner trains on class
distributions, so an object with votes learns the fractions (renormalised over the task's
classes, averaged over vote sources) unless a person labelled it, in which case the person's
label wins as everywhere else in LatentSky. Everything else keeps its one-hot label.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backend.labels import LabelStore
from backend.labels.votes import soft_label_table


def vote_targets(
    store: LabelStore, survey: str, task: str, classes: list[str], object_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) float32 vote distributions per object and the (M,) rows that have them.

    Rows of objects without votes, with a person's label, or whose votes fall outside
    ``classes`` are zero and not listed."""
    ids = pd.Index(np.asarray(object_ids).astype(str))
    out = np.zeros((len(ids), len(classes)), np.float32)
    votes = store.votes(survey, task=task)
    if votes.empty:
        return out, np.array([], dtype=np.int64)
    wide = soft_label_table(votes, list(classes))
    labelled = set(store.current(survey, task=task)["object_id"].astype(str))  # people, imports
    wide = wide[~wide["object_id"].astype(str).isin(labelled)]
    where = ids.get_indexer(wide["object_id"].astype(str))
    fractions = wide[list(classes)].to_numpy(np.float32)
    totals = fractions.sum(axis=1)
    keep = (where >= 0) & (totals > 0)
    out[where[keep]] = fractions[keep] / totals[keep, None]
    return out, np.sort(where[keep]).astype(np.int64)
