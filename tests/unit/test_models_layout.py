"""Models & jobs as a user sees it (UI polish of issue 13's workbench): the versions table
shows when each version was made beside its figures (the "created" column was pushed off the
table at 1400 px), an empty job list is one line (it was a blank 260 px table), and a survey
without a stored evaluation report gets the command that makes one, with the label column its
classifier learnt from. In-process on the tiny survey."""

from __future__ import annotations

import panel as pn
import pytest

from app.data import load_survey_data
from app.state import AppState
from backend.registry import ModelRegistry
from backend.survey import Survey


def _text(panes: list) -> str:
    return " ".join(str(getattr(p, "object", "")) for p in panes)


@pytest.fixture
def registry(tiny_survey: Survey) -> ModelRegistry:
    reg = ModelRegistry()
    labels = {"source": "label_store+catalog:size_class", "catalog_columns": ["size_class"],
              "n_train": 120}  # fmt: skip
    first = reg.save("classifier", {}, {"classes": ["big", "small"]}, survey="tiny",
                     metrics={"accuracy": 0.71, "ece": 0.05},
                     training={"task": "class", "labels": labels})  # fmt: skip
    reg.save("encoder", {}, {}, survey="tiny")
    reg.set_active("tiny", "classifier", first.version)
    return reg


def test_the_versions_table_shows_when_next_to_the_figures(registry: ModelRegistry) -> None:
    from app.views.models import ModelsView

    view = ModelsView(data=load_survey_data("tiny"), state=AppState(survey="tiny"))
    columns = list(view.table.columns)
    # the columns a reader compares, then when; no column that no version fills (an emulator's
    # metrics, a gate that judged nothing, parents)
    assert columns == ["kind", "version", "active", "accuracy", "ece", "labels", "created"]
    created = view.table["created"].iloc[0]
    assert len(created) == 16 and created[10] == " ", created  # "2026-12-01 06:40"
    assert view._table.sortable is False  # no sort arrows widening every header


def test_an_empty_job_list_is_one_line(registry: ModelRegistry) -> None:
    from app.jobs import NO_JOBS, JobsPanel
    from backend.jobs.table import insert_job

    jobs = JobsPanel(survey="tiny", state=AppState(survey="tiny"))
    assert not jobs.table.visible and not jobs._cancel_row.visible
    assert jobs._note.object == NO_JOBS
    insert_job("retrain", "tiny", {}, "ana")
    jobs.refresh()
    assert jobs.table.visible and jobs._cancel_row.visible and jobs._note.object == ""
    assert list(jobs.table.value["status"]) == ["queued"]


def test_no_stored_report_says_how_to_make_one(registry: ModelRegistry) -> None:
    from app.evaluation import EvaluationPanel

    panel = EvaluationPanel(survey="tiny")
    text = _text(panel.body)
    assert "No evaluation report for this survey yet" in text
    assert "`products/tiny/evaluation/class/`" in text and "press *Reload*" in text
    (command,) = [p for p in panel.body if isinstance(p, pn.pane.HTML)]
    # the column the active classifier learnt from, not a placeholder to guess
    assert "python -m backend evaluate --survey tiny --label-column size_class" in command.object
    assert "COLUMN" not in command.object


def test_without_a_classifier_the_command_names_what_to_fill_in(tiny_survey: Survey) -> None:
    from app.evaluation import EvaluationPanel

    panel = EvaluationPanel(survey="tiny")
    text = _text(panel.body)
    assert "--label-column COLUMN" in text and "the catalog column with the class names" in text


def test_many_versions_keep_the_active_ones_on_top_and_the_table_bounded(
    registry: ModelRegistry,
) -> None:
    """sdss_gz1 has 27 versions: the table ran ~1,100 px down, pushing the picker and the
    details below; now the active versions lead, the rest newest first, 10 rows shown."""
    from app.views.models import VERSIONS_ROWS, ModelsView

    view = ModelsView(data=load_survey_data("tiny"), state=AppState(survey="tiny"))
    assert view._table.height is None  # a few versions: as tall as their rows, no wasted space
    assert list(view.table["active"]) == ["✓", ""]
    for _ in range(25):
        registry.save("classifier", {}, {"classes": ["big", "small"]}, survey="tiny")
    view.refresh_versions()
    table = view.table
    assert len(table) == 27
    assert table["active"].iloc[0] == "✓" and table["version"].iloc[0] == "v0001"
    assert table["kind"].iloc[0] == "classifier"
    newest = table[table["kind"] == "classifier"]["version"].iloc[1:].tolist()
    assert newest[0] == "v0026" and newest == sorted(newest, reverse=True)  # then newest first
    height = view._table.height
    assert height is not None and height <= 40 + VERSIONS_ROWS * 40  # ~10 rows, then scrolls
