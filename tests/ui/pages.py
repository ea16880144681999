"""Helpers that drive the app like a user: find the map, points on it, tabs, thumbnails."""

from __future__ import annotations

import io
import time

import numpy as np
from PIL import Image

MAP_BG = (0x0F, 0x14, 0x20)


def map_box(page: object) -> dict[str, float]:
    """Bounding box (page pixels) of the largest visible canvas: the latent map."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        boxes = [c.bounding_box() for c in page.locator("canvas").all() if c.is_visible()]
        boxes = [b for b in boxes if b and b["width"] > 300 and b["height"] > 300]
        if boxes:
            return max(boxes, key=lambda b: b["width"] * b["height"])
        time.sleep(0.2)
    raise AssertionError("no map canvas on the page")


def map_pixels(page: object, box: dict[str, float]) -> np.ndarray:
    """(H, W, 3) screenshot of the map area."""
    png = page.screenshot(clip=box)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def settled_map(page: object, timeout: float = 30.0) -> tuple[dict[str, float], np.ndarray]:
    """(map box, drawn points) once two captures half a second apart agree (the first
    aggregation is redrawn at the plot's final size)."""
    deadline = time.monotonic() + timeout
    previous = None
    while time.monotonic() < deadline:
        box = map_box(page)
        pixels = map_pixels(page, box)
        same = previous is not None and previous.shape == pixels.shape
        if same and np.array_equal(previous, pixels):
            return box, drawn_points(page, box)
        previous = pixels
        time.sleep(0.5)
    raise AssertionError("the map kept changing")


# the drawing areas of the page's Bokeh figures (inside their axes, toolbar and colour bar), in
# page pixels, from Bokeh's own layout
FRAMES_JS = """() => {
  const frames = [];
  const views = window.Bokeh ? Bokeh.index.query((v) => v.frame != null && v.canvas != null) : [];
  for (const v of views) {
    const b = v.frame.bbox, r = v.canvas.el.getBoundingClientRect();
    if (b && b.width > 0 && b.height > 0 && r.width > 0)
      frames.push({x: r.left + b.x0, y: r.top + b.y0, width: b.width, height: b.height});
  }
  return frames;
}"""


def map_frame(page: object, box: dict[str, float]) -> dict[str, float] | None:
    """The drawing area of the figure whose canvas is ``box`` (where objects are drawn: not
    the axes, the toolbar or the colour bar), or None when Bokeh does not say."""
    inside = [
        f
        for f in page.evaluate(FRAMES_JS)
        if box["x"] - 1 <= f["x"] and f["x"] + f["width"] <= box["x"] + box["width"] + 1
        and box["y"] - 1 <= f["y"] and f["y"] + f["height"] <= box["y"] + box["height"] + 1
    ]  # fmt: skip
    return max(inside, key=lambda f: f["width"] * f["height"]) if inside else None


# the colour bars drawn on the page's shown Bokeh figures (inside the map's drawing area: a solid
# block that is no object), in page pixels
BARS_JS = """() => {
  const bars = [];
  const views = window.Bokeh ? Bokeh.index.query((v) => v.model.type == "ColorBar") : [];
  for (const v of views) {
    const b = v.bbox, r = v.parent.canvas.el.getBoundingClientRect();
    if (v.model.visible && r.width > 0 && b && b.width > 0 && b.height > 0)
      bars.push({x: r.left + b.x, y: r.top + b.y, width: b.width, height: b.height,
                 title: v.model.title});
  }
  return bars;
}"""


def colour_bars(page: object) -> list[dict[str, float]]:
    """Where the page's colour bars are drawn (page pixels) and their titles."""
    return page.evaluate(BARS_JS)


def drawn_points(page: object, box: dict[str, float], margin: int = 40) -> np.ndarray:
    """(n, 2) page coordinates of map pixels that differ from the background (drawn objects),
    inside the figure's drawing area (a colour bar or the toolbar is no object); ``margin``
    pixels in from the canvas's edges when Bokeh does not tell where that area is."""
    pixels = map_pixels(page, box).astype(int)
    diff = np.abs(pixels - np.array(MAP_BG)).sum(axis=2)
    h, w = diff.shape
    ys, xs = np.nonzero(diff > 60)
    scale_x, scale_y = box["width"] / w, box["height"] / h
    px, py = box["x"] + xs * scale_x, box["y"] + ys * scale_y
    frame = map_frame(page, box)
    if frame is not None:
        inset = 6.0
        keep = (px > frame["x"] + inset) & (px < frame["x"] + frame["width"] - inset)
        keep &= (py > frame["y"] + inset) & (py < frame["y"] + frame["height"] - inset)
        for bar in colour_bars(page):  # under the drawing area: kept out all the same
            over_x = (px >= bar["x"] - inset) & (px <= bar["x"] + bar["width"] + inset)
            keep &= ~(over_x & (py >= bar["y"] - inset) & (py <= bar["y"] + bar["height"] + inset))
    else:
        keep = (xs > margin) & (xs < w - 2 * margin) & (ys > margin) & (ys < h - margin)
    return np.column_stack([px[keep], py[keep]])


def dense_points(points: np.ndarray, radius: float = 25.0, k: int = 5) -> list[tuple[float, float]]:
    """Drawn pixels with the most drawn pixels around them (safe places to click), best first."""
    sample = points[:: max(1, len(points) // 1500)]
    d2 = ((sample[:, None, :] - sample[None, :, :]) ** 2).sum(axis=2)
    order = np.argsort(-(d2 < radius**2).sum(axis=1))
    return [(float(sample[i][0]), float(sample[i][1])) for i in order[: k * 20 : 20]]


def densest_point(points: np.ndarray, radius: float = 25.0) -> tuple[float, float]:
    """The drawn pixel with the most drawn pixels around it."""
    return dense_points(points, radius, 1)[0]


def hover_object(page: object, points: np.ndarray) -> tuple[float, float]:
    """Move the mouse over drawn points until the page names an object under the cursor."""
    for x, y in dense_points(points):
        page.mouse.move(x, y)
        try:
            page.get_by_text("under the cursor:").wait_for(timeout=5_000)
            return x, y
        except Exception:  # playwright's TimeoutError: try the next spot
            continue
    raise AssertionError("hovering the map never named an object")


def inside_plot(box: dict[str, float], x: float, y: float, reach: float) -> tuple[float, float]:
    """(x, y) moved, if need be, so that every point within ``reach`` of it lies on the plot
    (a drag that starts on the axes or the toolbar selects nothing)."""
    pad = 45.0  # axes and toolbar around the drawing area
    under = 60.0  # the colour bar's room under it
    x = min(max(x, box["x"] + pad + reach), box["x"] + box["width"] - pad - reach)
    y = min(max(y, box["y"] + pad + reach), box["y"] + box["height"] - under - reach)
    return x, y


def box_select(page: object, x: float, y: float, half: float, via_centre: bool = False) -> None:
    """Pick the map's box tool and drag a square of side ``2 * half`` centred on (x, y), in one
    move of 8 steps or (``via_centre``) two moves of 5 through the centre."""
    page.locator("[title='Box Select']").first.click()
    page.mouse.move(x - half, y - half)
    page.mouse.down()
    if via_centre:
        page.mouse.move(x, y, steps=5)
        page.mouse.move(x + half, y + half, steps=5)
    else:
        page.mouse.move(x + half, y + half, steps=8)
    page.mouse.up()


def open_tab(page: object, title: str) -> None:
    page.locator(".bk-tab", has_text=title).first.click()


def wait_images_loaded(page: object, selector: str, timeout: float = 20_000) -> None:
    """Wait until every <img> matching ``selector`` (shadow DOM included) that is on screen has
    loaded (lazy pictures below the fold load only when scrolled to)."""
    page.wait_for_function(
        """(sel) => {
            const all = [];
            const walk = (root) => {
                root.querySelectorAll(sel).forEach((e) => {
                    const r = e.getBoundingClientRect();
                    if (e.offsetParent && r.top < innerHeight && r.bottom > 0) all.push(e);
                });
                root.querySelectorAll('*').forEach((e) => e.shadowRoot && walk(e.shadowRoot));
            };
            walk(document);
            return all.length > 0 && all.every((img) => img.complete && img.naturalWidth > 0);
        }""",
        arg=selector,
        timeout=timeout,
    )


def tile_ids(page: object) -> list[str]:
    """Object ids of the gallery tiles in the tab on screen, in order."""
    return [
        t.get_attribute("data-object-id") for t in page.locator(".lsg-tile").all() if t.is_visible()
    ]


def wait_tile_ids(
    page: object, count: int, differ_from: list[str] | None = None, timeout: float = 30.0
) -> list[str]:
    """Tile ids once ``count`` tiles are on screen (and differ from ``differ_from``, if given):
    the gallery's header can render a moment before its tiles."""
    import time

    deadline = time.monotonic() + timeout
    ids = tile_ids(page)
    while time.monotonic() < deadline:
        if len(ids) == count and (differ_from is None or ids != differ_from):
            return ids
        page.wait_for_timeout(200)
        ids = tile_ids(page)
    return ids


def visible(page: object, selector: str) -> object:
    """The first element matching ``selector`` that is on screen (hidden tabs stay in the DOM)."""
    return page.locator(f"{selector} >> visible=true").first
