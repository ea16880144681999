"""The Similar tab's map in the browser: its toolbar shows every tool (the figure's title shared
the toolbar's row and folded six of its eight tools into "⋮"), and the map is still titled."""

from __future__ import annotations

import time

import pytest

from tests.ui.pages import open_tab

pytestmark = pytest.mark.ui

# tools folded into each shown Bokeh toolbar's overflow menu ("⋮")
FOLDED_JS = """() => Array.from(Bokeh.index.query((v) => v._overflow_menu != null))
  .filter((v) => v.el.getBoundingClientRect().width > 0)
  .map((v) => v._overflow_menu.items.length)"""


def test_the_similar_map_folds_no_tool_and_keeps_its_title(demo_url: str, page: object) -> None:
    page.goto(demo_url, wait_until="networkidle")
    page.locator("canvas").first.wait_for(timeout=60_000)
    open_tab(page, "Similar")
    seen: list[list[int]] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len([f for f in seen if f]) < 12:
        seen.append(page.evaluate(FOLDED_JS))  # watched for a while: BokehJS folds on layout
        time.sleep(0.4)
    shown = [f for f in seen if f]
    folded = shown[-1] if shown else None
    assert folded is not None and len(folded) == 1, folded  # the Similar map's toolbar only
    assert all(f == [0] for f in shown), f"tools folded into the menu: {shown}"
    page.get_by_text("results (orange) and query (white)").first.wait_for(timeout=10_000)
    assert page.console_errors == []
