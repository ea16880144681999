"""What a new user hit in the browser (issue 13): the job list that never moved, the versions
table's hidden columns, a bad upload's error and stale results, the page at 1280 and 800 px."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.ui.conftest import panel_server
from tests.ui.pages import map_box, open_tab, wait_tile_ids

pytestmark = pytest.mark.ui


@pytest.fixture(scope="module")
def workbench(demo_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The app served on a copy of the demo data root with its own database: these tests add
    jobs and model versions that the other browser tests must not see."""
    root = tmp_path_factory.mktemp("workbench")
    home = root / "home"
    shutil.copytree(demo_home, home, ignore=shutil.ignore_patterns("*.lock", "latentsky.db*"))
    env = {"LATENTSKY_HOME": str(home)}
    env["DATABASE_URL"] = f"sqlite:///{root / 'latentsky.db'}"
    env["LATENTSKY_RETRAIN_EVERY"] = "1000000000"
    with panel_server(env) as url:
        yield {"url": f"{url}/main", "env": env, "home": home}


@pytest.fixture
def served_env(workbench: dict, monkeypatch: pytest.MonkeyPatch) -> dict:
    """This test process reads and writes the served app's data root and database."""
    for key in ("LATENTSKY_HOME", "DATABASE_URL"):
        monkeypatch.setenv(key, workbench["env"][key])
    return workbench


def load(page: object, url: str, width: int = 1400, height: int = 900) -> None:
    page.set_viewport_size({"width": width, "height": height})
    page.goto(url, wait_until="networkidle")
    page.locator(".bk-tab").first.wait_for(timeout=60_000)


def inside_viewport(page: object, locator: object) -> bool:
    box = locator.bounding_box()
    size = page.viewport_size
    return box is not None and box["x"] >= 0 and box["x"] + box["width"] <= size["width"] + 0.5


def next_version(folder: Path) -> str:
    """The version name a new save in ``folder`` would take (``v0001``...)."""
    numbers = [int(p.name[1:]) for p in folder.glob("v[0-9]*") if p.name[1:].isdigit()]
    return f"v{max(numbers, default=0) + 1:04d}"


def test_job_list_follows_a_job_to_its_end_and_shows_its_version(
    served_env: dict, page: object
) -> None:
    from backend.jobs.table import finish, insert_job

    load(page, served_env["url"])
    open_tab(page, "Models & jobs")
    page.locator(".tabulator-cell", has_text="classifier").first.wait_for(timeout=30_000)
    job = insert_job("retrain", "demo", {}, "someone-else")  # as the label loop queues it
    page.locator(".tabulator-cell", has_text="queued").first.wait_for(timeout=15_000)
    cancel = page.get_by_role("button", name="Cancel job")
    expect(cancel).to_be_enabled(timeout=15_000)  # once the picker has the queued job
    classifiers = served_env["home"] / "models" / "classifier"
    saved = next_version(classifiers)  # earlier browser tests may have saved some already
    shutil.copytree(classifiers / "v0001", classifiers / saved)  # what the worker saved
    finish(job, "succeeded", result={"version": saved, "activated": False, "reason": "test"})
    page.locator(".tabulator-cell", has_text="succeeded").first.wait_for(timeout=15_000)
    page.locator(".tabulator-cell", has_text=saved).first.wait_for(timeout=15_000)
    assert page.locator(".tabulator-cell", has_text="queued").count() == 0
    expect(cancel).to_be_disabled(timeout=15_000)
    job = insert_job("finetune", "demo", {}, "someone-else")  # finishes while another tab shows
    page.locator(".tabulator-cell", has_text="queued").first.wait_for(timeout=15_000)
    open_tab(page, "Label")
    later = next_version(classifiers)
    shutil.copytree(classifiers / "v0001", classifiers / later)
    finish(job, "failed", error="out of memory")
    page.wait_for_timeout(3000)
    open_tab(page, "Models & jobs")
    page.locator(".tabulator-cell", has_text="out of memory").first.wait_for(timeout=15_000)
    page.locator(".tabulator-cell", has_text=later).first.wait_for(timeout=15_000)
    assert page.locator(".tabulator-cell", has_text="queued").count() == 0
    expect(cancel).to_be_disabled(timeout=15_000)
    assert page.console_errors == []


