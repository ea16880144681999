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

from app.auth import require_session, restrict, session_account
from app.safe import clear, guarded, in_thread, message_pane, say
from app.state import AppState
from app.widgets import data_table
from backend.auth.roles import require_cancel

log = logging.getLogger(__name__)

POLL_MS = 2000
ACTIVE = ("queued", "running")
FINISHED = ("succeeded", "failed", "cancelled")
STALE_QUEUED_S = 60  # a job queued this long with nothing running: is the worker up?
GATED_KINDS = ("retrain", "finetune", "train-classifier")  # judged by the activation gate
LABEL_KINDS = ("retrain", "finetune")  # learn from the label store: the Label view hears of them
OUTCOME_CSS = "white-space:normal;line-height:1.3"
NO_JOBS = "No jobs for this survey yet."


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


def gate_outcome(kind: str, status: str, result: dict[str, Any] | None) -> str | None:
    """Plain text: whether a finished retrain/fine-tune/classifier job's version was activated,
    and the activation gate's reason; None for other jobs (or results without a decision)."""
    result = result or {}
    if kind not in GATED_KINDS or status != "succeeded" or "activated" not in result:
        return None
    what = "activated" if result["activated"] else "not activated"
    reason = str(result.get("reason") or "").strip()
    return f"{what}: {reason}" if reason else what


def outcome_html(kind: str, status: str, result: dict[str, Any] | None, error: str | None) -> str:
    """The *outcome* cell of a job (HTML, every part escaped): the version it made and, for jobs
    the gate judged, whether it was activated and why (full text in the tooltip)."""
    result = result or {}
    if status != "succeeded":
        text = (error or "").strip()
        short = text.splitlines()[0][:80] if text else ""
        return f"<span title='{html.escape(text[:2000])}'>{html.escape(short)}</span>"
    version = html.escape(str(result.get("version", "")))
    gate = gate_outcome(kind, status, result)
    if gate is None:
        return version
    refused = not result.get("activated")
    mark = "color:#b91c1c;font-weight:600" if refused else "color:#166534"
    head, _, reason = gate.partition(": ")
    return (
        f"<div style='{OUTCOME_CSS}' title='{html.escape(gate)}'>{version} · "
        f"<span style='{mark}'>{html.escape(head)}</span>"
        + (f": {html.escape(reason)}" if reason else "")
        + "</div>"
    )


def gate_news(job: dict[str, Any]) -> str | None:
    """What the Label view tells labellers about a finished retrain or fine-tune that left the
    active classifier as it was (not activated, or failed); None otherwise. HTML, every value
    from the job escaped."""
    kind, status = str(job.get("kind", "")), str(job.get("status", ""))
    if kind not in LABEL_KINDS:
        return None
    what = "Retraining" if kind == "retrain" else "Fine-tuning"
    who = html.escape(str(job.get("requested_by") or "anonymous"))
    head = f"{what} job #{int(job['id'])} (requested by {who})"
    result = job.get("result") or {}
    if status == "failed":
        error = str(job.get("error") or "").strip()
        first = error.splitlines()[0][:300] if error else "no message"
        return f"{head} failed: {html.escape(first)}. The active classifier did not change."
    if status != "succeeded" or result.get("activated", True):
        return None
    version = html.escape(str(result.get("version", "")))
    reason = html.escape(str(result.get("reason") or "no reason recorded"))
    return (
        f"{head} made classifier <code>{version}</code> but it was <b>not activated</b>: "
        f"{reason}. The active classifier did not change; the queue keeps following it "
        "(<i>Models &amp; jobs</i> shows the figures, and a person can still activate the "
        "version there)."
    )


