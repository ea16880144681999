"""The activation gate in the app: job outcomes, refused versions, the Label view's notice and
activating a version by hand. Pure builders in-process; the rest in chromium on the quick demo.
"""

from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from app.jobs import gate_news, gate_outcome, jobs_frame, new_gate_news, outcome_html
from app.views.models import (
    GATE_REFUSED,
    activate_version,
    gate_cell,
    gate_html,
    versions_table,
)
from backend.registry import ModelRegistry, ModelVersion, RegistryError
from tests.ui.pages import open_tab, visible

EVIL = "<img src=x onerror=alert(1)>"


def gate_record(candidate: str = "v0002", reason: str = EVIL, activate: bool = False) -> dict:
    """A gate.json as backend.active.gate writes it."""
    return {
        "activate": activate, "reason": reason, "candidate": candidate, "active": "v0001",
        "n_validation": 1600,
        "metrics": {
            "candidate": {"balanced_accuracy": 0.61, "accuracy": 0.64, "ece": 0.08},
            "active": {"balanced_accuracy": 0.83, "accuracy": 0.85, "ece": 0.05},
            "delta": {"balanced_accuracy": -0.22, "ece": 0.03},
            "delta_ci95": {"balanced_accuracy": [-0.3, -0.15], "ece": [0.01, 0.05]},
            "tolerance": {"balanced_accuracy": 0.02, "ece": 0.03},
        },
    }  # fmt: skip


def job_row(job_id: int, kind: str, status: str, result: dict | None, error: str | None = None):
    return {
        "id": job_id, "kind": kind, "status": status, "progress": {}, "requested_by": EVIL,
        "created": pd.Timestamp("2026-01-01", tz="UTC"), "result": result, "error": error,
    }  # fmt: skip


def test_gate_builders_keep_hostile_text_escaped(tmp_path: Path) -> None:
    refused = {"version": "v0002", "activated": False, "reason": f"worse: {EVIL}"}
    passed = {"version": "v0003", "activated": True, "reason": "not worse: fine"}
    assert gate_outcome("retrain", "succeeded", refused) == f"not activated: worse: {EVIL}"
    assert gate_outcome("train-classifier", "succeeded", passed) == "activated: not worse: fine"
    assert gate_outcome("embed", "succeeded", {"version": "v1"}) is None

    cells = [
        outcome_html("retrain", "succeeded", refused, None),
        outcome_html("finetune", "succeeded", {**refused, "version": EVIL}, None),
        outcome_html("retrain", "failed", None, f"{EVIL}\nTraceback"),
    ]
    assert all("<img" not in c for c in cells)
    assert all(html.escape(EVIL) in c for c in cells)
    assert "not activated" in cells[0] and "v0002" in cells[0]
    assert "activated" in outcome_html("retrain", "succeeded", passed, None)
    assert outcome_html("embed", "succeeded", {"version": "v0004"}, None) == "v0004"

    jobs = pd.DataFrame(
        [
            job_row(3, "finetune", "succeeded", {**refused, "reason": EVIL}),
            job_row(2, "retrain", "succeeded", passed),
            job_row(1, "retrain", "failed", None, EVIL),
        ]
    )
    frame = jobs_frame(jobs)
    assert frame["outcome"].str.contains("<img").sum() == 0
    assert "not activated" in frame["outcome"][0]

    news = gate_news(jobs.iloc[0].to_dict())
    assert news is not None and "<img" not in news and news.count(html.escape(EVIL)) == 2
    assert "Fine-tuning job #3" in news and "not activated" in news
    assert gate_news(jobs.iloc[1].to_dict()) is None  # activated: the update bar says so
    failed = gate_news(jobs.iloc[2].to_dict())
    assert failed is not None and "failed" in failed and "<img" not in failed
    assert gate_news({**job_row(9, "sleep", "succeeded", refused)}) is None

    # Told once, live: what had finished when the page loaded is only noted.
    told, seen = new_gate_news(jobs.iloc[1:], None)
    assert told == [] and seen == {1, 2}
    told, seen = new_gate_news(jobs, seen)
    assert len(told) == 1 and "job #3" in told[0] and seen == {1, 2, 3}
    assert new_gate_news(jobs, seen)[0] == []
    later = pd.DataFrame([job_row(5, "retrain", "succeeded", passed), *jobs.to_dict("records")])
    assert new_gate_news(later, seen)[0] == [""]  # an activated retrain: the notice goes

    cell = gate_cell(gate_record())
    assert GATE_REFUSED in cell and "<img" not in cell and html.escape(EVIL) in cell
    assert "passed the gate" in gate_cell(gate_record(activate=True, reason="not worse"))
    assert "on request" in gate_cell(gate_record(activate=True, reason="activated on request x"))
    assert gate_cell(None) == ""

    figures = gate_html(gate_record(candidate=EVIL))
    assert "<img" not in figures and html.escape(EVIL) in figures and "not activated" in figures
    assert "activated by hand since" in gate_html(gate_record(), active_now=True)
    for text in ("0.610", "0.830", "-0.220 [-0.300, -0.150]", "ECE", "1,600 validation objects"):
        assert text in figures

    folder = tmp_path / "v0002"
    folder.mkdir()
    (folder / "gate.json").write_text(json.dumps(gate_record()))
    versions = [
        ModelVersion("classifier", "v0001", tmp_path / "v0001", {}),
        ModelVersion("classifier", "v0002", folder, {"parent": "v0001"}),
    ]
    table = versions_table(versions, {"classifier": "v0001"})
    assert table["gate"].tolist()[0] == "" and GATE_REFUSED in table["gate"][1]
    assert table["active"].tolist() == ["✓", ""]


