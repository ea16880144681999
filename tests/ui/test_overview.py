"""The survey overview page as a user sees it in a browser."""

from __future__ import annotations

import pytest

from backend.survey import Survey
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.ui


def test_overview_lists_surveys_and_shows_galaxies(
    tiny_survey: Survey, serve_app: callable, page: object
) -> None:
    page.goto(serve_app(), wait_until="networkidle")
    page.locator(".tabulator-cell", has_text="tiny").first.wait_for(timeout=20_000)
    images = page.locator("img[src^='/thumb/tiny/']")
    images.first.wait_for(timeout=20_000)
    assert images.count() == 24
    page.wait_for_function(
        "() => [...document.querySelectorAll(\"img[src^='/thumb/']\")]"
        ".every(img => img.complete && img.naturalWidth > 0)",
        timeout=20_000,
    )
    assert page.console_errors == []
    page.screenshot(path=str(REPO_ROOT / "docs" / "img" / "overview.png"))


def test_empty_data_root_says_how_to_start(home: object, serve_app: callable, page: object) -> None:
    page.goto(serve_app(), wait_until="networkidle")
    page.get_by_text("No surveys yet").wait_for(timeout=20_000)
    assert page.console_errors == []
