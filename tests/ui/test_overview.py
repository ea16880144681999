"""The page of a survey that has no models yet, and of an empty data root."""

from __future__ import annotations

import pytest

from backend.survey import Survey
from tests.ui.conftest import screenshot
from tests.ui.pages import wait_images_loaded

pytestmark = pytest.mark.ui


def test_survey_without_models_says_what_to_run_and_shows_galaxies(
    tiny_survey: Survey, serve_app: callable, page: object
) -> None:
    page.goto(serve_app() + "/main", wait_until="networkidle")
    page.get_by_text("has no encoder yet").first.wait_for(timeout=30_000)
    assert page.get_by_text("python -m backend prepare --survey tiny").count() >= 1
    images = page.locator("img[src^='/thumb/tiny/']")
    images.first.wait_for(timeout=20_000)
    assert images.count() == 48  # first page of the first objects
    wait_images_loaded(page, "img[src^='/thumb/tiny/']")
    assert page.console_errors == []
    screenshot(page, "no-models")


def test_empty_data_root_says_how_to_start(home: object, serve_app: callable, page: object) -> None:
    page.goto(serve_app() + "/main", wait_until="networkidle")
    page.get_by_text("No surveys yet").wait_for(timeout=20_000)
    assert page.console_errors == []
