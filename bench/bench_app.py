"""The browser app's latency targets (P1, P2, P6).

    .venv/bin/python bench/bench_app.py                  # all parts
    .venv/bin/python bench/bench_app.py --part p1        # map re-render after pan/zoom, 1M / 10M
    .venv/bin/python bench/bench_app.py --part p2        # box/lasso over 10M; first 48 thumbnails
    .venv/bin/python bench/bench_app.py --part p6        # label -> next object, in chromium

P1 times what the server does for a viewport change of the map: ``app.plots.render_view``,
the aggregation + shading + dynamic spreading that ``app.mapview.ServerMap`` runs on the
thread pool for each new x/y range (density and mean: datashader; categories:
``app.shading``), on synthetic clustered map coordinates. P2 times
``app.selection`` on 10M synthetic points and ``Survey.thumbnail_png`` for 48 random objects
of the demo survey with a cold cache (sequential, and on a 4-thread pool as the /thumb route
does). P6 serves the app against the demo survey (labels go to a throw-away database), drives
Debian's chromium, and times each key press to the next object's picture decoded on screen.
Figures print and merge into ``bench/results/app.json``. Timings are wall-clock on whatever
else the machine is doing.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.measure import latencies_ms  # noqa: E402
from bench.results_file import merge_results  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "app.json"
WIDTH, HEIGHT = 800, 560  # the map's size on a 1440-px wide screen
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def say(*parts: object) -> None:
    print(*parts, flush=True)


def timed(fn: Callable[[int], object], n: int, warmup: int = 2) -> dict[str, float]:
    """Median, p95 and max wall time in ms of ``fn(i)`` over ``n`` calls after warm-up."""
    ms = latencies_ms(fn, n, warmup)
    return {
        "median_ms": round(float(np.median(ms)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "max_ms": round(float(ms.max()), 1),
        "n": n,
    }


def map_coords(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, cluster) float32 coordinates of a UMAP-like map: 40 blobs of varied size/width."""
    rng = np.random.default_rng(seed)
    k = 40
    centres = rng.uniform(-10, 10, (k, 2))
    widths = rng.uniform(0.2, 1.5, k)
    weights = rng.dirichlet(np.full(k, 0.7))
    cluster = rng.choice(k, n, p=weights).astype(np.int16)
    x = np.empty(n, np.float32)
    y = np.empty(n, np.float32)
    step = 2_000_000
    for lo in range(0, n, step):
        c = cluster[lo : lo + step]
        noise = rng.standard_normal((len(c), 2)).astype(np.float32)
        x[lo : lo + step] = centres[c, 0] + widths[c] * noise[:, 0]
        y[lo : lo + step] = centres[c, 1] + widths[c] * noise[:, 1]
    return x, y, cluster


# -- P1 -----------------------------------------------------------------------------------------
def part_p1(sizes: tuple[int, ...] = (1_000_000, 10_000_000)) -> dict[str, Any]:
    import holoviews as hv
    import pandas as pd

    from app import plots
    from app.colouring import categorical

    hv.extension("bokeh")
    out: dict[str, Any] = {"width": WIDTH, "height": HEIGHT}
    for n in sizes:
        x, y, cluster = map_coords(n)
        classes = np.array([f"class{i % 8}" for i in range(40)], dtype=object)[cluster]
        t0 = time.perf_counter()
        cats, key = categorical(pd.Series(classes))
        recolour_s = time.perf_counter() - t0
        value = (x * 0.1 + y * 0.05).astype(np.float64)
        full = ((float(x.min()), float(x.max())), (float(y.min()), float(y.max())))
        cx, cy = float(np.median(x)), float(np.median(y))
        views = {
            "full view": full,
            "zoom x4": ((cx - 2.5, cx + 2.5), (cy - 2.5, cy + 2.5)),
            "zoom x40": ((cx - 0.25, cx + 0.25), (cy - 0.25, cy + 0.25)),
        }
        res: dict[str, Any] = {"recolour_categorical_s": round(recolour_s, 2)}
        for kind, values in (("count", None), ("cat", cats), ("num", value)):
            points = plots.map_points(x, y, values)
            style = plots.MapStyle(kind, colour_key=key, clim=(0.0, 1.0))
            for name, (xr, yr) in views.items():
                pans = [(xr[0] + d, xr[1] + d) for d in np.linspace(0, 0.05 * (xr[1] - xr[0]), 8)]

                def render(i: int, pans: list = pans, yr: tuple = yr, points: Any = points,
                           style: Any = style) -> None:  # fmt: skip
                    element = plots.render_view(points, style, pans[i % len(pans)], yr,
                                                WIDTH, HEIGHT)  # fmt: skip
                    assert element.range("x")[0] == pans[i % len(pans)][0]

                stats = timed(render, 7)
                res[f"{kind}, {name}"] = stats
                say(f"P1 {n:>10,} {kind:5} {name:9}: median {stats['median_ms']:7.1f} ms, "
                    f"p95 {stats['p95_ms']:7.1f} ms")  # fmt: skip
        out[f"{n}"] = res
        del x, y, cluster, classes, cats, value
    return out