def new_gate_news(jobs: pd.DataFrame, seen: set[int] | None) -> tuple[list[str], set[int]]:
    """Messages (:func:`gate_news`, oldest first) for retrain/fine-tune jobs in ``jobs`` that
    finished since the ids in ``seen``, and the updated ``seen``; ``""`` for one whose version
    was activated (an earlier message no longer holds). ``seen=None`` (a page that just loaded)
    only takes note of what has finished: each outcome is told once, live."""
    if jobs.empty:
        return [], set() if seen is None else seen
    done = jobs[jobs["kind"].isin(LABEL_KINDS) & jobs["status"].isin(FINISHED)]
    ids = {int(i) for i in done["id"]}
    if seen is None:
        return [], ids
    news = []
    for job in done.sort_values("id").to_dict("records"):
        if int(job["id"]) in seen:
            continue
        text = gate_news(job)
        if text is None and job["status"] == "succeeded":
            text = ""
        if text is not None:
            news.append(text)
    return news, seen | ids


def jobs_frame(jobs: pd.DataFrame) -> pd.DataFrame:
    """The columns a user needs: what, who, state, progress, outcome (HTML, escaped)."""
    if jobs.empty:
        return pd.DataFrame(
            columns=["id", "kind", "status", "outcome", "progress", "by", "created"]
        )
    outcome = [
        outcome_html(k, s, r, e)
        for k, r, s, e in zip(
            jobs["kind"], jobs["result"], jobs["status"], jobs["error"], strict=True
        )
    ]
    return pd.DataFrame({
        "id": jobs["id"], "kind": jobs["kind"], "status": jobs["status"], "outcome": outcome,
        "progress": [progress_text(p) for p in jobs["progress"]],
        "by": jobs["requested_by"],
        "created": jobs["created"].astype(str).str.slice(0, 19).str.replace("T", " "),
    })  # fmt: skip


def cancel_message(job_id: int, status: str) -> tuple[str, str]:
    """What the page says after a cancel request, and the alert's level: a job already
    switching its models in cannot be cancelled, and the page must not suggest it was."""
    if status == "activating":
        return (
            f"Job #{job_id} is already switching its new models in: too late to cancel; "
            "it will finish.",
            "warning",
        )
    if status == "cancelled":
        return f"Job #{job_id} cancelled.", "success"
    if status in FINISHED:
        return f"Job #{job_id} had already {status}; nothing to cancel.", "info"
    return f"Job #{job_id}: cancel requested; it stops at its next step.", "info"


