"""The evaluation report in *Models & jobs*, in process (no browser): tables rendered from the
stored JSON with user strings made inert, the figures, and the command that refreshes it."""

from __future__ import annotations

import html
from pathlib import Path

import panel as pn
import pytest

from backend.evaluation.plots import figures
from backend.evaluation.report import report_dir, write_report
from backend.survey import Survey

EVIL = "<img src=x onerror=alert(1)>|spiral*"


def fake_report(survey: str, task: str = "class") -> dict:
    """A small report like ``evaluate`` makes, with a hostile class name."""
    classes = [EVIL, "elliptical"]

    def rep(name: str, kind: str, p: float) -> dict:
        return {
            "name": name, "kind": kind, "version": None, "dim": 8, "info": {},
            "knn": {"k": 10, "accuracy": p, "balanced_accuracy": p - 0.1},
            "probe": {"10%": {"n_train": 10, "accuracy": p, "balanced_accuracy": p - 0.2},
                      "100%": {"n_train": 100, "accuracy": p, "balanced_accuracy": p}},
            "precision_at_10": {"per_class": {EVIL: p, "elliptical": 0.9}, "macro": p,
                                "micro": p},
            "rare_retrieval": {"per_class": {EVIL: {"map": 0.1, "n_queries": 3}}, "map": 0.1},
            "anomaly": {"recall_at_100": 0.2, "n_rare": 5, "stored": None},
        }  # fmt: skip

    return {
        "survey": survey, "task": task, "label_column": "gz<1>", "merge": {"a": EVIL},
        "rare": [EVIL], "classes": classes, "created": "2026-01-01T00:00:00+00:00",
        "seconds": 3.0,
        "command": f"python -m backend evaluate --survey {survey} --label-column 'gz<1>' "
                   f"--rare '{EVIL}'",
        "split": {"n_objects": 120, "n_labelled": 110, "n_train": 88, "n_val": 22,
                  "counts": {EVIL: {"train": 8, "val": 2, "all": 10},
                             "elliptical": {"train": 80, "val": 20, "all": 100}},
                  "majority_class": "elliptical", "majority_accuracy": 0.9,
                  "majority_balanced_accuracy": 0.5},
        "settings": {"anomaly_scorers": ["iforest", "knn"]},
        "anomaly_random_expectation": 0.8,
        "representations": [rep("encoder v0001", "encoder", 0.8), rep("pixel-pca", "baseline", 0.6)],
        "classifiers": [{"version": "v0002", "encoder": "v0001", "n_val": 22, "accuracy": 0.9,
                         "balanced_accuracy": 0.7, "balanced_accuracy_ci": [0.6, 0.8],
                         "ece": 0.05, "ece_ci": [0.02, 0.1], "unmatched_classes": [EVIL]}],
        "notes": [f"note about {EVIL}"],
    }  # fmt: skip


def rendered_html(pane: pn.pane.Markdown) -> str:
    """The HTML the browser gets from a Markdown pane (Panel escapes it once for transport)."""
    return html.unescape(pane._transform_object(pane.object)["object"])


def test_models_view_shows_the_latest_report_safely(tiny_survey: Survey, home: Path) -> None:
    from app.data import load_survey_data
    from app.evaluation import EvaluationPanel
    from app.state import AppState
    from app.views.models import ModelsView

    empty = EvaluationPanel(survey="tiny")
    assert empty.report is None
    text = " ".join(str(getattr(p, "object", "")) for p in empty.body)
    assert "No evaluation report" in text and "--label-column COLUMN" in text

    report = fake_report("tiny")
    write_report(report, report_dir("tiny", "class"), figures(report))
    write_report(report, report_dir("tiny", "class"), figures(report))  # the first -> previous/

    view = ModelsView(data=load_survey_data("tiny"), state=AppState(survey="tiny"))
    panel = view.evaluation
    assert panel.report is not None and panel.report["classes"][0] == EVIL
    markdown = [p for p in panel.body if isinstance(p, pn.pane.Markdown)]
    pngs = [p for p in panel.body.select(pn.pane.PNG)]
    assert len(pngs) == 2 and all(p.object[:4] == b"\x89PNG" for p in pngs)
    table = markdown[-1]
    assert table.disable_math
    out = rendered_html(table)
    assert "<table>" in out and "<img" not in out and "onerror=alert(1)&gt;" in out
    assert "&lt;img src=x onerror=alert(1)&gt;|spiral*" in out  # shown as typed, one cell
    assert "pixel-pca" in out and "0.700 [0.600, 0.800]" in out
    assert "previous/" in markdown[0].object
    command = next(p for p in panel.body if isinstance(p, pn.pane.HTML)).object
    assert "<img" not in command and html.escape(EVIL) in command
    assert "python -m backend evaluate --survey tiny" in command

    # A newer report of another task shows after Reload / reopening the tab.
    other = fake_report("tiny", task="morph")
    other["representations"] = other["representations"][1:]
    write_report(other, report_dir("tiny", "morph"), {})
    view.state.tab = "label"
    view.state.tab = "models"
    assert panel.task.options == ["class", "morph"] and panel.task.visible
    panel.task.value = "morph"
    assert panel.report["task"] == "morph"
    assert not list(panel.body.select(pn.pane.PNG))
    pn.panel(view)  # the whole view still builds


@pytest.mark.parametrize("name", ["# heading", "1. item", "- item", "a | b", "`code`", "[x](y)"])
def test_user_strings_stay_text_in_markdown(name: str) -> None:
    from backend.evaluation.report import escape

    pane = pn.pane.Markdown(f"| h |\n|---|\n| {escape(name)} |\n\n- {escape(name)}\n")
    out = rendered_html(pane)
    assert out.count("<td>") == 1 and "<h1>" not in out and "<code>" not in out
    assert "<a " not in out and "<ol>" not in out
    assert out.count("<li>") == 1