# -- P2 -----------------------------------------------------------------------------------------
def part_p2(n: int = 10_000_000, survey: str = "demo") -> dict[str, Any]:
    from app.selection import box_indices, lasso_indices

    x, y, _ = map_coords(n)
    cx, cy = float(np.median(x)), float(np.median(y))
    boxes = {"box ~1%": 1.2, "box ~10%": 4.0, "box ~50%": 11.0}
    out: dict[str, Any] = {"n": n}
    for name, half in boxes.items():
        bounds = (cx - half, cy - half, cx + half, cy + half)
        found = len(box_indices(x, y, bounds))
        stats = timed(lambda i, b=bounds, x=x, y=y: box_indices(x, y, b), 7)
        out[name] = {**stats, "selected": found}
        say(f"P2 {name:12}: {found:>10,} selected, median {stats['median_ms']:.1f} ms, "
            f"p95 {stats['p95_ms']:.1f} ms")  # fmt: skip
    for name, radius in {"lasso ~10%": 4.0, "lasso ~50%": 10.0}.items():
        angle = np.linspace(0, 2 * np.pi, 300, endpoint=False)
        r = radius * (1 + 0.25 * np.sin(7 * angle))  # a wobbly 300-vertex lasso
        poly = np.column_stack([cx + r * np.cos(angle), cy + r * np.sin(angle)])
        found = len(lasso_indices(x, y, poly))
        stats = timed(lambda i, p=poly, x=x, y=y: lasso_indices(x, y, p), 7)
        out[name] = {**stats, "selected": found, "vertices": len(poly)}
        say(f"P2 {name:12}: {found:>10,} selected, median {stats['median_ms']:.1f} ms, "
            f"p95 {stats['p95_ms']:.1f} ms")  # fmt: skip
    del x, y
    out["thumbnails"] = thumbnails(survey)
    return out


def thumbnails(name: str, k: int = 48, size: int = 88) -> dict[str, Any]:
    """First 48 thumbnails of a fresh selection, cold cache: sequential and on 4 threads."""
    from backend.survey import Survey, SurveyError

    try:
        Survey.open(name)
    except SurveyError as exc:
        say(f"P2 thumbnails skipped: {exc} (run `make prepare`)")
        return {"skipped": str(exc)}
    rng = np.random.default_rng(1)
    out: dict[str, Any] = {"survey": name, "size_px": size}
    for mode in ("sequential", "4 threads"):
        runs = []
        for _ in range(3):
            survey = Survey.open(name)  # a new instance: empty PNG cache
            picks = rng.choice(len(survey), k, replace=False)
            t0 = time.perf_counter()
            if mode == "sequential":
                pngs = [survey.thumbnail_png(int(i), size) for i in picks]
            else:
                with ThreadPoolExecutor(4) as pool:
                    pngs = list(pool.map(lambda i, s=survey: s.thumbnail_png(int(i), size), picks))
            runs.append(time.perf_counter() - t0)
            assert all(p[:4] == b"\x89PNG" for p in pngs)
        out[mode] = {"median_ms": round(float(np.median(runs)) * 1e3, 1),
                     "max_ms": round(float(np.max(runs)) * 1e3, 1)}  # fmt: skip
        say(f"P2 48 thumbnails ({mode}, cold): median {out[mode]['median_ms']:.0f} ms")
    return out


