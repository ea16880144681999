"""A user's paths through the app on the quick demo survey (prepared once per session)."""

from __future__ import annotations

import csv
import io
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

from tests.ui.conftest import screenshot
from tests.ui.pages import (
    box_select,
    hover_object,
    inside_plot,
    open_tab,
    settled_map,
    tile_ids,
    visible,
    wait_images_loaded,
    wait_tile_ids,
)

pytestmark = pytest.mark.ui

USER = "ui-tester"


def load(page: object, url: str) -> None:
    page.goto(url, wait_until="networkidle")
    page.locator("canvas").first.wait_for(timeout=60_000)


def test_map_renders_and_box_selection_fills_gallery(demo_url: str, page: object) -> None:
    load(page, demo_url)
    box, points = settled_map(page)
    assert len(points) > 50, "the datashaded map shows no objects"
    x, y = hover_object(page, points)  # the hover names an object: the plot is live
    x, y = inside_plot(box, x, y, 95)  # a drag that starts off the plot selects nothing
    box_select(page, x, y, 80, via_centre=True)
    page.get_by_text("objects selected").first.wait_for(timeout=20_000)
    ids = tile_ids(page)
    assert 0 < len(ids) <= 48
    assert all(i.startswith("demo-") for i in ids)
    wait_images_loaded(page, "img[src^='/thumb/demo/']")
    screenshot(page, "explore", height=1500)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download selection").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert len(rows) >= len(ids) and {"object_id", "index", "map_x"} <= set(rows[0])
    page.locator("[title='Lasso Select']").first.click()
    corners = [(x - 90, y - 60), (x + 90, y - 80), (x + 60, y + 90), (x - 70, y + 70)]
    page.mouse.move(*corners[0])
    page.mouse.down()
    for cx, cy in [*corners[1:], corners[0]]:
        page.mouse.move(cx, cy, steps=6)
    page.mouse.up()
    page.get_by_text("with the lasso").first.wait_for(timeout=20_000)
    assert tile_ids(page)
    assert page.console_errors == []


def test_tap_opens_the_detail_panel(demo_url: str, page: object) -> None:
    load(page, demo_url)
    _, points = settled_map(page)
    x, y = hover_object(page, points)
    page.mouse.click(x, y)
    title = page.locator(".lsd-title")
    title.wait_for(timeout=20_000)
    assert title.inner_text().startswith("demo-")
    assert page.get_by_text("simulated coordinates").count() == 1  # demo: no sky viewer link
    wait_images_loaded(page, ".lsd img")
    assert page.console_errors == []
    screenshot(page, "detail")


def test_the_app_works_served_without_a_thread_pool(
    demo_home: Path, ui_database: str, page: object
) -> None:
    """``panel serve app/main.py`` without ``--num-threads`` (not what ``make run`` does): the
    survey loads (it stayed at "Loading the survey…" with a RuntimeError) and a click on the
    map opens the details (the work runs in the server's event loop)."""
    from tests.ui.conftest import panel_server

    env = {"LATENTSKY_HOME": str(demo_home), "DATABASE_URL": ui_database}
    with panel_server(env, threads=None) as url:
        load(page, f"{url}/main")
        _, points = settled_map(page)
        x, y = hover_object(page, points)
        page.mouse.click(x, y)
        page.locator(".lsd-title").wait_for(timeout=20_000)
        assert not page.get_by_text("Loading the survey").first.is_visible()
    assert page.console_errors == []


def test_similarity_search_returns_results_and_clicks_search_again(
    demo_url: str, page: object
) -> None:
    load(page, demo_url)
    open_tab(page, "Similar")
    page.get_by_role("button", name="Object id").click()
    field = page.get_by_placeholder("#42 for row 42", exact=False)
    field.fill("demo-00000007")
    field.press("Enter")
    page.get_by_text("24 objects most like").wait_for(timeout=30_000)
    ids = wait_tile_ids(page, 24)
    assert len(ids) == 24 and "demo-00000007" not in ids
    wait_images_loaded(page, ".lsg img")
    page.locator(f".lsg-tile[data-object-id='{ids[3]}'] img").click()
    page.locator("code", has_text=ids[3]).first.wait_for(timeout=30_000)
    again = wait_tile_ids(page, 24, differ_from=ids)
    assert again != ids
    wait_images_loaded(page, ".lsg img")
    screenshot(page, "similar", height=1100)
    for i, mark in ((0, "+ like"), (1, "+ like"), (2, "- unlike")):  # steer the search
        page.locator(f".lsg-tile[data-object-id='{again[i]}'] button", has_text=mark).click()
        page.locator(f".lsg-tile.lsg-{'pos' if '+' in mark else 'neg'}").nth(0).wait_for()
        page.wait_for_timeout(1500)  # let the server apply each mark before the next event
    page.get_by_role("button", name="Refine with +/- marks").click()
    page.get_by_text("like 3 example(s) and unlike 1").wait_for(timeout=30_000)
    refined = tile_ids(page)
    assert refined and not set(refined) & {ids[3], *again[:3]}
    assert page.console_errors == []


