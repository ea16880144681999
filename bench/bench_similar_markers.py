"""The Similar tab's search in Debian's chromium: when the results' markers reach the map
against when their thumbnails show (the markers came ~3 s after the thumbnails under load,
before the UI fix that sends them first, in one map update).

    .venv/bin/python bench/bench_similar_markers.py --home /tmp/copy-of-var [--runs 5]

Each run types another ``#row`` into *Object id* and clicks *Search*; from the click it times
(polled every 20 ms in the page) the gallery holding the new results' tiles, every tile's
picture loaded, and the map's result markers (a glyph holding the new results' places). The
server is started once on ``--home`` (give a copy: it writes caches there) with a throw-away
label database. Figures print and merge into ``bench/results/similar_markers.json`` under
``--key``; wall-clock on whatever else the machine is doing (load recorded).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results_file import merge_results  # noqa: E402
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS, panel_server  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "similar_markers.json"
K = 24  # results per search (the tab's default)

# [tiles with ids, pictures loaded, signature of the marker glyph holding K points or null]
STATE_JS = """(k) => {
  const tiles = [], imgs = [];
  const walk = (root) => {
    root.querySelectorAll('.lsg-tile').forEach((t) => tiles.push(t.dataset.objectId));
    root.querySelectorAll('.lsg-tile img').forEach((i) => imgs.push(i.complete && i.naturalWidth > 0));
    root.querySelectorAll('*').forEach((e) => e.shadowRoot && walk(e.shadowRoot));
  };
  walk(document);
  let marks = null;
  for (const v of Bokeh.index.query((v) => v.model.type == "GlyphRenderer")) {
    const x = v.model.data_source?.data?.x;
    if (x && x.length == k) marks = Array.from(x).reduce((a, b) => a + b, 0).toFixed(6);
  }
  return [tiles.join("|"), imgs.length > 0 && imgs.every(Boolean), marks];
}"""


def one_search(page: object, row: int, timeout: float = 60.0) -> dict[str, float | None]:
    """Seconds from the click on *Search* (from row ``row``) to new tiles, their pictures and
    the new markers."""
    field = page.get_by_placeholder("#42 for row 42", exact=False)
    field.fill(f"#{row}")
    page.wait_for_timeout(800)
    tiles0, _, marks0 = page.evaluate(STATE_JS, K)
    t0 = time.perf_counter()
    page.get_by_role("button", name="Search", exact=True).click()
    got: dict[str, float | None] = {"tiles_s": None, "pictures_s": None, "markers_s": None}
    while time.perf_counter() - t0 < timeout and None in got.values():
        tiles, loaded, marks = page.evaluate(STATE_JS, K)
        now = round(time.perf_counter() - t0, 3)
        fresh = tiles and tiles != tiles0 and len(tiles.split("|")) == K
        if got["tiles_s"] is None and fresh:
            got["tiles_s"] = now
        if got["pictures_s"] is None and fresh and loaded:
            got["pictures_s"] = now
        if got["markers_s"] is None and marks is not None and marks != marks0:
            got["markers_s"] = now
        page.wait_for_timeout(20)
    return got


def _summary(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=float)
    return {"p50": round(float(np.median(a)), 3), "max": round(float(a.max()), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--home", type=Path, required=True, help="data root (a copy)")
    parser.add_argument("--key", default="similar", help="key of the figures in the JSON")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    db = Path(tempfile.mkdtemp(prefix="bench-similar-")) / "latentsky.db"
    env = {"DATABASE_URL": f"sqlite:///{db}", "LATENTSKY_HOME": str(args.home.resolve())}
    figures: dict[str, object] = {"runs": args.runs, "home": str(args.home),
                                  "load": os.getloadavg()[0]}  # fmt: skip
    runs = []
    with panel_server(env, threads=4) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/main", wait_until="networkidle", timeout=120_000)
        page.locator("canvas").first.wait_for(timeout=120_000)
        page.locator(".bk-tab", has_text="Similar").first.click()
        page.get_by_role("button", name="Object id").click()
        for r in range(args.runs):
            got = one_search(page, 7 + 13 * r)
            runs.append(got)
            print(f"search {r + 1}: {got}")
        browser.close()
    done = [g for g in runs if None not in g.values()]
    for name in ("tiles_s", "pictures_s", "markers_s"):
        figures[name] = _summary([g[name] for g in done]) if done else None
    for first in ("tiles", "pictures"):
        lag = [round(g["markers_s"] - g[f"{first}_s"], 3) for g in done]
        figures[f"markers_after_{first}_s"] = _summary(lag) if lag else None
    figures["incomplete_runs"] = len(runs) - len(done)
    figures["load_after"] = os.getloadavg()[0]
    print({k: v for k, v in figures.items() if k != "home"})
    merge_results(RESULTS, args.key, figures)


if __name__ == "__main__":
    main()
