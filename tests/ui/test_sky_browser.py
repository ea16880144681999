"""The Sky tab in a browser: the demo survey is drawn on the sky, and a box drawn there shows
up as the Explore tab's selection (its count, its gallery and orange dots on the latent map)."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from tests.ui.pages import box_select, inside_plot, map_pixels, open_tab, settled_map, tile_ids

pytestmark = pytest.mark.ui
ACCENT = np.array([0xF5, 0x9E, 0x0B])  # app.plots.ACCENT: the shared selection's dots


def _orange(pixels: np.ndarray) -> int:
    """Pixels of the accent colour (drawn at 90 % opacity over the map)."""
    return int((np.abs(pixels.astype(int) - ACCENT).max(axis=2) < 36).sum())


def test_the_sky_draws_and_its_box_selection_shows_in_explore(demo_url: str, page: object) -> None:
    page.goto(demo_url, wait_until="networkidle")
    page.locator("canvas").first.wait_for(timeout=60_000)  # the latent map is up
    latent, _ = settled_map(page)
    orange_before = _orange(map_pixels(page, latent))
    open_tab(page, "Sky")
    page.get_by_text("RA increases to the left").first.wait_for(timeout=30_000)
    box, points = settled_map(page)  # the largest canvas shown: the sky
    assert len(points) > 50, "the sky shows no objects"
    x, y = inside_plot(box, *points[len(points) // 2], 100)
    box_select(page, x, y, 90, via_centre=True)
    counted = page.get_by_text(re.compile(r"^[\d,]+ objects selected on the sky$"))
    counted.first.wait_for(timeout=20_000)
    n = int(re.search(r"([\d,]+) objects selected", counted.first.inner_text())[1].replace(",", ""))
    assert n > 0
    open_tab(page, "Explore")
    shown = page.get_by_text(f"{n:,} objects selected on the sky · showing")
    shown.first.wait_for(timeout=20_000)  # the latent map's selection count
    ids = tile_ids(page)
    assert 0 < len(ids) <= min(n, 48) and all(i.startswith("demo-") for i in ids)
    page.locator(".bk-tab").first.scroll_into_view_if_needed()  # the gallery scrolled down
    latent, _ = settled_map(page)  # the sky's objects are marked on the latent map
    deadline, orange = time.monotonic() + 20, 0
    while time.monotonic() < deadline and orange < orange_before + 4 * min(n, 50):
        time.sleep(0.3)
        orange = _orange(map_pixels(page, latent))
    assert orange >= orange_before + 4 * min(n, 50), (orange_before, orange, n)
    assert page.console_errors == []