def test_bad_upload_gets_a_clear_message(demo_url: str, page: object, tmp_path: Path) -> None:
    load(page, demo_url)
    open_tab(page, "Similar")
    page.get_by_role("button", name="Image file").click()
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    page.locator("input[type=file]").set_input_files(str(bad))
    time.sleep(1.0)
    page.get_by_role("button", name="Search", exact=True).click()
    page.get_by_text("unsupported type").wait_for(timeout=20_000)
    npy = tmp_path / "cutout.npy"
    np.save(npy, np.full((3, 64, 64), np.nan, dtype=np.float32))
    page.locator("input[type=file]").set_input_files(str(npy))
    time.sleep(1.0)
    page.get_by_role("button", name="Search", exact=True).click()
    page.get_by_text("expects 4").wait_for(timeout=20_000)  # 3 bands for a griz survey
    assert page.console_errors == []


def _timing_hooks(page: object) -> None:
    page.evaluate(
        """() => {
            window.__shown = [];
            document.addEventListener('keydown', () => { window.__key = performance.now(); }, true);
            window.addEventListener('latentsky:shown', (e) => window.__shown.push(
                {id: e.detail.object_id, dt: e.detail.t - (window.__key || 0)}));
        }"""
    )


def label_with_keys(
    page: object, keys: list[str], pause_s: float = 0.0
) -> list[tuple[str, str, float]]:
    """Press each key in the Label tab (``pause_s`` after each next object appeared: the time a
    person looks at it); returns (labelled id, next id, ms from key press to next shown)."""
    stage = visible(page, ".lss")
    done = []
    for key in keys:
        time.sleep(pause_s)
        before = stage.get_attribute("data-shown")
        n = page.evaluate("window.__shown.length")
        page.keyboard.press(key)
        page.wait_for_function(
            "([n, id]) => window.__shown.length > n && window.__shown.at(-1).id !== id",
            arg=[n, before],
            timeout=10_000,
        )
        shown = page.evaluate("window.__shown.at(-1)")
        done.append((before, shown["id"], shown["dt"]))
    return done


def test_key_press_labels_a_galaxy_and_shows_the_next(
    demo_url: str, demo_env: Path, page: object
) -> None:
    from backend.labels import LabelStore

    load(page, demo_url)
    page.get_by_placeholder("e.g. Vera Rubin").fill(USER)
    page.get_by_placeholder("e.g. Vera Rubin").press("Enter")
    open_tab(page, "Label")
    visible(page, ".lss[data-shown]").wait_for(timeout=30_000)
    _timing_hooks(page)
    first = label_with_keys(page, ["3"])[0]
    page.get_by_text("stored").first.wait_for(timeout=10_000)
    labels = LabelStore().current("demo", user=USER)
    assert dict(zip(labels["object_id"], labels["value"], strict=True)) == {first[0]: "spiral"}
    timings = label_with_keys(page, ["1", "2", "3", "4", "5"] * 3)
    assert LabelStore().count("demo", user=USER) == 16
    page.keyboard.press("Backspace")  # undo brings the last one back
    visible(page, f".lss[data-shown='{timings[-1][0]}']").wait_for(timeout=10_000)
    page.get_by_text("undid").first.wait_for(timeout=10_000)
    assert LabelStore().count("demo", user=USER) == 15
    ms = np.array([t[2] for t in timings])
    print(f"label -> next object on screen: median {np.median(ms):.0f} ms, "
          f"p95 {np.percentile(ms, 95):.0f} ms over {len(ms)} labels")  # fmt: skip
    assert page.console_errors == []
    screenshot(page, "label")


def test_classes_edited_in_the_label_view_give_new_buttons_and_keys(
    demo_url: str, demo_env: Path, page: object
) -> None:
    from backend.labels import LabelStore

    if os.environ.get("LATENTSKY_UI_HOME"):
        pytest.skip("a shared data root: its label schema is not the test's to change")
    user = "schema-editor"
    load(page, demo_url)
    page.get_by_placeholder("e.g. Vera Rubin").fill(user)
    page.get_by_placeholder("e.g. Vera Rubin").press("Enter")
    open_tab(page, "Label")
    visible(page, ".lss[data-shown]").wait_for(timeout=30_000)
    page.get_by_text("Edit this survey's classes").click()
    field = page.get_by_label("Classes, comma separated")
    field.fill("only")
    field.press("Enter")
    page.get_by_role("button", name="Save classes").click()
    page.get_by_text("needs at least two classes").wait_for(timeout=10_000)
    assert page.get_by_role("button", name="1 · elliptical").count() == 1  # unchanged
    try:
        field.fill("star, galaxy, qso")
        field.press("Enter")
        page.get_by_role("button", name="Save classes").click()
        page.get_by_role("button", name="2 · galaxy").wait_for(timeout=10_000)
        assert page.get_by_role("button", name="1 · elliptical").count() == 0
        shown = visible(page, ".lss[data-shown]").get_attribute("data-shown")
        page.keyboard.press("2")
        page.get_by_text("→ galaxy").first.wait_for(timeout=10_000)
        labels = LabelStore().current("demo", user=user)
        assert labels[["object_id", "value"]].values.tolist() == [[shown, "galaxy"]]
    finally:
        (demo_env / "label_schemas" / "demo.yaml").unlink(missing_ok=True)
    assert page.console_errors == []


