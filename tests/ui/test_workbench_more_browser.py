"""More of what a new user hit in the browser (issue 13): a selection's gallery below the fold
with the details of a clicked thumbnail out of sight; ids and similarities cut in result tiles
and every neighbour in Label reading "sim 1.00"."""

from __future__ import annotations

import re

import pytest

from tests.ui.pages import (
    box_select,
    hover_object,
    inside_plot,
    open_tab,
    settled_map,
    tile_ids,
    visible,
    wait_tile_ids,
)

pytestmark = pytest.mark.ui


def load(page: object, url: str, width: int = 1400, height: int = 900) -> None:
    page.set_viewport_size({"width": width, "height": height})
    page.goto(url, wait_until="networkidle")
    page.locator(".bk-tab").first.wait_for(timeout=60_000)


def on_screen(page: object, locator: object) -> bool:
    """Some of the element lies inside the window (not scrolled away above or below)."""
    box = locator.bounding_box()
    height = page.viewport_size["height"]
    return box is not None and box["y"] < height - 20 and box["y"] + box["height"] > 20


def cut_texts(page: object, selector: str) -> list[str]:
    """Texts of visible elements matching ``selector`` wider than their box (cut by an ellipsis)."""
    cut = []
    for el in page.locator(f"{selector} >> visible=true").all():
        if el.evaluate("(e) => e.scrollWidth > e.clientWidth + 1"):
            cut.append(el.inner_text())
    return cut


def test_a_selection_shows_its_gallery_and_a_click_shows_the_details(
    demo_url: str, page: object
) -> None:
    load(page, demo_url, 1400, 900)
    box, points = settled_map(page)
    x, y = inside_plot(box, *hover_object(page, points), 95)
    box_select(page, x, y, 80)
    page.get_by_text("objects selected").first.wait_for(timeout=20_000)
    ids = tile_ids(page)
    assert ids
    tile = visible(page, f".lsg-tile[data-object-id='{ids[0]}']")
    page.wait_for_timeout(800)  # the gallery scrolls itself into view
    assert on_screen(page, tile), "the selection's gallery is below the fold"
    pick = ids[-1]
    visible(page, f".lsg-tile[data-object-id='{pick}'] img").click()
    details = visible(page, ".ls-object-details")
    details.get_by_text(pick).first.wait_for(timeout=20_000)
    page.wait_for_timeout(500)
    assert on_screen(page, details.get_by_text(pick).first), "the details are out of sight"
    assert page.console_errors == []


def test_result_tiles_show_whole_ids_and_telling_similarities(demo_url: str, page: object) -> None:
    load(page, demo_url, 1400, 900)
    open_tab(page, "Similar")
    page.get_by_role("button", name="Object id").click()
    field = page.get_by_placeholder("#42 for row 42", exact=False)
    field.fill("#7")
    field.press("Enter")
    ids = wait_tile_ids(page, 24)
    assert len(ids) == 24
    caps = [c.inner_text() for c in page.locator(".lsg-cap >> visible=true").all()]
    assert caps[0] == ids[0] and caps[-1] == ids[-1]  # the id alone: no "1." left on a line
    assert cut_texts(page, ".lsg-cap") == [] and cut_texts(page, ".lsg-sub") == []
    subs = [s.inner_text() for s in page.locator(".lsg-sub >> visible=true").all()]
    sims = [re.fullmatch(r"#(\d+) · sim -?\d\.\d{3}(\n.+)?", s) for s in subs]
    assert all(sims), subs[:3]  # rank and similarity on one line, the class under them
    assert [int(m.group(1)) for m in sims] == list(range(1, len(sims) + 1))
    open_tab(page, "Label")
    first = page.locator(".lsg-sub >> visible=true", has_text="sim").first
    first.wait_for(timeout=30_000)
    page.wait_for_timeout(500)
    subs = [s.inner_text() for s in page.locator(".lsg-sub >> visible=true").all()]
    sims = [re.search(r"#(\d+) · sim (-?\d\.\d{3})", s) for s in subs]
    assert all(sims), subs
    assert [int(m.group(1)) for m in sims] == list(range(1, len(sims) + 1))
    values = [float(m.group(2)) for m in sims]
    assert values == sorted(values, reverse=True) and len(set(values)) > 1, subs
    assert cut_texts(page, ".lsg-cap") == [] and cut_texts(page, ".lsg-sub") == []
    assert page.console_errors == []
