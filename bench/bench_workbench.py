"""First load of the app to a drawn map, at the window sizes issue 13 asks for (1400x900,
1280x720, 800x900), in Debian's chromium against a prepared data root.

    LATENTSKY_HOME=var .venv/bin/python bench/bench_workbench.py [--runs 3]

Each run opens a fresh page and times ``goto`` to the moment the map canvas shows drawn points
(two captures 0.25 s apart agree); the server is started once (its first session pays for
loading the survey: reported apart). Figures print and merge into
``bench/results/workbench.json``; wall-clock on whatever else the machine is doing.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    port = _free_port()
    db = Path(tempfile.mkdtemp(prefix="bench-workbench-")) / "latentsky.db"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}", "LATENTSKY_RETRAIN_EVERY": "1000000"}
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
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)
    figures["load_after"] = os.getloadavg()[0]
    merge_results(RESULTS, "first_load", figures)


if __name__ == "__main__":
    main()