def test_anomaly_feedback_reranks_the_list(demo_url: str, demo_env: Path, page: object) -> None:
    from backend.feedback import latest_interest

    load(page, demo_url)
    open_tab(page, "Anomalies")
    visible(page, ".lss[data-shown]").wait_for(timeout=30_000)
    wait_images_loaded(page, ".lsg img")
    before = tile_ids(page)
    scored = visible(page, ".lss").get_attribute("data-shown")
    assert scored == before[0]
    page.keyboard.press("5")
    page.get_by_text("list re-ranked").wait_for(timeout=30_000)
    after = tile_ids(page)
    assert scored not in after  # scored objects are hidden by default
    assert after != [i for i in before if i != scored]  # look-alikes of a 5 moved up
    interest = latest_interest("demo")
    assert scored in set(interest["object_id"])
    shown = visible(page, ".lss").get_attribute("data-shown")
    assert shown == after[0]
    page.keyboard.press("ArrowRight")
    visible(page, f".lss[data-shown='{after[1]}']").wait_for(timeout=10_000)
    assert page.console_errors == []
    screenshot(page, "anomalies", height=1300)


def test_models_view_shows_versions_diagnostics_and_jobs(demo_url: str, page: object) -> None:
    load(page, demo_url)
    open_tab(page, "Models & jobs")
    page.locator(".tabulator-cell", has_text="classifier").first.wait_for(timeout=30_000)
    page.get_by_text("ECE (calibrated)").first.wait_for(timeout=30_000)
    screenshot(page, "models", height=1400)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download labels (CSV)").click()
    header = Path(download.value.path()).read_text().splitlines()[0].split(",")
    assert {"object_id", "value", "user", "created"} <= set(header)
    if os.environ.get("LATENTSKY_UI_HOME"):
        return  # a shared data root: queue no job there (its worker would see it)
    page.get_by_role("button", name="Retrain the classifier with the labels").click()
    page.get_by_text("queued; its progress shows below").wait_for(timeout=60_000)
    page.locator(".tabulator-cell", has_text="retrain").first.wait_for(timeout=10_000)
    page.get_by_role("button", name="Cancel job").click()  # no worker runs in the tests
    page.get_by_text(re.compile(r"cancelled\.|cancel requested")).wait_for(timeout=20_000)
    page.locator(".tabulator-cell", has_text="cancelled").first.wait_for(timeout=10_000)
    assert page.console_errors == []


def test_a_retrained_classifier_is_offered_without_reloading_the_page(
    demo_url: str, demo_env: Path, page: object
) -> None:
    from backend.active.loop import retrain_classifier
    from backend.labels import LabelStore
    from backend.registry import ModelRegistry
    from backend.survey import Survey

    if os.environ.get("LATENTSKY_UI_HOME"):
        pytest.skip("a shared data root: no new model version may be made there")
    store = LabelStore()
    catalog = Survey.open("demo").catalog.set_index("object_id")["true_class"]
    ids = [f"demo-{i:08d}" for i in range(12)]
    known = set(store.current("demo")["object_id"])
    for oid in (i for i in ids if i not in known):  # labelled as the catalog has them
        store.add("demo", oid, str(catalog[oid]), user="retrainer")
    # The retrain must pass the activation gate: judged against the quick demo's 5-epoch catalog
    # classifier, a 5-epoch retrain is refused even with right labels (balanced accuracy 0.16 vs
    # 0.21 on the 81 validation objects). Make the active classifier what a retrain of these
    # labels gives (forced, as a person may), so the next retrain is judged on equal terms.
    retrain_classifier("demo", {"epochs": 5, "force": True})
    load(page, demo_url)
    before = ModelRegistry().active_versions("demo")["classifier"]
    sidebar_version = page.locator(".lss-models tr", has_text="classifier").locator("code").first
    sidebar_version.wait_for(timeout=30_000)
    assert sidebar_version.inner_text() == before
    result = retrain_classifier("demo", {"epochs": 5})  # what the worker's retrain job runs
    assert result["version"] != before
    assert result["activated"], result["reason"]
    page.get_by_text("New model version active").wait_for(timeout=30_000)
    page.get_by_role("button", name="Show them").click()
    deadline = time.monotonic() + 30
    while sidebar_version.inner_text() != result["version"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sidebar_version.inner_text() == result["version"]
    page.get_by_text("New model version active").wait_for(state="hidden", timeout=10_000)
    assert page.console_errors == []
