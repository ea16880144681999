"""The details panel explains an injected anomaly and highlights the simulator's recorded
region, while the page stays usable."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ui.pages import open_tab, wait_images_loaded

pytestmark = pytest.mark.ui

CHECKED = ("satellite_track", "cosmic_ray", "detector_artifact")


def test_an_anomaly_shows_its_explanation_with_the_recorded_region(
    demo_url: str, demo_env: Path, page: object
) -> None:
    from backend.simulate.masks import read_masks
    from backend.survey import Survey

    survey = Survey.open("demo")
    catalog = survey.catalog
    kinds = catalog["anomaly_type"].fillna("")
    rows = [i for i, k in enumerate(kinds) if k in CHECKED] or [i for i, k in enumerate(kinds) if k]
    assert rows, "the quick demo has injected anomalies"
    masks = read_masks(survey.path)
    assert masks is not None and masks.get(rows[0]) is not None
    object_id = str(catalog["object_id"].iloc[rows[0]])

    page.goto(demo_url, wait_until="networkidle")
    page.locator("canvas").first.wait_for(timeout=60_000)
    open_tab(page, "Similar")  # open the anomaly by its id: the Explore details follow
    page.get_by_role("button", name="Object id").click()
    field = page.get_by_placeholder("#42 for row 42", exact=False)
    field.fill(object_id)
    field.press("Enter")
    page.get_by_text("objects most like").first.wait_for(timeout=30_000)
    open_tab(page, "Explore")
    page.locator(".lsd-title", has_text=object_id).wait_for(timeout=30_000)
    # the details are there before the explanation: it is computed off the event loop
    explained = page.locator(
        f".lsd-explain[data-object-id='{object_id}'][data-recorded-region='outlined']"
    )
    explained.wait_for(timeout=60_000)
    region = page.locator(".lsd-region")
    assert region.count() == 1 and kinds.iloc[rows[0]] in region.inner_text()
    fraction = float(region.get_attribute("data-region-fraction"))
    assert fraction == pytest.approx(float(masks.get(rows[0]).mean()), abs=1e-4)
    figure = page.locator(".lsd-explain-fig")
    figure.scroll_into_view_if_needed()
    wait_images_loaded(page, ".lsd-explain img")
    assert page.console_errors == []
