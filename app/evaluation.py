"""The latest ``python -m backend evaluate`` report of a survey, for *Models & jobs*.

Reads ``products/<survey>/evaluation/<task>/report.json`` and its PNG figures (never torch).
The tables are rendered again from the JSON by :func:`backend.evaluation.report.render_markdown`,
which escapes every user-provided string (class, column and survey names); the command line is
shown as escaped HTML text.
"""

from __future__ import annotations

import html
import shlex
from pathlib import Path
from typing import Any

import panel as pn
import param

from app.safe import guarded, message_pane
from backend.evaluation.report import (
    REPORT_JSON,
    TASK_PATTERN,
    latest_report,
    render_markdown,
    report_dir,
    report_tasks,
)

FIGURE_WIDTH = 520
DEFAULT_TASK = "class"  # ``evaluate --task``'s default
INTRO = (
    "Encoders side by side with baselines (pixel PCA, a randomly initialised network) on the "
    "survey's stored validation split: kNN and linear-probe classification, similarity "
    "precision@10 per class, rare-class retrieval and anomaly recall, and the classifiers' "
    "accuracy and calibration with bootstrap intervals."
)


def command_html(command: str) -> str:
    """A command line as inert, selectable HTML."""
    return (
        "<pre style='white-space:pre-wrap;background:#f1f5f9;padding:6px 10px;"
        "border-radius:4px;font-size:12px;margin:4px 0'>"
        f"{html.escape(command, quote=True)}</pre>"
    )


def classifier_labels(survey: str) -> tuple[str | None, str]:
    """(catalog column, task) the survey's classifier learnt from: the active one's, else the
    latest one's; (None, "class") when no classifier learnt from a catalog column."""
    from backend.active.loop import catalog_sources
    from backend.registry import ModelRegistry

    registry = ModelRegistry()
    classifiers = [v for v in registry.list(survey=survey) if v.kind == "classifier"]
    active = registry.active_versions(survey).get("classifier")
    ordered = [v for v in classifiers if v.version == active] + classifiers[::-1]
    for version in ordered:
        columns = catalog_sources(version)
        task = str((version.meta.get("training") or {}).get("task") or DEFAULT_TASK)
        if columns and TASK_PATTERN.fullmatch(task):
            return columns[0], task
    return None, DEFAULT_TASK


def suggested_command(
    survey: str, report: dict[str, Any] | None, label_column: str | None = None,
    task: str = DEFAULT_TASK,
) -> str:  # fmt: skip
    """The command that refreshes ``report``, or makes a first one from ``label_column`` (the
    catalog column with the class names; ``COLUMN`` to fill in when unknown) for ``task``."""
    if report and isinstance(report.get("command"), str):
        return report["command"]
    words = ["python", "-m", "backend", "evaluate", "--survey", survey,
             "--label-column", label_column or "COLUMN"]  # fmt: skip
    return shlex.join(words + ([] if task == DEFAULT_TASK else ["--task", task]))


def no_report_text(survey: str, task: str, column_known: bool) -> str:
    """What the panel says when the survey has no stored report (Markdown, escaped)."""
    # survey and task names are letters, digits, "_", "." and "-" (the survey store's and
    # report_dir's patterns): inert in a code span, where escapes would show
    where = f"`products/{survey}/evaluation/{task}/`"
    column = (
        "its label column is the one the classifier learnt from"
        if column_known
        else "`COLUMN`: the catalog column with the class names"
    )
    return (
        f"*No evaluation report for this survey yet.* Make one with the command below ({column}),"
        f" then press *Reload*. This panel shows the report `evaluate` stores in {where}; one "
        "written only with `--out` or `--json` elsewhere does not show here."
    )


def figure_paths(directory: Path) -> list[Path]:
    return sorted(p for p in Path(directory).glob("*.png") if p.is_file())


class EvaluationPanel(pn.viewable.Viewer):
    """Report tables, figures and the command line to refresh them; *Reload* re-reads disk."""

    survey = param.String(default="")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._alert = message_pane()
        tasks = report_tasks(self.survey)
        self.task = pn.widgets.Select(
            label="Task", options=tasks, value=tasks[0] if tasks else None, width=160,
            visible=len(tasks) > 1,
        )  # fmt: skip
        self.reload = pn.widgets.Button(label="Reload", color="light", width=90)
        self.reload.on_click(guarded(self._alert)(lambda e: self.refresh(reread_tasks=True)))
        self.task.param.watch(guarded(self._alert)(lambda e: self.refresh()), "value")
        self.body = pn.Column(sizing_mode="stretch_width")
        self.report: dict[str, Any] | None = None
        self.refresh()

    def refresh(self, reread_tasks: bool = False) -> None:
        if reread_tasks:
            tasks = report_tasks(self.survey)
            self.task.options = tasks
            self.task.visible = len(tasks) > 1
            if tasks and self.task.value not in tasks:
                self.task.value = tasks[0]
        found = latest_report(self.survey, self.task.value) if self.task.value else None
        if found is None:
            found = latest_report(self.survey)
        self.report = found[1] if found else None
        self.body[:] = self.parts(found)

    def parts(self, found: tuple[Path, dict[str, Any]] | None) -> list[Any]:
        if found is None:
            column, task = classifier_labels(self.survey)
            return [
                pn.pane.Markdown(
                    no_report_text(self.survey, task, column is not None),
                    styles={"color": "#6b7280", "font-size": "13px"},
                    sizing_mode="stretch_width",
                ),
                pn.pane.HTML(
                    command_html(suggested_command(self.survey, None, column, task)),
                    sizing_mode="stretch_width",
                ),
            ]
        command = suggested_command(self.survey, found[1])
        directory, report = found
        figures = [
            pn.pane.PNG(path.read_bytes(), width=FIGURE_WIDTH, sizing_mode="fixed")
            for path in figure_paths(directory)
        ]
        previous = directory / "previous" / REPORT_JSON
        note = " The report before it is kept in `previous/`." if previous.is_file() else ""
        return [
            pn.pane.Markdown(
                f"{INTRO} Refresh it with:{note}", styles={"font-size": "13px", "color": "#475569"}
            ),
            pn.pane.HTML(command_html(command), sizing_mode="stretch_width"),
            *([pn.GridBox(*figures, ncols=2, sizing_mode="fixed")] if figures else []),
            pn.pane.Markdown(
                render_markdown(report),
                disable_math=True,
                sizing_mode="stretch_width",
                styles={"font-size": "12.5px"},
            ),
        ]

    @property
    def directory(self) -> Path | None:
        return report_dir(self.survey, self.task.value) if self.task.value else None

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            pn.Row(self.task, self.reload),
            self._alert,
            self.body,
            sizing_mode="stretch_width",
        )
