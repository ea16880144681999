"""Jobs that the labelling loop asks for: a retrain every N new labels.

:func:`maybe_schedule_retrain` is what the app calls after storing a label: when the label events
since the active classifier's label snapshot reach ``LATENTSKY_RETRAIN_EVERY`` (default 50) and no
retrain of that survey is queued or running, it submits a ``retrain`` job. It lives on the jobs
side: the jobs call the pipeline (:mod:`backend.active.loop`), the pipeline never imports jobs.
"""

from __future__ import annotations

from backend.active.loop import labels_since_active
from backend.config import retrain_every
from backend.jobs import table
from backend.labels.store import LabelStore


def maybe_schedule_retrain(
    survey: str, *, user: str = "loop", every: int | None = None, store: LabelStore | None = None
) -> int | None:
    """Submit a retrain job when enough new labels arrived; returns its id, else None."""
    from backend.jobs.api import submit_job

    every = every or retrain_every()
    if labels_since_active(survey, store) < every:
        return None
    table.reap_expired()  # a retrain whose worker was lost no longer blocks the next one
    if table.retrain_busy(survey):
        return None
    return submit_job("retrain", survey, {}, user)