def test_the_view_refuses_an_encoder_without_embeddings(home: Path) -> None:
    registry = ModelRegistry()
    encoder = registry.save("encoder", {}, {"kind": "dummy"}, survey="demo")
    with pytest.raises(RegistryError, match=f"embed --survey demo --model {encoder.version}"):
        activate_version("demo", encoder, "ana")
    assert registry.active_versions("demo") == {}  # nothing recorded


# -- in chromium, on the quick demo ----------------------------------------------------------
# On the quick demo (400 galaxies, a 5-epoch catalog classifier near chance) a retrain of the
# same labels beats the prepared classifier whatever 50 labels say, so each test first makes
# the active classifier what a retrain of the current labels gives (forced, as a person may);
# then only the test's labels differ. Retrains use EPOCHS epochs (the gate's figures were
# steadiest there, see the report of issue 9). 50 wrong labels are concentrated: 50 of the ~52
# ellipticals of the training part are called spirals, a class the retrained classifier
# recognises (barred spirals, used before, were near chance once the demo's simulation changed,
# so losing them cost nothing the gate could see: +0.010 [-0.032, 0.049]).
EPOCHS = 20
WRONG_FROM, WRONG_TO = "elliptical", "spiral"


def load(page: object, url: str, user: str) -> None:
    page.goto(url, wait_until="networkidle")
    page.locator("canvas").first.wait_for(timeout=60_000)
    page.get_by_placeholder("e.g. Vera Rubin").fill(user)
    page.get_by_placeholder("e.g. Vera Rubin").press("Enter")


def training_objects(true_class: str, n: int) -> list[tuple[str, str]]:
    """(object id, catalog class) of ``n`` objects of ``true_class`` in the training part of the
    demo's stored validation split (never judged on), unlabelled ones first."""
    from backend.labels import LabelStore
    from backend.survey import Survey
    from backend.validation import stored_assignments

    catalog = Survey.open("demo").catalog
    split = stored_assignments("demo", "class")
    train = set(split.loc[split["split"] == "train", "object_id"])
    labelled = set(LabelStore().current("demo")["object_id"])
    rows = [
        (str(o), str(c))
        for o, c in zip(catalog["object_id"], catalog["true_class"], strict=True)
        if c == true_class and o in train
    ]
    rows.sort(key=lambda r: r[0] in labelled)
    assert len(rows) >= n, f"the demo has {len(rows)} {true_class} objects in training"
    return rows[:n]


def run_retrain_job(params: dict, user: str) -> dict:
    """Queue a retrain and run it as the worker does (no worker runs beside the tests)."""
    from backend.jobs.runner import run_job
    from backend.jobs.table import get_job, insert_job

    job_id = insert_job("retrain", "demo", params, user)
    run_job(job_id)
    return get_job(job_id)


def forget(user: str) -> None:
    """Undo every label of ``user`` (the next tests see the labels as they were)."""
    from backend.labels import LabelStore

    store = LabelStore()
    while store.undo_last("demo", user=user) is not None:
        pass


def pick_version(page: object, version: str) -> None:
    select = page.locator("select").filter(has_text=f"classifier {version}").first
    label = next(o for o in select.locator("option").all_inner_texts() if f" {version}" in o)
    select.select_option(label=label)
    page.locator(".lsm-card", has_text=f"classifier {version}").first.wait_for(timeout=20_000)


