"""Models & jobs: the survey's model versions, their metrics and diagnostic plots, retraining."""

from __future__ import annotations

import html
import io
from typing import Any

import pandas as pd
import panel as pn
import param

from app import plots
from app.auth import require_session, restrict
from app.data import SurveyData
from app.evaluation import EvaluationPanel
from app.exporting import file_name, table_bytes
from app.jobs import JobsPanel
from app.labelling import label_store, schema_for
from app.safe import guarded, heading, in_thread, md, message_pane, say
from app.state import AppState
from app.widgets import data_table
from app.widgets.table import TABLE_CSS
from backend.active.activation import describe, plan_activation, switch
from backend.registry import ModelRegistry, ModelVersion

KEY_METRICS = ("accuracy", "ece", "nmad_redshift", "loss", "val_loss", "recon_error_median")
HELP = """
**Model versions** trained on this survey, *active* ones first (they feed the other tabs), then
the newest; past ten versions the table scrolls.
Pick a version to see its held-out metrics: accuracy and calibration (ECE, reliability
diagram) for classifiers, PIT histograms (flat = calibrated uncertainties) and errors for
emulators, and training curves. Retraining rounds appear as a learning curve once a version
has a parent. A retrained classifier becomes active only if the *activation gate* finds it not
worse than the active one on the validation split; versions it refused are marked (hover for
why) and their details show its figures. *Activate this version* overrides it. *Jobs* starts a
retraining or fine-tuning and follows the worker's progress. *Evaluation* shows the latest
`python -m backend evaluate` report: encoders against baselines on the survey's validation
split.
"""
GATE_REFUSED = "refused by the gate"
JOBS_WIDTH = 400  # px of the jobs column beside the versions
VERSIONS_ROWS = 10  # rows the versions table shows before it scrolls inside itself
VERSIONS_ROW_PX = 38  # a versions row as drawn on sdss_gz1 (simple theme, 3 px padding)
VERSIONS_HEAD_PX = 30  # its header row
# the versions table's cells and titles closer: its first 8 columns (to "created") fit at 1400 px
# beside the jobs also with a gate's longest verdict
VERSIONS_CSS = """
.tabulator .tabulator-cell { padding: 3px 4px !important; }
.tabulator .tabulator-col .tabulator-col-content { padding: 4px 4px !important; }
"""


def gate_cell(gate: dict[str, Any] | None) -> str:
    """The *gate* cell of a version (HTML, escaped): refused, passed or activated on request,
    with the gate's reason as the tooltip; empty for versions the gate never judged."""
    if not gate:
        return ""
    reason = str(gate.get("reason") or "")
    if not gate.get("activate"):
        label, style = GATE_REFUSED, "color:#b91c1c;font-weight:600"
    elif reason.startswith("activated on request"):
        label, style = "activated on request", "color:#92400e"
    else:
        label, style = "passed the gate", "color:#166534"
    return f"<span style='{style}' title='{html.escape(reason)}'>{label}</span>"