class JobsPanel(pn.viewable.Viewer):
    """Retrain button, live job list and cancel, for one survey."""

    survey = param.String()
    state = param.ClassSelector(class_=AppState)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._alert = message_pane()
        self.retrain = pn.widgets.Button(
            label="Retrain the classifier with the labels", color="primary", width=300
        )
        self.retrain.on_click(lambda _: in_thread(guarded(self._alert)(self.submit)))
        self.finetune = pn.widgets.Button(
            label="Fine-tune the encoder with the labels", color="default", width=300
        )
        self.finetune.on_click(
            lambda _: in_thread(guarded(self._alert)(lambda: self.submit("finetune")))
        )
        self.cancel_id = pn.widgets.Select(label="Job", options=[], width=140)
        self.cancel = pn.widgets.Button(label="Cancel job", width=110, disabled=True)
        self.cancel.on_click(lambda _: in_thread(guarded(self._alert)(self.cancel_job)))
        self.table = data_table(
            jobs_frame(pd.DataFrame()), height=260, formatters={"outcome": {"type": "html"}},
            widths={"outcome": 210},
        )  # fmt: skip
        self._cancel_row = pn.Row(self.cancel_id, self.cancel)
        self._finished: set[int] | None = None  # ids of finished jobs seen by refresh
        self.on_finished: Any = None  # called (no arguments) when a job finished since
        self._note = pn.pane.Markdown("", styles={"color": "#6b7280", "font-size": "12.5px"})
        self._poll: Any = None
        account = session_account()  # what the page offers; the callbacks check again
        if why := restrict("retrain", [self.retrain, self.finetune], account):
            say(self._alert, why, "info")
        self._cancel_why = restrict("cancel_own_job", [self.cancel, self.cancel_id], account)
        self._own_jobs_only = account is not None and not account.can("cancel_job")
        self._account_name = account.name if account is not None else None
        self.state.param.watch(guarded(self._alert)(self._on_tab), "tab")
        self.refresh()
        if self.state.tab == "models" and pn.state.curdoc is not None:
            self._start_polling()  # built as the tab opened: its change came before the watch

    # -- actions -----------------------------------------------------------------------------
    def submit(self, kind: str = "retrain") -> None:
        """Queue a ``retrain`` (classifier head) or ``finetune`` (encoder backbone) job."""
        from backend.jobs.api import submit_job  # imports the job kinds (and torch) on demand

        require_session("retrain")
        clear(self._alert)
        job_id = submit_job(kind, self.survey, {}, self.state.user_name)
        what = "Fine-tuning" if kind == "finetune" else "Retraining"
        say(self._alert, f"{what} job #{job_id} queued; its progress shows below.", "success")
        self.refresh()

    def cancel_job(self) -> None:
        from backend.jobs.table import get_job, request_cancel

        account = require_session("cancel_own_job")  # others' jobs: curator (below)
        if self.cancel_id.value is None:
            return
        require_cancel(account, get_job(int(self.cancel_id.value))["requested_by"])
        status = request_cancel(int(self.cancel_id.value))
        say(self._alert, *cancel_message(int(self.cancel_id.value), status))
        self.refresh()

    # -- polling -----------------------------------------------------------------------------
    def _on_tab(self, event: param.parameterized.Event) -> None:
        """Poll the job table only while the Models tab is shown."""
        if event.new == "models" and self._poll is None:
            self.refresh()
            self._start_polling()
        elif event.new != "models" and self._poll is not None:
            self._poll.stop()
            self._poll = None

    def _start_polling(self) -> None:
        self._poll = pn.state.add_periodic_callback(self._tick, period=POLL_MS)

    def _tick(self) -> None:
        in_thread(guarded(self._alert)(self.refresh))

    def refresh(self) -> None:
        """Re-read this survey's latest jobs."""
        from backend.jobs.table import list_jobs

        jobs = list_jobs(self.survey, limit=20)
        self.table.value = jobs_frame(jobs)
        # no jobs: one line says so (below) instead of an empty 260 px table and a cancel
        # picker with nothing to pick
        self.table.visible = self._cancel_row.visible = not jobs.empty
        active = jobs[jobs["status"].isin(ACTIVE)] if len(jobs) else jobs
        if self._own_jobs_only and len(active):  # below curator: only one's own jobs
            active = active[active["requested_by"] == self._account_name]
        ids = [int(i) for i in active["id"]] if len(active) else []
        self.cancel_id.options = ids
        self.cancel.disabled = not ids or self._cancel_why is not None
        self._note.object = self._worker_note(jobs)
        done = {int(i) for i, st in zip(jobs["id"], jobs["status"], strict=True) if st in FINISHED}
        if self._finished is not None and done - self._finished and self.on_finished is not None:
            self.on_finished()
        self._finished = done if self._finished is None else self._finished | done

    @staticmethod
    def _worker_note(jobs: pd.DataFrame) -> str:
        if jobs.empty:
            return NO_JOBS
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
            self.finetune,
            pn.pane.HTML(
                f"<div style='font:12.5px system-ui;color:#6b7280'>Retraining fits the "
                f"classifier head on {html.escape(self.survey)}'s labels (it also starts by "
                "itself every N new labels); fine-tuning also adapts the encoder's backbone "
                "(slower) and switches encoder and classifier together. A new version becomes "
                "active only if it is not worse than the active one on the validation split "
                "(the activation gate); the job list says why when it is not.</div>"
            ),
            self.table,
            self._cancel_row,
            self._note,
            sizing_mode="stretch_width",
        )