def test_versions_table_shows_accuracy_ece_and_created_at_1400_px(
    served_env: dict, page: object
) -> None:
    load(page, served_env["url"], 1400, 900)
    open_tab(page, "Models & jobs")
    page.locator(".tabulator-cell", has_text="classifier").first.wait_for(timeout=30_000)
    table = page.locator(".tabulator", has=page.locator(".tabulator-cell", has_text="encoder"))
    box = table.first.bounding_box()
    for name in ("accuracy", "ece", "created"):  # "created" was pushed off behind a scroll
        title = page.locator(".tabulator-col-title", has_text=name).first
        col = title.bounding_box()
        assert col is not None and col["width"] > 20, name
        assert box["x"] <= col["x"] and col["x"] + col["width"] <= box["x"] + box["width"] + 1, (
            f"the {name} column is clipped ({col} outside the table's {box})"
        )
        assert inside_viewport(page, title), name


def test_bad_upload_names_the_users_file_and_clears_the_previous_results(
    served_env: dict, page: object, tmp_path: Path
) -> None:
    load(page, served_env["url"])
    open_tab(page, "Similar")
    page.get_by_role("button", name="Object id").click()
    field = page.get_by_placeholder("#42 for row 42", exact=False)
    field.fill("#7")
    field.press("Enter")
    assert len(wait_tile_ids(page, 24)) == 24
    page.get_by_role("button", name="Image file").click()
    bad = tmp_path / "my<b>cutout.fits"
    bad.write_bytes(b"SIMPLE  =  garbage, not a FITS file" + b" " * 3000)
    page.locator("input[type=file]").set_input_files(str(bad))
    page.wait_for_timeout(1000)
    page.get_by_role("button", name="Search", exact=True).click()
    alert = page.locator(".alert-danger", has_text="my<b>cutout.fits").first
    alert.wait_for(timeout=20_000)
    text = alert.inner_text()
    assert "latentsky-upload-" not in text and "/tmp" not in text and "upload.fits" not in text
    assert wait_tile_ids(page, 0) == []
    assert page.get_by_text("24 objects most like").count() == 0
    assert page.console_errors == []


def _clipped(page: object, locator: object) -> list[str]:
    size = page.viewport_size
    out = []
    for el in locator.all():
        if not el.is_visible():
            continue
        box = el.bounding_box()
        if box and (box["x"] < -0.5 or box["x"] + box["width"] > size["width"] + 0.5):
            out.append(f"{el.inner_text()[:30]!r} at x={box['x']:.0f} w={box['width']:.0f}")
    return out


@pytest.mark.parametrize("width,height", [(1280, 720), (800, 900)])
def test_page_fits_the_window(served_env: dict, page: object, width: int, height: int) -> None:
    load(page, served_env["url"], width, height)
    box = map_box(page)
    assert box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, box
    assert 0.5 <= box["width"] / box["height"] <= 2.5, f"the map is a strip: {box}"
    assert not _clipped(page, page.locator(".bk-tab")), "tabs clipped"
    details = page.get_by_text("Click a point on the map or a thumbnail").first
    assert not _clipped(page, details), "the details panel is clipped"
    beside = details.bounding_box()["x"] >= box["x"] + box["width"] - 1
    assert beside == (width >= 1000), "details beside the map when wide, below it when narrow"
    sidebar = page.locator("#sidebar")
    if width < 1000:
        assert not sidebar.is_visible() or sidebar.bounding_box()["width"] < 5, "sidebar shown"
    open_tab(page, "Anomalies")
    tiles = page.locator(".lsg-tile >> visible=true")
    tiles.first.wait_for(timeout=30_000)
    assert not _clipped(page, tiles), "anomaly candidates clipped"
    download = page.get_by_role("button", name=re.compile("Download")).locator("visible=true")
    assert download.count() and not _clipped(page, download), "download button clipped"
    # "showing #1" beside "(rank 4)": which list each number counts in
    page.get_by_text("showing #1 of this list").first.wait_for(timeout=10_000)
    page.get_by_text(re.compile(r"rank \d+ of all objects")).first.wait_for(timeout=10_000)
    page.get_by_text("Ranking re-ranked by your own interest scores").first.wait_for()
    assert page.console_errors == []


def test_the_wheel_over_the_small_map_in_similar_scrolls_the_page(
    served_env: dict, page: object
) -> None:
    load(page, served_env["url"], 1400, 700)
    open_tab(page, "Similar")
    page.get_by_role("button", name="Object id").click()
    field = page.get_by_placeholder("#42 for row 42", exact=False)
    field.fill("#7")
    field.press("Enter")
    assert len(wait_tile_ids(page, 24)) == 24  # a page taller than the window
    box = map_box(page)
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + min(box["height"], 300) / 2)
    scrolled = """() => [window.scrollY, ...[...document.querySelectorAll('*')]
        .map((e) => e.scrollTop)].reduce((a, b) => a + b, 0)"""
    before = page.evaluate(scrolled)
    page.mouse.wheel(0, 400)
    page.wait_for_timeout(800)
    after = page.evaluate(scrolled)
    assert after > before, "the wheel over the map did not scroll the page"
