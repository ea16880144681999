"""Explore's colour change in the browser (issue 13): the map's figure stays (its canvas is not
replaced), between kinds of colouring too, the picture changes, and hover, tap and box
selection still work."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from app.plots import NO_BAR_ROOM
from tests.ui.pages import (
    box_select,
    colour_bars,
    hover_object,
    map_box,
    map_frame,
    map_pixels,
    settled_map,
    tile_ids,
)

pytestmark = pytest.mark.ui


def _map_canvas(page: object) -> object:
    box = map_box(page)
    for canvas in page.locator("canvas").all():
        if canvas.is_visible() and canvas.bounding_box() == box:
            return canvas.element_handle()
    raise AssertionError("no map canvas")


def _drawing_area(page: object) -> tuple[int, ...]:
    """The map's drawing area (x, y, width, height in page pixels), as Bokeh laid it out."""
    frame = map_frame(page, map_box(page))
    assert frame is not None, "Bokeh did not say where the map is drawn"
    return tuple(round(frame[k]) for k in ("x", "y", "width", "height"))


def _recolour(page: object, option: str) -> np.ndarray:
    """Choose ``option`` in *Colour by*; the map picture once it changed and settled."""
    box, _ = settled_map(page)
    before = map_pixels(page, box)
    select = page.locator("select").filter(has=page.locator("option", has_text="Density")).first
    select.select_option(label=option)
    deadline, previous = time.monotonic() + 30, None
    while time.monotonic() < deadline:
        now = map_pixels(page, box)
        if not np.array_equal(now, before):
            if previous is not None and np.array_equal(previous, now):
                return now
            previous = now
        time.sleep(0.3)
    raise AssertionError(f"the map did not change to {option!r}")


def test_a_colour_change_keeps_the_figure_and_its_tools(demo_url: str, page: object) -> None:
    page.goto(demo_url, wait_until="networkidle")
    page.locator("canvas").first.wait_for(timeout=60_000)
    settled_map(page)
    select = page.locator("select").filter(has=page.locator("option", has_text="Density")).first
    options = [o.strip() for o in select.locator("option").all_inner_texts()]
    current = select.evaluate("(s) => s.options[s.selectedIndex].text").strip()
    if current != "Predicted class":
        _recolour(page, "Predicted class")
    canvas = _map_canvas(page)
    for option in ("Human labels", "Predicted class"):  # categories: same figure, new picture
        _recolour(page, option)
        assert canvas.evaluate("(c) => c.isConnected"), f"the figure was rebuilt for {option!r}"
    _, points = settled_map(page)
    hover_object(page, points)  # after a change in place, hover still names objects
    numbers = [o for o in options if o.startswith("Anomaly score")][:2]
    assert len(numbers) == 2, options  # the demo's scorers
    # classes -> numbers -> density -> classes: other kinds of image, still the same figure,
    # and the same drawing area (a colour bar shown, hidden or relabelled resizing it made the
    # server draw the map twice for one change)
    areas = {option: _drawing_area(page) for option in ["Predicted class"]}
    for option in (*numbers, "Density (objects per pixel)", "Predicted class"):
        _recolour(page, option)
        assert canvas.evaluate("(c) => c.isConnected"), f"the figure was rebuilt for {option!r}"
        areas[option] = _drawing_area(page)
    assert len(set(areas.values())) == 1, f"the map's drawing area changed: {areas}"
    _, points = settled_map(page)
    x, y = hover_object(page, points)  # hover still names objects
    box_select(page, x, y, 80)
    page.get_by_text("objects selected").first.wait_for(timeout=20_000)
    assert tile_ids(page)
    assert page.console_errors == []


def test_a_click_right_after_a_change_of_colouring_kind_opens_the_details(
    demo_url: str, page: object
) -> None:
    """A change between kinds rebuilt the figure, and a click on the new one opened nothing:
    the details panel opens for a click as soon as the new picture is drawn."""
    page.goto(demo_url, wait_until="networkidle")
    page.locator("canvas").first.wait_for(timeout=60_000)
    _, points = settled_map(page)
    x, y = hover_object(page, points)  # a spot with an object under it (the view is kept)
    page.mouse.move(5, 5)
    select = page.locator("select").filter(has=page.locator("option", has_text="Density")).first
    options = [o.strip() for o in select.locator("option").all_inner_texts()]
    current = select.evaluate("(s) => s.options[s.selectedIndex].text").strip()
    number = next(o for o in options if o.startswith("Anomaly score"))
    assert current != number
    _recolour(page, number)
    page.mouse.click(x, y)
    title = page.locator(".lsd-title")
    title.wait_for(timeout=20_000)
    assert title.inner_text().startswith("demo-")
    assert page.console_errors == []


COLOUR_BAR_JS = """() => {
  const bars = Bokeh.index.query((v) => v._axis != null && v.model.color_mapper != null);
  const images = Bokeh.index.query((v) => v.model.glyph != null
    && v.model.glyph.color_mapper != null && v.model.data_source.data.image != null);
  const out = {bars: [], images: []};
  for (const v of bars) {
    if (!v.model.visible) continue;
    const m = v.model.color_mapper;
    out.bars.push({ticks: Array.from(v._axis.ticker.ticks ?? []),
      overrides: Array.from(v._axis.major_label_overrides ?? new Map()),
      low: m.low, high: m.high, title: v.model.title});
  }
  for (const v of images) {
    const m = v.model.glyph.color_mapper, data = v.model.data_source.data.image[0];
    let min = Infinity, drawn = 0;
    for (const x of data) if (Number.isFinite(x)) { drawn++; if (x < min) min = x; }
    out.images.push({min, drawn, low: m.low, high: m.high, n: m.palette.length,
      kind: m.type ?? m.constructor.name});
  }
  return out;
}"""