def _num(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "–"


def gate_html(gate: dict[str, Any] | None, active_now: bool = False) -> str:
    """The activation gate's decision on a version and its figures (HTML, every value escaped):
    candidate against the then active version on the validation split. ``active_now``: the
    version is active (a refused one: a person activated it since)."""
    if not gate:
        return ""
    esc = html.escape
    refused = not gate.get("activate")
    since = "activated by hand since" if active_now else "not activated"
    verdict = (
        f"<b style='color:#b91c1c'>{GATE_REFUSED}</b> ({since})"
        if refused else "<b style='color:#166534'>activated by the gate</b>"
    )  # fmt: skip
    if not refused and str(gate.get("reason", "")).startswith("activated on request"):
        verdict = "<b style='color:#92400e'>activated on request</b>"
    parts = [
        f"<div class='lsm-gate'><div>Activation gate: {verdict}: "
        f"{esc(str(gate.get('reason') or ''))}</div>"
    ]
    metrics = gate.get("metrics") or {}
    cand, act = metrics.get("candidate") or {}, metrics.get("active") or {}
    if cand or act:
        names = (("balanced_accuracy", "balanced accuracy"), ("accuracy", "accuracy"),
                 ("ece", "ECE"))  # fmt: skip
        delta, ci = metrics.get("delta") or {}, metrics.get("delta_ci95") or {}
        tol = metrics.get("tolerance") or {}
        rows = []
        for key, label in names:
            diff = ""
            if key in delta:
                lo, hi = [*(ci.get(key) or []), None, None][:2]
                diff = f"{_num(delta[key])} [{_num(lo)}, {_num(hi)}]"
                if key in tol:
                    sign = "−" if key == "balanced_accuracy" else "+"
                    diff += f" <span class='lsm-dim'>(tolerance {sign}{_num(tol[key], 2)})</span>"
            rows.append(
                f"<tr><td>{label}</td><td>{_num(cand.get(key))}</td><td>{_num(act.get(key))}"
                f"</td><td>{diff}</td></tr>"
            )
        parts.append(
            "<table><tr><th></th>"
            f"<th>candidate {esc(str(gate.get('candidate') or ''))}</th>"
            f"<th>active {esc(str(gate.get('active') or ''))}</th>"
            "<th>difference [95% CI]</th></tr>" + "".join(rows) + "</table>"
        )
    n = gate.get("n_validation")
    if isinstance(n, int):
        parts.append(f"<div class='lsm-dim'>on {n:,} validation objects</div>")
    return (
        "<style>.lsm-gate{font:12.5px/1.5 system-ui;color:#1f2937;background:#f8fafc;"
        "border-left:4px solid #94a3b8;padding:4px 10px;margin:4px 0}.lsm-gate table{"
        "border-collapse:collapse;margin-top:4px}.lsm-gate td,.lsm-gate th{padding:1px 10px 1px"
        " 0;text-align:left}.lsm-gate th{font-weight:600}.lsm-dim{color:#6b7280}</style>"
        + "".join(parts)
        + "</div>"
    )


def activate_version(survey: str, version: ModelVersion, user: str) -> str:
    """Make ``version`` active for ``survey`` (a person's choice, gate or not): a classifier
    with the encoder it reads, in one write, now when that encoder's map, index and scores
    exist, else by an ``activate`` job that makes them first. Returns what to tell the user;
    raises :class:`RegistryError` when it cannot be done (:mod:`backend.active.activation`)."""
    plan = plan_activation(survey, version.kind, version.version)
    if plan.immediate:
        return switch(plan) + " The bar above the tabs offers to show it."
    from backend.jobs.api import submit_job  # the job kinds load on demand

    job_id = submit_job(
        "activate", survey, {"kind": version.kind, "version": version.version}, user
    )
    return describe(plan, done=False) + f" Job #{job_id} makes them; its progress shows below."


def versions_table(versions: list[ModelVersion], active: dict[str, str]) -> pd.DataFrame:
    """One row per version with its key metrics and the activation gate's verdict (the *gate*
    column is HTML, escaped, with the gate's reason as a tooltip): the active versions first,
    then the others newest first."""
    rows = []
    for v in versions_order(versions, active):
        row: dict[str, Any] = {
            "kind": v.kind, "version": v.version,
            "active": "✓" if active.get(v.kind) == v.version else "",
            "gate": gate_cell(v.gate),
            "created": str(v.meta.get("created", ""))[:16].replace("T", " "),  # to the minute
            "parent": v.meta.get("parent") or "",
        }  # fmt: skip
        labels = (v.meta.get("training") or {}).get("labels") or {}
        row["labels"] = labels.get("n_train", labels.get("n_labelled", ""))
        for key in KEY_METRICS:
            value = v.metrics.get(key)
            row[key] = round(float(value), 4) if isinstance(value, int | float) else None
        rows.append(row)
    frame = pd.DataFrame(rows)
    # the figures a reader compares come first, and when: at 1400 px they fit, what follows
    # scrolls; a column no version fills (an emulator's metric without emulators) is left out
    first = ["kind", "version", "active", "accuracy", "ece", "labels", "gate", "created"]
    always = ["kind", "version", "active", "created"]
    filled = [c for c in frame if c in always or frame[c].replace("", None).notna().any()]
    return frame[[c for c in first if c in filled] + [c for c in filled if c not in first]]


def versions_order(versions: list[ModelVersion], active: dict[str, str]) -> list[ModelVersion]:
    """``versions`` (registry order: oldest first) with the active ones first, then newest first."""
    newest = list(reversed(versions))
    return [v for v in newest if active.get(v.kind) == v.version] + [
        v for v in newest if active.get(v.kind) != v.version
    ]


def versions_height(n_rows: int) -> int | None:
    """Height of the versions table: None (as tall as its rows) up to :data:`VERSIONS_ROWS`
    rows, else bounded to that many, the rest scrolled inside the table."""
    if n_rows <= VERSIONS_ROWS:
        return None
    return VERSIONS_HEAD_PX + VERSIONS_ROWS * VERSIONS_ROW_PX


def lineage(versions: list[ModelVersion], leaf: ModelVersion) -> list[ModelVersion]:
    """``leaf`` and its ancestors (oldest first) among ``versions`` of the same kind."""
    by_name = {v.version: v for v in versions if v.kind == leaf.kind}
    chain, seen = [leaf], {leaf.version}
    while (parent := chain[-1].meta.get("parent")) and parent in by_name and parent not in seen:
        chain.append(by_name[parent])
        seen.add(parent)
    return chain[::-1]


MAX_PAIRS_SHOWN = 50  # pairs of labellers in the table (most shared objects first)


def agreement_markdown(report: dict[str, Any]) -> str:
    """Agreement between labellers as a short text and a table of pairs."""
    if report.get("objects_with_2_or_more", 0) == 0:
        return "*Agreement between labellers shows once two of them label the same objects.*"
    alpha = report.get("krippendorff_alpha")
    lines = [
        f"**Agreement** on {report['objects_with_2_or_more']:,} objects labelled by two or "
        "more: Krippendorff's α "
        + (f"**{alpha:.2f}**" if alpha is not None else "n/a")
        + " (1 = perfect, 0 = chance).",
    ]
    pairs = sorted(report["pairs"], key=lambda p: -p["common"])
    if pairs:
        lines += ["", "| labellers | shared | agree | Cohen's κ |", "|---|---:|---:|---:|"]
        for p in pairs[:MAX_PAIRS_SHOWN]:  # names are users' text: escaped, never markup
            kappa = "n/a" if p["cohen_kappa"] is None else f"{p['cohen_kappa']:.2f}"
            lines.append(
                f"| {md(p['a'])} · {md(p['b'])} | {p['common']:,} | {100 * p['agreement']:.0f}% "
                f"| {kappa} |"
            )
        if len(pairs) > MAX_PAIRS_SHOWN:
            lines += ["", f"*{len(pairs) - MAX_PAIRS_SHOWN:,} more pairs: `python -m backend "
                      "labels agreement` lists them all.*"]  # fmt: skip
    return "\n".join(lines)


def metric_cards(items: list[tuple[str, str]]) -> str:
    cards = "".join(
        f"<div class='lsm-card'><div>{label}</div><b>{value}</b></div>" for label, value in items
    )
    return (
        "<style>.lsm{display:flex;gap:10px;flex-wrap:wrap}.lsm-card{background:#f1f5f9;"
        "border-radius:6px;padding:6px 12px;font:12px system-ui;color:#475569}.lsm-card b"
        "{display:block;font-size:18px;color:#0b1a33}</style>"
        f"<div class='lsm'>{cards}</div>"
    )


def version_options(versions: list[ModelVersion], active: dict[str, str]) -> dict[str, str]:
    """The version picker's choices: label ("classifier v0002 (active)", "… · refused by the
    gate") -> ``kind/version``."""
    marks = {True: " (active)", False: ""}
    return {
        f"{v.kind} {v.version}{marks[active.get(v.kind) == v.version]}"
        + (f" · {GATE_REFUSED}" if v.gate and not v.gate.get("activate") else ""): (
            f"{v.kind}/{v.version}"
        )
        for v in versions
    }


def default_version(versions: list[ModelVersion], active: dict[str, str]) -> str | None:
    """The version shown first: the active classifier, else the first version, else None."""
    if "classifier" in active:
        return f"classifier/{active['classifier']}"
    return next((f"{v.kind}/{v.version}" for v in versions), None)


def version_cards(version: ModelVersion) -> list[tuple[str, str]]:
    """(label, value) of a version's headline metrics."""
    m = version.metrics
    names = {
        "accuracy": "accuracy (held-out)", "ece": "ECE (calibrated)",
        "ece_uncalibrated": "ECE before calibration", "temperature": "temperature",
        "nmad_redshift": "photo-z NMAD", "loss": "train loss", "val_loss": "val loss",
        "recon_error_median": "median recon. error", "n_held_out": "held-out objects",
    }  # fmt: skip
    cards = [
        (label, f"{m[k]:.4g}") for k, label in names.items() if isinstance(m.get(k), int | float)
    ]
    ref = (version.meta.get("training") or {}).get("ood_reference")
    if ref:  # an imported encoder: its OOD reference is a survey itself
        cards.append(("OOD reference", f"{ref['survey']} itself ({ref['objects']} objects)"))
    return [("version", f"{version.kind} {version.version}"), *cards]


def learning_rounds(chain: list[ModelVersion]) -> pd.DataFrame:
    """Accuracy and training labels of each retraining round of a lineage, oldest first."""
    rows = []
    for k, v in enumerate(chain):
        labels = (v.meta.get("training") or {}).get("labels") or {}
        rows.append({"round": k, "version": v.version, "accuracy": v.metrics.get("accuracy"),
                     "labels": labels.get("n_train")})  # fmt: skip
    return pd.DataFrame(rows)


def emulator_table(metrics: dict[str, Any]) -> pn.widgets.Tabulator:
    """Coverage and errors of an emulator's properties."""
    rows = []
    for name, scores in metrics.items():
        if isinstance(scores, dict) and "coverage_68" in scores:
            row = {"property": name}
            row.update({k: v for k, v in scores.items() if isinstance(v, int | float)})
            rows.append(row)
    return data_table(pd.DataFrame(rows).round(4))


def version_figures(version: ModelVersion, versions: list[ModelVersion]) -> list[Any]:
    """A version's diagnostic plots: reliability (classifiers), PIT histograms (emulators),
    the training curve and the learning curve over its retraining rounds."""
    figures: list[Any] = []
    metrics = version.metrics
    if version.kind == "classifier" and metrics.get("reliability"):
        figures.append(plots.reliability_diagram(metrics["reliability"]))
    if version.kind == "emulator":
        for name, scores in metrics.items():
            if isinstance(scores, dict) and scores.get("pit_histogram"):
                figures.append(plots.pit_histogram(name, scores["pit_histogram"]))
    history = ((version.meta.get("training") or {}).get("result") or {}).get("history") or []
    curve = plots.training_curve(history, f"training: {version.kind} {version.version}")
    if curve is not None:
        figures.append(curve)
    chain = lineage(versions, version)
    if len(chain) > 1 and version.kind == "classifier":
        figures.append(plots.learning_curve(learning_rounds(chain), "accuracy"))
    return figures


def version_details(
    version: ModelVersion | None, versions: list[ModelVersion], is_active: bool
) -> list[Any]:
    """The details of the picked version (panes): metric cards, the gate's verdict, its
    figures and, for emulators, the property table."""
    if version is None:
        return [pn.pane.Markdown("No model versions for this survey yet.")]
    parts: list[Any] = [pn.pane.HTML(metric_cards(version_cards(version)))]
    if version.gate:
        parts.append(pn.pane.HTML(gate_html(version.gate, is_active), sizing_mode="stretch_width"))
    if version.kind == "classifier" and len(lineage(versions, version)) < 2:
        parts.append(pn.pane.Markdown(
            "*Learning curve: appears after the first retraining round (a version with a "
            "parent).*", styles={"color": "#6b7280"},
        ))  # fmt: skip
    figures = version_figures(version, versions)
    if figures:
        panes = [pn.pane.HoloViews(f, margin=(4, 8), sizing_mode="fixed") for f in figures]
        parts.append(pn.GridBox(*panes, ncols=2, sizing_mode="fixed"))
    if version.kind == "emulator":
        parts.append(emulator_table(version.metrics))
    return parts


def labels_summary(survey: str) -> tuple[str, str, Any]:
    """(Markdown: how many current labels from how many users, and the vote fractions;
    Markdown: the labellers' agreement; bar chart of labels per class, or None)."""
    schema = schema_for(survey)
    store = label_store()
    current = store.current(survey, task=schema.task)
    counts = current["value"].value_counts() if len(current) else pd.Series(dtype=int)
    users = current["user"].nunique() if len(current) else 0
    text = (
        f"**{len(current):,} labels** from {users} user(s) on this survey "
        f"(current labels, one per user and object)."
    )
    votes = store.votes(survey, task=schema.task)
    if len(votes):
        sources = ", ".join(md(s) for s in sorted(votes["source"].unique()))
        text += (
            f" Vote fractions ({sources}) for {votes['object_id'].nunique():,} objects count "
            "as one more labeller each."
        )
    agreement = agreement_markdown(store.agreement(survey, task=schema.task))
    names = schema.names
    chart = (
        plots.class_counts(names, [int(counts.get(n, 0)) for n in names], schema.colour_key())
        if len(current)
        else None
    )
    return text, agreement, chart


class ModelsView(pn.viewable.Viewer):
    """Versions table, per-version diagnostics, labels so far, and the job queue.

    The user's choice is :attr:`version`; what the registry says is :attr:`versions` and
    :attr:`active` (re-read by :meth:`refresh_versions`); the details, the activation button
    and the label summary follow them through ``param.depends``."""

    data = param.ClassSelector(class_=SurveyData, doc="the survey shown")
    state = param.ClassSelector(class_=AppState, doc="the session's shared state")
    version = param.Selector(
        default=None, objects=[], allow_None=True,
        doc="the version shown, kind/version: its details, and what *Activate* makes active",
    )  # fmt: skip
    versions = param.List(default=[], precedence=-1, doc="the survey's versions, as last read")
    active = param.Dict(default={}, precedence=-1, doc="kind -> active version, as last read")
    labels_round = param.Integer(
        default=0, precedence=-1, doc="bumped when the label summary is drawn again"
    )

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._alert = message_pane()
        self.registry = ModelRegistry()
        self._table = data_table(  # not sortable: the sort arrows' room pushed "created" off
            pd.DataFrame(), formatters={"gate": {"type": "html"}}, sortable=False,
            stylesheets=[TABLE_CSS, VERSIONS_CSS],
        )  # fmt: skip
        self.pick = pn.widgets.Select.from_param(self.param.version, label="Version", width=260)
        self.activate = pn.widgets.Button(
            label="Activate this version", color="warning", width=200, align="end"
        )
        self._activation = message_pane()
        self._activate_why = restrict("activate", [self.activate])  # the callback checks again
        self.activate.on_click(lambda _: in_thread(guarded(self._activation)(self.activate_picked)))
        self.jobs = JobsPanel(survey=self.data.name, state=self.state)
        self.jobs.on_finished = guarded(self._alert)(self.refresh_versions)
        self._download_labels = pn.widgets.FileDownload(
            callback=guarded(self._alert)(self._labels_file),
            filename=file_name(f"{self.data.name}-labels", "CSV"),
            label="Download labels (CSV)", color="light", width=200,
        )  # fmt: skip
        self._labels_stale = False
        self.evaluation = EvaluationPanel(survey=self.data.name)
        self.refresh_versions()
        self._activate_button()

    _cards = staticmethod(version_cards)

    @property
    def table(self) -> pd.DataFrame:
        """The versions table shown."""
        return self._table.value

    def refresh_versions(self) -> None:
        """Re-read the survey's versions (a job finished, a version was activated, the tab was
        opened): table, picker and the details of the version picked follow."""
        versions = self.registry.list(survey=self.data.name)
        active = self.registry.active_versions(self.data.name)
        options = version_options(versions, active)
        keep = self.version if self.version in options.values() else None
        self.param.version.objects = options
        with param.parameterized.batch_call_watchers(self):
            self.param.update(
                versions=versions, active=active, version=keep or default_version(versions, active)
            )
        self._table.value = versions_table(versions, active)
        self._table.height = versions_height(len(versions))

    def activate_picked(self) -> None:
        """Make the picked version active (whatever the gate said): a person's choice."""
        require_session("activate")
        version = self._version()
        if version is None:
            return
        text = activate_version(self.data.name, version, self.state.user_name)
        say(self._activation, html.escape(text), "success")
        self.refresh_versions()

    def _version(self) -> ModelVersion | None:
        if not self.version:
            return None
        kind, version = self.version.split("/")
        return next(
            (v for v in self.versions if v.kind == kind and v.version == version), None
        ) or self.registry.get(kind, version)

    def _is_active(self, version: ModelVersion | None) -> bool:
        return version is not None and self.active.get(version.kind) == version.version

    @param.depends("version", watch=True)
    def _forget_activation(self) -> None:
        """Another version picked: the previous activation's message goes."""
        self._activation.visible = False

    @param.depends("version", "active", watch=True)
    def _activate_button(self) -> None:
        version = self._version()
        is_active = self._is_active(version)
        self.activate.param.update(
            disabled=version is None or is_active or self._activate_why is not None,
            label="Active" if is_active else "Activate this version",
        )

    @param.depends("version", "versions", "active")
    def details(self) -> pn.Column:
        """The picked version's details (rebuilt when the pick or the registry changes)."""
        version = self._version()
        parts = version_details(version, self.versions, self._is_active(version))
        return pn.Column(*parts, sizing_mode="stretch_width")

    @param.depends("labels_round")
    def labels(self) -> pn.Column:
        """Labels collected: counts, chart and agreement (drawn again on ``labels_round``)."""
        text, agreement, chart = labels_summary(self.data.name)
        chart_pane = [pn.pane.HoloViews(chart, sizing_mode="stretch_width")] if chart else []
        return pn.Column(
            pn.pane.Markdown(text), *chart_pane,
            pn.pane.Markdown(agreement, styles={"font-size": "12.5px"}),
            sizing_mode="stretch_width",
        )  # fmt: skip

    @param.depends("state.tab", watch=True)
    def _on_tab(self) -> None:
        """Re-read the versions and the evaluation report (they may have been remade) whenever
        the tab opens; draw labels given meanwhile."""
        if self.state.tab != "models":
            return
        guarded(self._alert)(self.refresh_versions)()
        guarded(self._alert)(lambda: self.evaluation.refresh(reread_tasks=True))()
        self._labels_if_shown()

    @param.depends("state.labels_changed", watch=True)
    def _on_labels(self) -> None:
        """Labels changed: the summary is drawn again now if the tab is shown, else when it
        opens."""
        self._labels_stale = True
        self._labels_if_shown()

    def _labels_if_shown(self) -> None:
        if self._labels_stale and self.state.tab == "models":
            self._labels_stale = False
            self.labels_round += 1

    def _labels_file(self) -> io.BytesIO:
        """Every current label (one per object and user) with who gave it and when."""
        schema = schema_for(self.data.name)
        return table_bytes(label_store().current(self.data.name, task=schema.task), "CSV")

    def __panel__(self) -> pn.viewable.Viewable:
        jobs = pn.Column(
            heading("Jobs"),
            self.jobs,
            heading("Labels collected"),
            pn.panel(self.labels),
            self._download_labels,
            width=JOBS_WIDTH,
            sizing_mode="fixed",
        )
        versions = pn.Column(
            heading("Versions"),
            self._table,
            pn.Row(self.pick, self.activate),
            self._activation,
            pn.panel(self.details),
            heading("Evaluation"),
            self.evaluation,
            sizing_mode="stretch_width",
        )
        return pn.Column(
            pn.pane.Markdown(HELP, styles={"font-size": "13px", "color": "#475569"}),
            self._alert,
            pn.Row(versions, jobs, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )
