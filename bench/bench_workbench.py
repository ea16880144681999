"""First load of the app to a drawn map, at the window sizes issue 13 asks for (1400x900,
1280x720, 800x900), a change of the map's colouring and label -> next galaxy, in Debian's
chromium against a prepared data root.

    LATENTSKY_HOME=var .venv/bin/python bench/bench_workbench.py [--runs 3]
    .venv/bin/python bench/bench_workbench.py --home /tmp/copy-of-var --colours 10 --labels 30

Each run opens a fresh page and times ``goto`` to the moment the map canvas shows drawn points
(two captures 0.25 s apart agree); the server is started once (its first session pays for
loading the survey: reported apart). A colour change is timed from choosing another *Colour by*
to the map showing a new picture that stopped changing (captures 0.1 s apart, so figures are
+-0.1 s); label -> next galaxy from the key press to the app's ``latentsky:shown`` event for the
next object (as the browser tests measure it). ``--home`` serves that data root (give a copy:
the server writes caches there); labels go to a throw-away database. Figures print and merge
into ``bench/results/workbench.json`` under ``--key`` (default ``first_load``); wall-clock on whatever else the machine is doing (load recorded).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results_file import merge_results  # noqa: E402
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS, _free_port, _wait_for_port  # noqa: E402
from tests.ui.pages import MAP_BG  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "workbench.json"
SIZES = ((1400, 900), (1280, 720), (800, 900))


def drawn_map_seconds(page: object, url: str, timeout: float = 120.0) -> float:
    """Seconds from navigation to a map canvas showing drawn points that stopped changing."""
    import io

    from PIL import Image

    t0 = time.perf_counter()
    page.goto(url)
    previous = None
    while time.perf_counter() - t0 < timeout:
        boxes = [c.bounding_box() for c in page.locator("canvas").all() if c.is_visible()]
        boxes = [b for b in boxes if b and b["width"] > 300 and b["height"] > 300]
        if boxes:
            box = max(boxes, key=lambda b: b["width"] * b["height"])
            px = np.asarray(Image.open(io.BytesIO(page.screenshot(clip=box))).convert("RGB"))
            drawn = (np.abs(px.astype(int) - np.array(MAP_BG)).sum(axis=2) > 60).sum() > 200
            if drawn and previous is not None and np.array_equal(previous, px):
                return time.perf_counter() - t0 - 0.25  # the confirming capture's wait
            previous = px if drawn else None
        time.sleep(0.25)
    raise TimeoutError("the map was not drawn")


def _map_pixels(page: object) -> np.ndarray | None:
    import io

    from PIL import Image

    boxes = [c.bounding_box() for c in page.locator("canvas").all() if c.is_visible()]
    boxes = [b for b in boxes if b and b["width"] > 300 and b["height"] > 300]
    if not boxes:
        return None
    box = max(boxes, key=lambda b: b["width"] * b["height"])
    return np.asarray(Image.open(io.BytesIO(page.screenshot(clip=box))).convert("RGB"))


def _map_canvas(page: object) -> object | None:
    """The map's canvas element (the biggest visible one), to tell a kept figure from a new."""
    canvases = [c for c in page.locator("canvas").all() if c.is_visible()]
    sized = [(c, c.bounding_box()) for c in canvases]
    sized = [(c, b) for c, b in sized if b and b["width"] > 300 and b["height"] > 300]
    if not sized:
        return None
    return max(sized, key=lambda cb: cb[1]["width"] * cb[1]["height"])[0].element_handle()


def colour_change_seconds(page: object, option: str, timeout: float = 60.0) -> tuple[float, bool]:
    """(seconds from choosing ``option`` in *Colour by* to a new map picture that settled,
    whether the browser kept the map's canvas: no new figure built)."""
    select = page.locator("select").filter(has=page.locator("option", has_text="Density")).first
    before = _map_pixels(page)
    canvas = _map_canvas(page)
    t0 = time.perf_counter()
    select.select_option(label=option)
    changed_at, previous = None, None
    while time.perf_counter() - t0 < timeout:
        px = _map_pixels(page)
        if px is not None and (before is None or px.shape != before.shape or
                               not np.array_equal(px, before)):  # fmt: skip
            if changed_at is None:
                changed_at = time.perf_counter() - t0
            elif previous is not None and np.array_equal(previous, px):
                kept = canvas is not None and bool(canvas.evaluate("(c) => c.isConnected"))
                return changed_at, kept
            previous = px
        time.sleep(0.1)
    raise TimeoutError(f"the map did not change to {option!r}")


def colour_changes(page: object, url: str, count: int) -> list[tuple[str, float, bool]]:
    """(choice, seconds, figure kept) of ``count`` colour changes, cycling through the
    *Colour by* choices."""
    drawn_map_seconds(page, url)
    select = page.locator("select").filter(has=page.locator("option", has_text="Density")).first
    options = [o.strip() for o in select.locator("option").all_inner_texts()]
    current = select.evaluate("(s) => s.options[s.selectedIndex].text").strip()
    others = [o for o in options if o != current]
    times = []
    for k in range(count):
        option = others[k % len(others)]
        times.append((option, *colour_change_seconds(page, option)))
        print(f"  colour by {option!r}: {times[-1][1]:.2f} s, figure kept: {times[-1][2]}")
    return times


def label_times(page: object, url: str, count: int) -> list[float]:
    """Milliseconds from a class key to the next galaxy shown, ``count`` labels in a row."""
    from tests.ui.pages import open_tab, visible
    from tests.ui.test_app import _timing_hooks, label_with_keys

    page.goto(url, wait_until="networkidle")
    page.get_by_placeholder("e.g. Vera Rubin").fill("bench-workbench")
    page.get_by_placeholder("e.g. Vera Rubin").press("Enter")
    open_tab(page, "Label")
    visible(page, ".lss").wait_for(timeout=120_000)
    time.sleep(2.0)
    _timing_hooks(page)
    keys = [str(1 + k % 2) for k in range(count)]
    return [dt for _, _, dt in label_with_keys(page, keys, pause_s=0.3)]


def _summary(values: list[float], digits: int = 3) -> dict[str, float]:
    a = np.asarray(values, dtype=float)
    return {
        "n": len(a), "p50": round(float(np.percentile(a, 50)), digits),
        "p95": round(float(np.percentile(a, 95)), digits), "max": round(float(a.max()), digits),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--home", type=Path, default=None, help="data root (a copy)")
    parser.add_argument("--colours", type=int, default=0, help="colour changes to time")
    parser.add_argument("--labels", type=int, default=0, help="labels to time")
    parser.add_argument("--key", default="first_load", help="key of the figures in the JSON")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    port = _free_port()
    db = Path(tempfile.mkdtemp(prefix="bench-workbench-")) / "latentsky.db"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}", "LATENTSKY_RETRAIN_EVERY": "1000000"}
    if args.home:
        env["LATENTSKY_HOME"] = str(args.home.resolve())
    cmd = [
        str(Path(sys.executable).with_name("panel")), "serve", "app/main.py",
        "--address", "127.0.0.1", "--port", str(port),
        "--allow-websocket-origin", f"127.0.0.1:{port}", "--plugins", "app.routes",
        "--num-threads", "4",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    figures: dict[str, object] = {"runs": args.runs, "load": os.getloadavg()[0]}
    if args.home:
        figures["home"] = str(args.home)
    try:
        _wait_for_port(port, proc)
        url = f"http://127.0.0.1:{port}/main"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            figures["first_session_s"] = round(drawn_map_seconds(page, url), 2)
            page.close()
            print(f"first session (survey loaded by the server): {figures['first_session_s']} s")
            for width, height in SIZES:
                times = []
                for _ in range(args.runs):
                    page = browser.new_page(viewport={"width": width, "height": height})
                    times.append(drawn_map_seconds(page, url))
                    page.close()
                key = f"{width}x{height}"
                figures[key] = {
                    "median_s": round(float(np.median(times)), 2), "max_s": round(max(times), 2)
                }  # fmt: skip
                print(f"{key}: first load to a drawn map median {figures[key]['median_s']} s, "
                      f"max {figures[key]['max_s']} s")  # fmt: skip
            if args.colours:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                changes = colour_changes(page, url, args.colours)
                figures["colour_change_s"] = _summary([t for _, t, _ in changes], 2)
                figures["colour_change_figure_kept"] = sum(kept for *_, kept in changes)
                page.close()
                print(f"colour change (s): {figures['colour_change_s']}")
            if args.labels:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                figures["label_next_ms"] = _summary(label_times(page, url, args.labels), 0)
                page.close()
                print(f"label -> next galaxy (ms): {figures['label_next_ms']}")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)
    figures["load_after"] = os.getloadavg()[0]
    merge_results(RESULTS, args.key, figures)


if __name__ == "__main__":
    main()
