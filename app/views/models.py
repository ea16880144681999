"""Models & jobs: the survey's model versions, their metrics and diagnostic plots, retraining."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
import panel as pn
import param

from app import plots
from app.data import SurveyData
from app.evaluation import EvaluationPanel
from app.exporting import file_name, table_bytes
from app.jobs import JobsPanel
from app.labelling import label_store, schema_for
from app.safe import guarded, heading, message_pane
from app.state import AppState
from app.widgets import data_table
from backend.registry import ModelRegistry, ModelVersion

KEY_METRICS = ("accuracy", "ece", "nmad_redshift", "loss", "val_loss", "recon_error_median")
HELP = """
**Model versions** trained on this survey, newest last; *active* ones feed the other tabs.
Pick a version to see its held-out metrics: accuracy and calibration (ECE, reliability
diagram) for classifiers, PIT histograms (flat = calibrated uncertainties) and errors for
emulators, and training curves. Retraining rounds appear as a learning curve once a version
has a parent. *Jobs* starts a retraining and follows the worker's progress. *Evaluation*
shows the latest `python -m backend evaluate` report: encoders against baselines on the
survey's validation split.
"""


def versions_table(versions: list[ModelVersion], active: dict[str, str]) -> pd.DataFrame:
    """One row per version with its key metrics."""
    rows = []
    for v in versions:
        row: dict[str, Any] = {
            "kind": v.kind, "version": v.version,
            "active": "✓" if active.get(v.kind) == v.version else "",
            "created": str(v.meta.get("created", ""))[:19].replace("T", " "),
            "parent": v.meta.get("parent") or "",
        }  # fmt: skip
        labels = (v.meta.get("training") or {}).get("labels") or {}
        row["labels"] = labels.get("n_train", labels.get("n_labelled", ""))
        for key in KEY_METRICS:
            value = v.metrics.get(key)
            row[key] = round(float(value), 4) if isinstance(value, int | float) else None
        rows.append(row)
    return pd.DataFrame(rows)


def lineage(versions: list[ModelVersion], leaf: ModelVersion) -> list[ModelVersion]:
    """``leaf`` and its ancestors (oldest first) among ``versions`` of the same kind."""
    by_name = {v.version: v for v in versions if v.kind == leaf.kind}
    chain, seen = [leaf], {leaf.version}
    while (parent := chain[-1].meta.get("parent")) and parent in by_name and parent not in seen:
        chain.append(by_name[parent])
        seen.add(parent)
    return chain[::-1]


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
    if report["pairs"]:
        lines += ["", "| labellers | shared | agree | Cohen's κ |", "|---|---:|---:|---:|"]
        for p in report["pairs"]:
            kappa = "n/a" if p["cohen_kappa"] is None else f"{p['cohen_kappa']:.2f}"
            lines.append(
                f"| {p['a']} · {p['b']} | {p['common']:,} | {100 * p['agreement']:.0f}% | {kappa} |"
            )
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


class ModelsView(pn.viewable.Viewer):
    """Versions table, per-version diagnostics, labels so far, and the (future) job queue."""

    data = param.ClassSelector(class_=SurveyData)
    state = param.ClassSelector(class_=AppState)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._alert = message_pane()
        self.registry = ModelRegistry()
        self.versions = self.registry.list(survey=self.data.name)
        active = self.registry.active_versions(self.data.name)
        self.table = versions_table(self.versions, active)
        options = {f"{v.kind} {v.version}": f"{v.kind}/{v.version}" for v in self.versions}
        default = next(
            (f"{k}/{v}" for k, v in active.items() if k == "classifier"),
            next(iter(options.values()), None),
        )
        self.pick = pn.widgets.Select(name="Version", options=options, value=default, width=260)
        self._detail = pn.Column(sizing_mode="stretch_width")
        self.pick.param.watch(guarded(self._alert)(lambda e: self._show()), "value")
        self.jobs = JobsPanel(survey=self.data.name, state=self.state)
        self._labels = pn.pane.HoloViews(None, sizing_mode="stretch_width")
        self._labels_text = pn.pane.Markdown("")
        self._agreement = pn.pane.Markdown("", styles={"font-size": "12.5px"})
        self._download_labels = pn.widgets.FileDownload(
            callback=guarded(self._alert)(self._labels_file),
            filename=file_name(f"{self.data.name}-labels", "CSV"),
            label="Download labels (CSV)", button_type="light", width=200,
        )  # fmt: skip
        self.state.param.watch(guarded(self._alert)(self._on_labels), ["labels_changed", "tab"])
        self._labels_stale = False
        self.evaluation = EvaluationPanel(survey=self.data.name)
        self.state.param.watch(guarded(self._alert)(self._on_tab), "tab")
        self._show()
        self._show_labels()

    def _version(self) -> ModelVersion | None:
        if not self.pick.value:
            return None
        kind, version = self.pick.value.split("/")
        return self.registry.get(kind, version)

    def _show(self) -> None:
        version = self._version()
        if version is None:
            self._detail[:] = [pn.pane.Markdown("No model versions for this survey yet.")]
            return
        parts: list[Any] = [pn.pane.HTML(metric_cards(self._cards(version)))]
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
        chain = lineage(self.versions, version)
        if len(chain) > 1 and version.kind == "classifier":
            figures.append(plots.learning_curve(self._rounds(chain), "accuracy"))
        elif version.kind == "classifier":
            parts.append(pn.pane.Markdown(
                "*Learning curve: appears after the first retraining round (a version with a "
                "parent).*", styles={"color": "#6b7280"},
            ))  # fmt: skip
        if figures:
            panes = [pn.pane.HoloViews(f, margin=(4, 8), sizing_mode="fixed") for f in figures]
            parts.append(pn.GridBox(*panes, ncols=2, sizing_mode="fixed"))
        if version.kind == "emulator":
            parts.append(self._emulator_table(metrics))
        self._detail[:] = parts

    @staticmethod
    def _cards(version: ModelVersion) -> list[tuple[str, str]]:
        m = version.metrics
        names = {
            "accuracy": "accuracy (held-out)", "ece": "ECE (calibrated)",
            "ece_uncalibrated": "ECE before calibration", "temperature": "temperature",
            "nmad_redshift": "photo-z NMAD", "loss": "train loss", "val_loss": "val loss",
            "recon_error_median": "median recon. error", "n_held_out": "held-out objects",
        }  # fmt: skip
        cards = [
            (label, f"{m[k]:.4g}")
            for k, label in names.items()
            if isinstance(m.get(k), int | float)
        ]
        return [("version", f"{version.kind} {version.version}"), *cards]

    @staticmethod
    def _rounds(chain: list[ModelVersion]) -> pd.DataFrame:
        rows = []
        for k, v in enumerate(chain):
            labels = (v.meta.get("training") or {}).get("labels") or {}
            rows.append({"round": k, "version": v.version, "accuracy": v.metrics.get("accuracy"),
                         "labels": labels.get("n_train")})  # fmt: skip
        return pd.DataFrame(rows)

    @staticmethod
    def _emulator_table(metrics: dict[str, Any]) -> pn.widgets.Tabulator:
        rows = []
        for name, scores in metrics.items():
            if isinstance(scores, dict) and "coverage_68" in scores:
                row = {"property": name}
                row.update({k: v for k, v in scores.items() if isinstance(v, int | float)})
                rows.append(row)
        return data_table(pd.DataFrame(rows).round(4))

    def _on_tab(self, event: param.parameterized.Event) -> None:
        """Re-read the evaluation report (it may have been remade) whenever the tab opens."""
        if event.new == "models":
            self.evaluation.refresh(reread_tasks=True)

    def _on_labels(self, event: param.parameterized.Event) -> None:
        """Redraw the label counts when they changed, once this tab is shown."""
        if event.name == "labels_changed":
            self._labels_stale = True
        if self._labels_stale and self.state.tab == "models":
            self._labels_stale = False
            self._show_labels()

    def _show_labels(self) -> None:
        schema = schema_for(self.data.name)
        current = label_store().current(self.data.name, task=schema.task)
        counts = current["value"].value_counts() if len(current) else pd.Series(dtype=int)
        users = current["user"].nunique() if len(current) else 0
        self._labels_text.object = (
            f"**{len(current):,} labels** from {users} user(s) on this survey "
            f"(current labels, one per user and object)."
        )
        votes = label_store().votes(self.data.name, task=schema.task)
        if len(votes):
            sources = ", ".join(sorted(votes["source"].unique()))
            self._labels_text.object += (
                f" Vote fractions ({sources}) for {votes['object_id'].nunique():,} objects count "
                "as one more labeller each."
            )
        self._agreement.object = agreement_markdown(
            label_store().agreement(self.data.name, task=schema.task)
        )
        names = schema.names
        self._labels.object = (
            plots.class_counts(names, [int(counts.get(n, 0)) for n in names], schema.colour_key())
            if len(current)
            else None
        )

    def _labels_file(self) -> io.BytesIO:
        """Every current label (one per object and user) with who gave it and when."""
        schema = schema_for(self.data.name)
        return table_bytes(label_store().current(self.data.name, task=schema.task), "CSV")

    def __panel__(self) -> pn.viewable.Viewable:
        jobs = pn.Column(
            heading("Jobs"),
            self.jobs,
            heading("Labels collected"),
            self._labels_text,
            self._labels,
            self._agreement,
            self._download_labels,
            width=420,
            sizing_mode="fixed",
        )
        versions = pn.Column(
            heading("Versions"),
            data_table(self.table),
            self.pick,
            self._detail,
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