# -- P6 -----------------------------------------------------------------------------------------
PAUSE_S = 0.5  # a fast labeller looks at each galaxy for at least half a second


def part_p6(survey: str = "demo", presses: int = 40) -> dict[str, Any]:
    """Label -> next object on screen, measured in chromium against a served app."""
    from backend.survey import SurveyError, list_surveys

    if survey not in {m.name for m in list_surveys()}:
        say(f"P6 skipped: no survey {survey!r} (run `make prepare`)")
        return {"skipped": f"no survey {survey!r}"}
    del SurveyError
    with tempfile.TemporaryDirectory(prefix="latentsky-bench-") as tmp:
        # labels go to a throw-away database; no retraining job may reach the data root's queue
        env = dict(
            os.environ, DATABASE_URL=f"sqlite:///{tmp}/labels.db",
            LATENTSKY_RETRAIN_EVERY="1000000000",
        )  # fmt: skip
        port = _free_port()
        cmd = [
            str(Path(sys.executable).with_name("panel")), "serve", "app/main.py",
            "--address", "127.0.0.1", "--port", str(port), "--allow-websocket-origin",
            f"127.0.0.1:{port}", "--plugins", "app.routes", "--num-threads", "4",
        ]  # fmt: skip
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            _wait(port)
            ms, rushed = _label_in_browser(f"http://127.0.0.1:{port}/main", presses)
        finally:
            proc.terminate()
            proc.wait(10)
    out = {
        "presses": len(ms),
        "median_ms": round(float(np.median(ms)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "max_ms": round(float(np.max(ms)), 1),
        "what": "keydown -> next object's picture decoded (latentsky:shown event), chromium",
        "pause_between_labels_s": PAUSE_S,
        "back_to_back": {
            "presses": len(rushed),
            "median_ms": round(float(np.median(rushed)), 1),
            "p95_ms": round(float(np.percentile(rushed, 95)), 1),
        },
    }
    say(f"P6 label -> next object on screen: median {out['median_ms']:.0f} ms, "
        f"p95 {out['p95_ms']:.0f} ms over {len(ms)} labels ({PAUSE_S} s look at each); "
        f"back to back: median {out['back_to_back']['median_ms']:.0f} ms, "
        f"p95 {out['back_to_back']['p95_ms']:.0f} ms")  # fmt: skip
    return out


def _label_in_browser(url: str, presses: int) -> tuple[np.ndarray, np.ndarray]:
    """(ms per label with a pause to look, ms per label pressed back to back)."""
    from playwright.sync_api import sync_playwright

    from tests.ui.test_app import _timing_hooks, label_with_keys

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.goto(url, wait_until="networkidle")
        page.get_by_placeholder("e.g. Vera Rubin").fill("bench")
        page.get_by_placeholder("e.g. Vera Rubin").press("Enter")
        page.locator(".bk-tab", has_text="Label").first.click()
        page.locator(".lss[data-shown]").first.wait_for(timeout=60_000)
        _timing_hooks(page)
        label_with_keys(page, ["1", "2", "3"])  # warm-up
        keys = [str(1 + i % 7) for i in range(presses)]
        done = label_with_keys(page, keys, PAUSE_S)
        rushed = label_with_keys(page, keys[:20])
        browser.close()
    return np.array([d[2] for d in done]), np.array([d[2] for d in rushed])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(port: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise TimeoutError(f"panel serve did not listen on {port}")


# -- main ---------------------------------------------------------------------------------------
def merge(part: str, figures: dict[str, Any]) -> None:
    merge_results(RESULTS, part, figures)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("p1", "p2", "p6", "all"), default="all")
    parser.add_argument("--survey", default="demo", help="survey for thumbnails and P6")
    parser.add_argument("--sizes", default="1000000,10000000", help="P1 point counts")
    args = parser.parse_args()
    parts = ("p1", "p2", "p6") if args.part == "all" else (args.part,)
    for part in parts:
        if part == "p1":
            sizes = tuple(int(s) for s in args.sizes.split(","))
            merge("P1_map_rerender", part_p1(sizes))
        elif part == "p2":
            merge("P2_selection", part_p2(survey=args.survey))
        else:
            merge("P6_label_next", part_p6(args.survey))
    say(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