@pytest.mark.ui
def test_wrong_labels_are_refused_and_the_page_says_why(
    demo_url: str, demo_env: Path, page: object
) -> None:
    from backend.active.loop import retrain_classifier
    from backend.labels import LabelStore

    if os.environ.get("LATENTSKY_UI_HOME"):
        pytest.skip("a shared data root: no new model version may be made there")
    user, registry = "wrong-labeller", ModelRegistry()
    before = registry.active_versions("demo")
    try:
        baseline = retrain_classifier("demo", {"epochs": EPOCHS, "force": True})["version"]
        load(page, demo_url, user)
        open_tab(page, "Label")
        visible(page, ".lss[data-shown]").wait_for(timeout=30_000)
        store = LabelStore()
        for object_id, _ in training_objects(WRONG_FROM, 50):
            store.add("demo", object_id, WRONG_TO, user=user)
        job = run_retrain_job({"epochs": EPOCHS}, user)
        result = job["result"]
        print(f"50 {WRONG_FROM} labelled {WRONG_TO}: {result['reason']}")
        assert job["status"] == "succeeded" and result["activated"] is False
        assert result["reason"].startswith("worse: balanced accuracy")
        assert registry.active_versions("demo")["classifier"] == baseline
        gate = registry.get("classifier", result["version"]).gate
        assert gate["activate"] is False and gate["active"] == baseline

        notice = visible(page, ".lsa-gate")  # the Label view says it, once, without a dialog
        notice.wait_for(timeout=30_000)
        text = notice.inner_text()
        assert f"job #{job['id']}" in text and "not activated" in text
        assert f"{gate['n_validation']} validation objects" in text
        assert visible(page, ".lss[data-shown]").is_visible()  # labelling goes on

        open_tab(page, "Models & jobs")
        row = page.locator(".tabulator-row", has_text="not activated: worse").first
        row.wait_for(timeout=30_000)
        assert result["version"] in row.inner_text()
        refused = page.locator(".tabulator-row", has_text=GATE_REFUSED)
        refused.first.wait_for(timeout=30_000)
        assert result["version"] in refused.last.inner_text()
        pick_version(page, result["version"])
        figures = visible(page, ".lsm-gate")
        figures.wait_for(timeout=20_000)
        text = figures.inner_text()
        bacc = gate["metrics"]["candidate"]["balanced_accuracy"]
        assert GATE_REFUSED in text and f"{bacc:.3f}" in text and "difference [95% CI]" in text
        assert f"active {baseline}" in text and f"{gate['n_validation']} validation objects" in text

        page.get_by_role("button", name="Activate this version").click()  # a person overrides
        page.get_by_text(f"classifier {result['version']} is now active").wait_for(timeout=20_000)
        assert registry.active_versions("demo")["classifier"] == result["version"]
        page.get_by_text("New model version active").wait_for(timeout=30_000)
        assert registry.get("classifier", result["version"]).gate == gate  # nothing recorded
        page.get_by_text("activated by hand since").first.wait_for(timeout=20_000)
        assert page.console_errors == []
    finally:
        forget(user)
        registry.set_active_many("demo", before)


@pytest.mark.ui
def test_correct_labels_are_activated_with_the_gates_figures(
    demo_url: str, demo_env: Path, page: object
) -> None:
    from backend.active.loop import retrain_classifier
    from backend.labels import LabelStore

    if os.environ.get("LATENTSKY_UI_HOME"):
        pytest.skip("a shared data root: no new model version may be made there")
    user, registry = "careful-labeller", ModelRegistry()
    before = registry.active_versions("demo")
    store = LabelStore()
    objects = training_objects(WRONG_FROM, 50)
    try:
        for object_id, _ in objects:  # the situation: a worse classifier went active
            store.add("demo", object_id, WRONG_TO, user=user)
        worse = retrain_classifier("demo", {"epochs": EPOCHS, "force": True})["version"]
        for object_id, true_class in objects:  # then 50 labels as the catalog has them
            store.add("demo", object_id, true_class, user=user)
        load(page, demo_url, user)
        open_tab(page, "Models & jobs")
        page.get_by_role("button", name="Fine-tune the encoder with the labels").click()
        page.get_by_text("queued; its progress shows below").wait_for(timeout=60_000)
        page.get_by_role("button", name="Cancel job").click()  # no worker runs in the tests
        page.get_by_text(re.compile(r"cancelled\.|cancel requested")).wait_for(timeout=20_000)

        job = run_retrain_job({"epochs": EPOCHS}, user)
        result = job["result"]
        print(f"50 catalog labels after 50 wrong ones: {result['reason']}")
        assert job["status"] == "succeeded" and result["activated"] is True
        assert result["reason"].startswith("not worse")
        assert registry.active_versions("demo")["classifier"] == result["version"]
        metrics = registry.get("classifier", result["version"]).gate["metrics"]
        drop = metrics["delta"]["balanced_accuracy"]
        assert drop >= -metrics["tolerance"]["balanced_accuracy"]
        assert metrics["active"] is not None and metrics["candidate"]["balanced_accuracy"] >= (
            metrics["active"]["balanced_accuracy"] - metrics["tolerance"]["balanced_accuracy"]
        )

        page.get_by_text("New model version active").wait_for(timeout=30_000)
        row = page.locator(".tabulator-row", has_text="activated: not worse").first
        row.wait_for(timeout=30_000)
        assert result["version"] in row.inner_text() and "not activated" not in row.inner_text()
        page.locator(".tabulator-row", has_text="passed the gate").first.wait_for(timeout=60_000)
        pick_version(page, result["version"])
        text = visible(page, ".lsm-gate").inner_text()
        assert "activated by the gate" in text and f"active {worse}" in text
        assert f"{drop:.3f}" in text
        assert page.console_errors == []
    finally:
        forget(user)
        registry.set_active_many("demo", before)