def test_the_density_colour_bar_reads_object_counts(demo_url: str, page: object) -> None:
    """Density is equalised on the server and mapped linearly: the colour bar the page draws
    is ticked with object counts, 1 first (it showed Bokeh's own 0.92-1 when the ticker was
    swapped after the page was built), a pixel with one object is not the palette's bottom
    colour, and a number's bar has its own ticks again afterwards."""
    page.goto(demo_url, wait_until="networkidle")
    page.locator("canvas").first.wait_for(timeout=60_000)
    settled_map(page)
    select = page.locator("select").filter(has=page.locator("option", has_text="Density")).first
    options = [o.strip() for o in select.locator("option").all_inner_texts()]
    number = next(o for o in options if o.startswith("Anomaly score"))
    _recolour(page, number)
    _recolour(page, "Density (objects per pixel)")
    state = page.evaluate(COLOUR_BAR_JS)
    (bar,) = state["bars"]
    assert bar["title"] == "objects per pixel"
    labels = dict(bar["overrides"])
    assert bar["ticks"] and all(t in labels for t in bar["ticks"]), bar
    counts = [int(labels[t].replace(",", "")) for t in bar["ticks"]]
    assert counts[0] == 1 and counts == sorted(counts), bar
    assert all(bar["low"] <= t <= bar["high"] for t in bar["ticks"]), bar
    (image,) = [i for i in state["images"] if i["drawn"]]
    assert "EqHist" not in image["kind"]  # mapped linearly in the browser
    lowest = int((image["min"] - image["low"]) / (image["high"] - image["low"]) * image["n"])
    assert lowest >= 1, f"the fewest objects drawn in the palette's bottom colour: {image}"
    _recolour(page, number)
    (bar,) = page.evaluate(COLOUR_BAR_JS)["bars"]
    assert bar["ticks"] and not bar["overrides"], bar  # the number's own round ticks
    assert page.console_errors == []


OVERFLOW_JS = """() => Array.from(Bokeh.index.query((v) => v._overflow_menu != null))
  .map((v) => v._overflow_menu.items.length)"""


def test_classes_get_a_legend_and_the_full_width_numbers_a_bar_under_the_map(
    demo_url: str, page: object
) -> None:
    """No strip is kept beside the map for a colour bar: under classes the drawing area fills
    the figure's width and a legend under the map names each class with its count; numbers and
    density draw their bar under the drawing area, never over the objects (it hid ~220x65 px at
    the map's top right corner), and the drawing area keeps its size whatever the colouring;
    the toolbar folds no tool into "⋮"."""
    page.goto(demo_url, wait_until="networkidle")
    page.locator("canvas").first.wait_for(timeout=60_000)
    settled_map(page)
    select = page.locator("select").filter(has=page.locator("option", has_text="Density")).first
    options = [o.strip() for o in select.locator("option").all_inner_texts()]
    current = select.evaluate("(s) => s.options[s.selectedIndex].text").strip()
    if current != "Predicted class":
        _recolour(page, "Predicted class")
    box = map_box(page)
    x, y, width, height = area = _drawing_area(page)
    assert width >= box["width"] - 30, f"room kept beside the map: {area} in {box}"
    # nor under it: the legend of classes follows the drawing area (56 px were left empty)
    assert box["y"] + box["height"] - (y + height) <= NO_BAR_ROOM + 1, (area, box)
    assert colour_bars(page) == []
    overflow = page.evaluate(OVERFLOW_JS)
    assert overflow and all(n == 0 for n in overflow), f"tools folded into the menu: {overflow}"
    legend = page.locator(".lsl-cat").first.inner_text()
    assert legend.startswith("Predicted class"), legend
    assert len(re.findall(r"\w+\s+[\d,]+", legend)) >= 3, legend  # class names with counts
    number = next(o for o in options if o.startswith("Anomaly score"))
    for option, title in ((number, number), ("Density (objects per pixel)", "objects per pixel")):
        _recolour(page, option)
        (bar,) = colour_bars(page)
        assert bar["title"] == title
        assert x - 1 <= bar["x"] and bar["x"] + bar["width"] <= x + width + 1, (bar, area)
        assert bar["y"] >= y + height - 1, f"the bar covers the map: {bar} over {area}"
        shown = map_box(page)  # the figure has grown by the bar's room
        assert bar["y"] + bar["height"] <= shown["y"] + shown["height"] + 1, (bar, shown)
        assert _drawing_area(page) == area
        assert page.locator(".lsl-cat").count() == 0  # no class legend under a number
    _recolour(page, "Predicted class")
    assert colour_bars(page) == [] and _drawing_area(page) == area and map_box(page) == box
    assert all(n == 0 for n in page.evaluate(OVERFLOW_JS))
    assert page.console_errors == []
