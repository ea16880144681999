"""The job panel of the Models view: start a retraining, follow jobs' progress, cancel them.

Reads the ``jobs`` table (``backend.jobs.table``, no torch) every few seconds while the Models
tab is shown; submitting goes through ``backend.jobs.api`` (imported on click).
"""

from __future__ import annotations

import html
import logging
from typing import Any

import pandas as pd
import panel as pn
import param

from app.safe import clear, guarded, in_thread, message_pane, say
from app.state import AppState
from app.widgets import data_table

log = logging.getLogger(__name__)

POLL_MS = 2000
ACTIVE = ("queued", "running")
STALE_QUEUED_S = 60  # a job queued this long with nothing running: is the worker up?


def progress_text(progress: dict[str, Any] | None) -> str:
    """ "step 3/10 · loss 0.51 · ETA 12 s" from a job's progress record."""
    if not progress:
        return ""
    parts = []
    if progress.get("step") is not None:
        total = progress.get("total")
        parts.append(f"step {progress['step']}" + (f"/{total}" if total else ""))
    if isinstance(progress.get("loss"), int | float):
        parts.append(f"loss {progress['loss']:.3g}")
    if isinstance(progress.get("eta"), int | float):
        parts.append(f"ETA {progress['eta']:.0f} s")
    if progress.get("stage"):
        parts.insert(0, str(progress["stage"]))
    return " · ".join(parts)


def jobs_frame(jobs: pd.DataFrame) -> pd.DataFrame:
    """The columns a user needs: what, who, state, progress, outcome."""
    if jobs.empty:
        return pd.DataFrame(
            columns=["id", "kind", "status", "progress", "by", "created", "outcome"]
        )
    outcome = [
        (str((r or {}).get("version", "")) if s == "succeeded" else (e or "")[:80])
        for r, s, e in zip(jobs["result"], jobs["status"], jobs["error"], strict=True)
    ]
    return pd.DataFrame({
        "id": jobs["id"], "kind": jobs["kind"], "status": jobs["status"],
        "progress": [progress_text(p) for p in jobs["progress"]],
        "by": jobs["requested_by"],
        "created": jobs["created"].astype(str).str.slice(0, 19).str.replace("T", " "),
        "outcome": outcome,
    })  # fmt: skip


class JobsPanel(pn.viewable.Viewer):
    """Retrain button, live job list and cancel, for one survey."""

    survey = param.String()
    state = param.ClassSelector(class_=AppState)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._alert = message_pane()
        self.retrain = pn.widgets.Button(
            name="Retrain the classifier with the labels", button_type="primary", width=300
        )
        self.retrain.on_click(lambda _: in_thread(guarded(self._alert)(self.submit)))
        self.cancel_id = pn.widgets.Select(name="Job", options=[], width=140)
        self.cancel = pn.widgets.Button(name="Cancel job", width=110, disabled=True)
        self.cancel.on_click(lambda _: in_thread(guarded(self._alert)(self.cancel_job)))
        self.table = data_table(jobs_frame(pd.DataFrame()), height=220)
        self._note = pn.pane.Markdown("", styles={"color": "#6b7280", "font-size": "12.5px"})
        self._poll: Any = None
        self.state.param.watch(guarded(self._alert)(self._on_tab), "tab")
        self.refresh()

    # -- actions -----------------------------------------------------------------------------
    def submit(self) -> None:
        from backend.jobs.api import submit_job  # imports the job kinds (and torch) on demand

        clear(self._alert)
        job_id = submit_job("retrain", self.survey, {}, self.state.user_name)
        say(self._alert, f"Retraining job #{job_id} queued; its progress shows below.", "success")
        self.refresh()

    def cancel_job(self) -> None:
        from backend.jobs.table import request_cancel

        if self.cancel_id.value is None:
            return
        status = request_cancel(int(self.cancel_id.value))
        say(self._alert, f"Job #{self.cancel_id.value}: {status} (cancel requested).", "info")
        self.refresh()

    # -- polling -----------------------------------------------------------------------------
    def _on_tab(self, event: param.parameterized.Event) -> None:
        """Poll the job table only while the Models tab is shown."""
        if event.new == "models" and self._poll is None:
            self.refresh()
            self._poll = pn.state.add_periodic_callback(self._tick, period=POLL_MS)
        elif event.new != "models" and self._poll is not None:
            self._poll.stop()
            self._poll = None

    def _tick(self) -> None:
        in_thread(guarded(self._alert)(self.refresh))

    def refresh(self) -> None:
        """Re-read this survey's latest jobs."""
        from backend.jobs.table import list_jobs

        jobs = list_jobs(self.survey, limit=20)
        self.table.value = jobs_frame(jobs)
        active = jobs[jobs["status"].isin(ACTIVE)] if len(jobs) else jobs
        ids = [int(i) for i in active["id"]] if len(active) else []
        self.cancel_id.options = ids
        self.cancel.disabled = not ids
        self._note.object = self._worker_note(jobs)

    @staticmethod
    def _worker_note(jobs: pd.DataFrame) -> str:
        if jobs.empty:
            return "No jobs for this survey yet."
        queued = jobs[jobs["status"] == "queued"]
        if len(queued) and not (jobs["status"] == "running").any():
            age = (pd.Timestamp.now(tz="UTC") - pd.to_datetime(queued["created"], utc=True)).min()
            if age.total_seconds() > STALE_QUEUED_S:
                return (
                    "Jobs are waiting and none is running: is the worker up? Start it with "
                    "`python -m backend worker` (`make run` starts it beside the server)."
                )
        return ""

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            self._alert,
            self.retrain,
            pn.pane.HTML(
                f"<div style='font:12.5px system-ui;color:#6b7280'>Retrains the "
                f"classifier head on {html.escape(self.survey)}'s labels; the new version "
                "becomes active when its predictions are written (and retraining also starts "
                "by itself every N new labels).</div>"
            ),
            self.table,
            pn.Row(self.cancel_id, self.cancel),
            self._note,
            sizing_mode="stretch_width",
        )
