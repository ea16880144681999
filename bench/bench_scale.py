"""Serving a big survey (issue 12): the tiled map, pruned selections, search and lists at N points.

    nice -n 19 .venv/bin/python bench/bench_scale.py --points 1000000 [--json F] [--keep DIR]

Builds, in a temporary data root, a synthetic survey of N objects (1-band 8x8 cutouts; catalog:
clustered 2-D map positions, a class column ``true_class`` and a continuous one ``mag``), an
encoder with N x 128 clustered embeddings (``backend.latent.synthetic``, written chunk by chunk
into the memory-mapped product, never all in memory), the 2-D map (the clustered positions),
the similarity index through the pipeline (``ensure(survey, ["index"])``) and the map tiles
(``make_tiles``, with ``mag`` pre-aggregated). Then measures what a user waits for, through the
app's own drawing code (:class:`app.mapview.TiledMap`, 800 x 560 views):

- first paint (tiles opened cold, home view coloured by class), colour changes;
- pan/zoom re-render p50/p95 at zoom 1, 4, 16, 64, 256 (views panned by a tenth of their width
  around dense points; the tile level or "points" when drawn from partitions);
- box selection count, lasso count, first 48 ids of a box selection;
- build seconds of each product and peak RSS; search and lists by ``bench/scale_search.py``.

Prints the figures and merges them into ``bench/results/scale.json`` under ``points_<N>``.
Timings are wall-clock on whatever else the machine is doing (the load average is recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.measure import peak_rss_mb
from bench.results_file import merge_results

RESULTS = Path(__file__).resolve().parent / "results" / "scale.json"
SURVEY = "scale"
CLASSES = ["elliptical", "spiral", "edge_on", "merger", "irregular"]
WIDTH, HEIGHT = 800, 560
ZOOMS = (1, 4, 16, 64, 256)
BATCH = 262_144


def say(*parts: object) -> None:
    print(*parts, flush=True)


def stats(times: list[float]) -> dict[str, float]:
    ms = np.asarray(times) * 1e3
    return {"p50_ms": round(float(np.median(ms)), 1), "p95_ms": round(float(np.percentile(ms, 95)), 1),
            "max_ms": round(float(ms.max()), 1), "n": len(ms)}  # fmt: skip


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


# -- the synthetic survey ------------------------------------------------------------------------
def map_positions(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clustered 2-D positions (60 Gaussian blobs of different sizes and weights), their class
    (by blob) and a continuous value."""
    rng = np.random.default_rng(seed)
    k = 60
    centres = rng.uniform(-10, 10, (k, 2))
    widths = rng.uniform(0.1, 1.2, k)
    weights = rng.dirichlet(np.full(k, 1.5))
    xy = np.empty((n, 2), dtype=np.float32)
    cls = np.empty(n, dtype=np.int16)
    mag = np.empty(n, dtype=np.float32)
    chunk = 1 << 24  # bounded temporaries; one chunk (n <= 16.7M) draws as one block would
    for lo in range(0, n, chunk):
        m = min(chunk, n - lo)
        blob = rng.choice(k, size=m, p=weights)
        block = centres[blob] + rng.normal(0, 1, (m, 2)) * widths[blob, None]
        xy[lo : lo + m] = block
        cls[lo : lo + m] = blob % len(CLASSES)
        mag[lo : lo + m] = 18 + 0.3 * block[:, 0] + rng.normal(0, 1, m)
    return xy, cls, mag


def galaxy_cutouts(lo: int, hi: int, seed: int = 5) -> np.ndarray:
    """(hi - lo, 1, 8, 8) float32 pictures of rows lo..hi: a Gaussian blob (random brightness,
    width and offset) on unit sky noise, drawn from a generator seeded by (seed, lo), so a batch
    is the same whatever else is drawn; they compress as real cutouts do, not as zeros: noise
    quantised to 1/16 of its sigma, as survey images are stored (fpack's default is 1/4)."""
    rng = np.random.default_rng([seed, lo])
    m = hi - lo
    grid = np.arange(8, dtype=np.float32) - 3.5
    cx, cy = (rng.normal(0, 0.7, (2, m, 1, 1))).astype(np.float32)
    width = rng.uniform(0.8, 2.5, (m, 1, 1)).astype(np.float32)
    peak = rng.lognormal(2.0, 0.8, (m, 1, 1)).astype(np.float32)
    r2 = (grid[None, None, :] - cx) ** 2 + (grid[None, :, None] - cy) ** 2
    blob = peak * np.exp(-r2 / (2 * width**2)) + rng.standard_normal((m, 8, 8), np.float32)
    return (np.round(blob * 16) / 16)[:, None].astype(np.float32)


def make_survey(
    n: int, xy: np.ndarray, cls: np.ndarray, mag: np.ndarray, pictures: bool = True
) -> None:
    """The survey's catalog and 1-band 8x8 cutouts (``pictures``: :func:`galaxy_cutouts`;
    else all zeros, which zarr stores as no chunk at all)."""
    from backend.survey import SurveyWriter

    with SurveyWriter(SURVEY, ["g"], (8, 8), "synthetic-scale") as writer:
        for lo in range(0, n, BATCH):
            hi = min(lo + BATCH, n)
            catalog = pd.DataFrame({
                "object_id": [f"s{i:09d}" for i in range(lo, hi)],
                "ra": np.linspace(0, 1, hi - lo), "dec": np.zeros(hi - lo),
                "true_class": np.asarray(CLASSES)[cls[lo:hi]], "mag": mag[lo:hi],
            })  # fmt: skip
            images = (
                galaxy_cutouts(lo, hi) if pictures else np.zeros((hi - lo, 1, 8, 8), np.float32)
            )
            writer.append(images, catalog)


def survey_disk(folder: Path) -> dict[str, float]:
    """MB on disk of a survey's pictures and catalog, and its number of files."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    images = sum(p.stat().st_size for p in files if "images.zarr" in p.parts)
    return {"images_mb": round(images / 2**20, 1),
            "catalog_mb": round((folder / "catalog.parquet").stat().st_size / 2**20, 1),
            "files": len(files)}  # fmt: skip


def make_encoder(n: int, dim: int = 128, dtype: str = "auto") -> str:
    """An encoder version holding N clustered embeddings (written chunk by chunk), stored as
    ``dtype`` (``auto``: float16 above ``LATENTSKY_FLOAT16_EMBEDDINGS_ABOVE`` objects, as an
    import stores them; float16 rows come from the per-block seeded generator)."""
    from backend.latent.synthetic import clustered_chunks, clustered_embeddings
    from backend.modelling.imported import stored_dtype
    from backend.pipeline.storage import write_embeddings
    from backend.registry import ModelRegistry

    dtype = stored_dtype(dtype, n)

    def fill(out: np.ndarray) -> None:
        if dtype == "float32":
            clustered_embeddings(n, dim, 50, seed=0, out=out)
            return
        for lo, block, _ in clustered_chunks(n, dim, 50, seed=0):
            out[lo : lo + len(block)] = block

    registry = ModelRegistry()
    config = {"kind": "imported", "bands": ["g"], "embedding_dim": dim, "name": "synthetic",
              "survey": SURVEY, "source": {"file": "bench_scale synthetic"}}  # fmt: skip
    version = registry.save("encoder", {}, config, survey=SURVEY, training={"imported": {}})
    write_embeddings(SURVEY, "encoder", version.version, (n, dim), fill, dtype=dtype)
    registry.set_active(SURVEY, "encoder", version.version)
    return version.version


def write_map(version: str, xy: np.ndarray, landmarks: int = 2_000) -> None:
    """The clustered positions as the encoder's map product (``map.npy``; landmarks: a random
    sample of rows with their embeddings and positions, so new objects can be placed), with
    the lineage records of the embeddings (adopted) and the map: the planner sees them current."""
    from backend.latent.projection import LatentMap, MapParams
    from backend.latent.source import latent_dir
    from backend.pipeline.build import record
    from backend.pipeline.kinds import Target
    from backend.pipeline.storage import open_embeddings

    n = len(xy)
    rows = np.sort(np.random.default_rng(3).choice(n, min(landmarks, n), replace=False))
    vectors = np.asarray(open_embeddings(SURVEY, "encoder", version)[rows])
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    latent = LatentMap(xy, rows, unit, xy[rows], MapParams(n_landmarks=len(rows)), {"n": n})
    latent.save(latent_dir(SURVEY, version))
    record(Target("embeddings", SURVEY, "encoder", version), None, None, adopted=True)
    record(Target("map", SURVEY, "encoder", version), asdict(latent.params), None)


def scale_ids(n: int) -> pd.api.extensions.ExtensionArray:
    """The survey's N object ids as Arrow strings, made a block at a time (10^8 ids: ~1.8 GB,
    where Python strings take ~7 GB)."""
    import pyarrow as pa

    blocks = [
        pa.array(np.char.add("s", np.char.zfill(np.arange(lo, min(lo + BATCH, n)).astype(str), 9)))
        for lo in range(0, n, BATCH)
    ]
    return pd.array(pa.chunked_array(blocks, pa.string()), dtype=pd.ArrowDtype(pa.string()))


def add_scores(home: Path, n: int) -> dict[str, Any]:
    """``--add-scores HOME``: :func:`write_scores` for the survey of N objects built there."""
    from backend.registry import ModelRegistry

    os.environ["LATENTSKY_HOME"] = str(home)
    _, _, mag = map_positions(n)
    version = ModelRegistry().active(SURVEY, "encoder").version
    _, s = timed(lambda: write_scores(version, n, mag))
    return {"points": n, "scores_s": round(s, 1), "peak_rss_mb": round(peak_rss_mb(), 1)}


def write_scores(version: str, n: int, mag: np.ndarray, seed: int = 2) -> None:
    """Anomaly scores of N objects without scoring them (two synthetic scorers, the combined
    score and its rank, as ``combine`` makes them), chunk by chunk, written as the pipeline's
    product; then its lineage record."""
    from backend.latent.anomaly import AnomalyRanker, combine
    from backend.latent.source import ANOMALY_FILE, latent_dir
    from backend.pipeline.build import record
    from backend.pipeline.kinds import Target

    rng = np.random.default_rng(seed)
    raw = {"iforest": rng.random(n, dtype=np.float32), "knn": np.abs(mag - 18).astype(np.float32)}
    ids = scale_ids(n)
    AnomalyRanker(combine(raw, ids)).save(latent_dir(SURVEY, version) / ANOMALY_FILE)
    record(Target("scores", SURVEY, "encoder", version), {"scorers": sorted(raw)}, None)


def build_survey(n: int, dim: int = 128, scores: bool = False, dtype: str = "auto") -> str:
    """The synthetic survey of N objects in the current data root (``LATENTSKY_HOME``): survey,
    encoder embeddings (``dim``), map, (synthetic anomaly scores,) and the map tiles through the
    pipeline (``make_tiles``, ``mag`` pre-aggregated); returns the encoder version. Browser
    tests build one (tests/ui/test_big_survey_browser.py)."""
    from backend.latent.tiles_product import make_tiles

    xy, cls, mag = map_positions(n)
    make_survey(n, xy, cls, mag)
    version = make_encoder(n, dim, dtype)
    write_map(version, xy)
    if scores:
        write_scores(version, n, mag)
    make_tiles(SURVEY, version, numeric_columns=("mag",))
    return version


# -- measurements --------------------------------------------------------------------------------
def measure_map(path: Path, xy: np.ndarray, seed: int = 1, boxes: int = 10) -> dict[str, Any]:
    import holoviews.plotting.bokeh  # noqa: F401  (the map images' options, as in the app)

    from app.mapview import Colouring, TiledMap, tile_categories
    from app.plots import MapStyle
    from app.shading import category_rgb
    from backend.latent.tiles import TileSet

    warm_up(path.parent)
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    tiles = TileSet(path)
    tiled = TiledMap(tiles, xy[:, 0], xy[:, 1])
    names = tiles.layers["true_class"].categories
    order, key, lut = tile_categories(names, tiled.category_counts("true_class"), None)
    cat = (MapStyle("cat", colour_key=key), Colouring("true_class", lut, colours=category_rgb(order, key)))  # fmt: skip
    home = (*tiled.home(), WIDTH, HEIGHT)
    tiled.draw(*cat, home)
    out["first_paint_ms"] = round((time.perf_counter() - t0) * 1e3, 1)
    styles = {
        "count": (MapStyle("count", cmap="bmy"), Colouring()),
        "mag (tiled sums)": (MapStyle("num", clim=(15.0, 21.0)), Colouring("mag")),
        "class": cat,
    }
    out["colour_change_ms"] = {}
    for name, (style, colouring) in styles.items():
        _, s = timed(lambda st=style, co=colouring: tiled.draw(st, co, home))
        out["colour_change_ms"][name] = round(s * 1e3, 1)
    rng = np.random.default_rng(seed)
    e = tiles.extent
    out["zoom"] = {}
    for zoom in ZOOMS:
        w, h = e.width / zoom, e.width / zoom * HEIGHT / WIDTH
        times, levels = [], set()
        for _ in range(6):  # 6 dense places, 6 pans each
            cx, cy = xy[rng.integers(len(xy))]
            for step in range(6):
                x0 = float(cx) - w / 2 + step * w / 10
                view = ((x0, x0 + w), (float(cy) - h / 2, float(cy) + h / 2), WIDTH, HEIGHT)
                level = tiles.level_for(_grid(view))
                levels.add("points" if level > tiles.levels else f"L{level}")
                _, s = timed(lambda v=view: tiled.draw(*cat, v))
                times.append(s)
        out["zoom"][f"x{zoom}"] = {**stats(times), "from": sorted(levels)}
    box_t, lasso_t, first_t, counts = [], [], [], []
    for _ in range(boxes):
        cx, cy = xy[rng.integers(len(xy))]
        size = e.width / rng.choice([2, 4, 8, 16])
        bounds = (cx - size / 2, cy - size / 3, cx + size / 2, cy + size / 3)
        from backend.latent.tiles import box_polygon

        sel = tiles.select(box_polygon(bounds))
        n, s = timed(sel.count)
        box_t.append(s)
        counts.append(n)
        _, s = timed(lambda sel=sel: sel.rows(0, 48))
        first_t.append(s)
        t = np.linspace(0, 2 * np.pi, 60, endpoint=False)
        r = size / 2 * (0.7 + 0.3 * np.sin(5 * t))
        poly = np.column_stack([cx + r * np.cos(t), cy + r * np.sin(t)])
        _, s = timed(lambda poly=poly: tiles.select(poly).count())
        lasso_t.append(s)
    out["box_count"] = {**stats(box_t), "objects_median": int(np.median(counts))}
    out["lasso_count"] = stats(lasso_t)
    out["first_48_ids"] = stats(first_t)
    out["tile_reads"] = dict(tiles.reads)
    return out


def warm_up(directory: Path) -> None:
    """Compile (or load from numba's cache) every kernel a view or a selection runs, on a
    small tiles file, so that the figures are those of a running server."""
    from app.mapview import Colouring, TiledMap
    from app.plots import MapStyle
    from backend.latent.tiles import TileSet, box_polygon, build_tiles

    xy, cls, _ = map_positions(5_000, seed=9)
    path = directory / "warm-up.zip"
    build_tiles(path, xy[:, 0], xy[:, 1], {"c": (cls, CLASSES)}, levels=1, partition_size=256)
    tiles = TileSet(path)
    tiled = TiledMap(tiles, xy[:, 0], xy[:, 1])
    rgb = np.full((len(CLASSES), 3), 128.0)
    cat = (MapStyle("cat", colour_key={}), Colouring("c", np.arange(len(CLASSES)), colours=rgb))
    e = tiles.extent
    for w in (e.width, e.width / 64):
        view = ((e.x0, e.x0 + w), (e.y0, e.y0 + w), WIDTH, HEIGHT)
        tiled.draw(*cat, view)
        tiled.draw(MapStyle("count"), Colouring(), view)
    tiles.select(box_polygon((e.x0, e.y0, e.x1 / 2, e.y1 / 2))).count()
    t = np.linspace(0, 6, 20)
    tiles.select(np.column_stack([np.cos(t), np.sin(t)])).count()
    tiles.close()
    path.unlink()


def _grid(view: tuple) -> Any:
    from backend.latent.tiles import ViewGrid

    return ViewGrid(*view)


def check_exact(path: Path, xy: np.ndarray) -> dict[str, Any]:
    """A box and a lasso counted from the tiles equal a brute-force count of every point."""
    from app.selection import box_indices, lasso_indices
    from backend.latent.tiles import TileSet, box_polygon

    tiles = TileSet(path)
    x, y = xy[:, 0], xy[:, 1]
    bounds = (-3.0, -2.0, 4.0, 5.0)
    t = np.linspace(0, 2 * np.pi, 50, endpoint=False)
    poly = np.column_stack([5 * np.cos(t), 5 * (0.7 + 0.3 * np.sin(3 * t)) * np.sin(t)])
    return {
        "box_equal": tiles.select(box_polygon(bounds)).count() == len(box_indices(x, y, bounds)),
        "lasso_equal": tiles.select(poly).count() == len(lasso_indices(x, y, poly)),
    }


def search_and_lists(home: Path) -> dict[str, Any]:
    """Engineer E's measurements of the index and lists (bench/scale_search.py), when present."""
    try:
        from bench.scale_search import measure_lists, measure_search
    except ImportError as exc:  # until bench/scale_search.py is committed
        return {"skipped": f"bench/scale_search.py not importable: {exc}"}
    out: dict[str, Any] = {"search": measure_search(home, SURVEY)}
    try:
        out["lists"] = measure_lists(home, SURVEY)
    except Exception as exc:  # the survey has no anomaly scores: lists are not measured here
        out["lists"] = {"skipped": f"{type(exc).__name__}: {exc}"}
    return out


def current_rss_mb() -> float:
    """Resident memory of this process now (MiB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure_app(home: Path, eager: bool = False) -> dict[str, Any]:
    """The app's side of a built survey (``--measure-app HOME``, e.g. a ``--keep`` root or the
    big-survey browser test's): opening it paged (``app.data``), the Explore view, a box
    selection's first page of ids, and the anomaly list's first page read from the scores file
    (``AnomalyRanker.plain_listing``); seconds, values read and the RSS each step adds.
    ``eager``: opening it by reading its whole table and map (as below the threshold) only."""
    import holoviews.plotting.bokeh  # noqa: F401  (the map images' options, as in the app)

    os.environ["LATENTSKY_HOME"] = str(home)
    from app import data as app_data
    from app.state import AppState
    from app.views.explore import ExploreView
    from backend.latent.anomaly import AnomalyRanker
    from backend.latent.source import ANOMALY_FILE, latent_dir
    from backend.latent.tiles import box_polygon

    n = app_data.get_survey(SURVEY).meta.count
    os.environ["LATENTSKY_TILED_MAP_ABOVE"] = str(n + 1 if eager else max(1, n // 2))
    out: dict[str, Any] = {"points": n, "rss_mb_start": round(current_rss_mb(), 1)}
    if eager:
        _, s = timed(lambda: app_data.load_survey_data(SURVEY))
        return {**out, "open_s": round(s, 3), "peak_rss_mb": round(peak_rss_mb(), 1),
                "rss_mb_after": round(current_rss_mb(), 1),
                "load_avg": [round(v, 2) for v in os.getloadavg()]}  # fmt: skip
    data, s = timed(lambda: app_data.survey_data(SURVEY))
    out["open_s"] = round(s, 3)
    out["open_rss_added_mb"] = round(current_rss_mb() - out["rss_mb_start"], 1)
    out["paged"] = data.paged
    rss = current_rss_mb()
    view, s = timed(lambda: ExploreView(data=data, state=AppState(survey=SURVEY)))
    out["explore_view_s"] = round(s, 3)
    out["explore_rss_added_mb"] = round(current_rss_mb() - rss, 1)
    tiles = view._tiled.tiles
    e = tiles.extent
    cx, cy = e.x0 + e.width / 2, e.y0 + e.height / 2
    sel = tiles.select(
        box_polygon((cx - e.width / 8, cy - e.height / 8, cx + e.width / 8, cy + e.height / 8))
    )
    count, s = timed(sel.count)
    out["box_count"] = {"objects": count, "s": round(s, 3)}
    rows, s = timed(lambda: sel.rows(0, 48))
    _ids, s2 = timed(lambda: [data.object_id(int(i)) for i in rows])
    out["box_first_48_ids_s"] = round(s + s2, 3)
    rss = current_rss_mb()
    ranker = AnomalyRanker.load(latent_dir(SURVEY, data.encoder) / ANOMALY_FILE)
    listing = ranker.plain_listing()
    _page, s = timed(lambda: listing.page(0, 48))
    out["anomaly_first_page_s"] = round(s, 3)
    out["anomaly_first_page_rss_added_mb"] = round(current_rss_mb() - rss, 1)
    out["anomaly_reads"] = dict(listing.table.reads)
    out.update(measure_paged_views(data))
    out["table_reads"] = dict(data.table.reads)
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    out["load_avg"] = [round(v, 2) for v in os.getloadavg()]
    return out


def measure_paged_views(data: Any) -> dict[str, Any]:
    """A paged survey's Sky view (its bounded sample), a cone search by sky position over the
    catalog's row groups (1 arcsec, at a third of the rows) and the *Human labels* colouring
    (codes from the label store's few labels); seconds and what each read."""
    from app.colouring import UNLABELLED
    from app.labelling import label_store
    from app.state import AppState
    from app.views.sky import SkyView
    from backend.latent.sky import PagedSkyIndex, parse_position

    out: dict[str, Any] = {}
    full = data.table.reads["full_columns"]
    sky, s = timed(lambda: SkyView(data=data, state=AppState(survey=SURVEY)))
    out["sky_view_s"] = round(s, 3)
    out["sky_sample_objects"] = 0 if sky.positions is None else len(sky.positions)
    cone = PagedSkyIndex(data.survey.path / "catalog.parquet")
    row = len(data) // 3
    ra, dec = (float(data.table[c].iat[row]) for c in ("ra", "dec"))
    hit, s = timed(lambda: cone.nearest(parse_position(f"{ra} {dec}"), 1.0))
    out["sky_search"] = {"s": round(s, 3), "row_groups_read": cone.reads,
                         "row_groups": len(cone.boxes), "found": hit is not None}  # fmt: skip
    label_store()  # opened (its database migrated) once per process, as in a server
    (_values, _key), s = timed(lambda: data.label_categories({}, UNLABELLED))
    out["labels_colouring_s"] = round(s, 3)
    out.update(measure_every_object_sky(data, sky))
    out.update(measure_labelled_colouring(data))
    out["views_full_columns_read"] = data.table.reads["full_columns"] - full
    return out


def measure_every_object_sky(data: Any, sky: Any) -> dict[str, Any]:
    """The Sky view from the HEALPix counts written with the catalog: objects drawn (every
    one), one 800x560 rasterization of each layer, and a box on the sky selecting every object
    in it (the catalog's row groups its RA/Dec statistics allow)."""
    from holoviews.operation import datashader as hd

    from app.views.sky import DENSITY, OBJECTS
    from backend.latent.sky import PagedSkyIndex

    if sky.counts is None:
        return {"sky_every_object": False}
    out: dict[str, Any] = {"sky_every_object": True, "sky_objects_drawn": sky.counts.total,
                           "sky_pixels": len(sky.counts.pixels), "sky_drawn_order": sky.draw_order,
                           "sky_drawn_pixels": len(sky.drawn_counts)}  # fmt: skip
    for layer, agg in ((OBJECTS, "sum"), (DENSITY, "mean")):
        element = sky.base(layer)
        for when in ("first", "again"):  # the first compiles datashader's kernels (per process)
            _, s = timed(lambda e=element, a=agg: hd.rasterize(
                e, aggregator=a, dynamic=False, width=WIDTH, height=HEIGHT))  # fmt: skip
            out[f"sky_{layer.split()[0].lower()}_raster_{when}_s"] = round(s, 3)
    ra = sky.centres[0]
    x0 = float(ra.min()) + 0.25 * float(np.ptp(ra))
    x1 = x0 + 0.1 * float(np.ptp(ra))
    corners = [(x0, -1.0), (x1, -1.0), (x1, 1.0), (x0, 1.0), (x0, -1.0)]
    from app.selection import box_indices

    def inside(r: np.ndarray, d: np.ndarray) -> np.ndarray:
        mask = np.zeros(len(r), bool)
        mask[box_indices(r, d, (x0, -1.0, x1, 1.0))] = True
        return mask

    _, s = timed(lambda: sky.select_every(inside, corners))
    index = data.memo("sky_paged_index", lambda: PagedSkyIndex(sky._catalog_path()))
    out["sky_box_select"] = {"s": round(s, 3), "objects": int(sky.state.selection.count()),
                             "row_groups_read": index.reads, "row_groups": len(index.boxes)}  # fmt: skip
    return out


def measure_sky_footprint(n: int, seed: int = 4) -> dict[str, Any]:
    """The Sky view's counts of ``n`` objects spread over a 5,000 deg² footprint (RA 120-250°,
    Dec -5-35°, uniform on the sphere; bench_scale's survey has its sky on a line): counting
    them (what the survey writer adds), the order the objects layer draws and one 800x560
    rasterization of it (cold, then warm) and of the density layer."""
    from holoviews.operation import datashader as hd

    from app import sky_plots
    from app.views.sky import drawn_counts
    from backend.survey.skycounts import count_pixels

    rng = np.random.default_rng(seed)
    ra = np.empty(n)
    dec = np.empty(n)
    lo, hi = np.sin(np.radians(-5.0)), np.sin(np.radians(35.0))
    for start in range(0, n, 1 << 24):
        m = min(1 << 24, n - start)
        ra[start : start + m] = rng.uniform(120.0, 250.0, m)
        dec[start : start + m] = np.degrees(np.arcsin(rng.uniform(lo, hi, m)))
    counts, s = timed(lambda: count_pixels(ra, dec))
    out: dict[str, Any] = {"points": n, "count_s": round(s, 2), "pixels": len(counts.pixels)}
    (order, c_ra, c_dec, objects), s = timed(lambda: drawn_counts(counts))
    out.update({"drawn_order": order, "drawn_pixels": len(objects), "drawn_s": round(s, 2),
                "drawn_objects": int(objects.sum())})  # fmt: skip
    unwrap = sky_plots.ra_unwrapper(c_ra)
    element = sky_plots.counted_points(unwrap(c_ra), c_dec, objects)
    for when in ("first", "again"):
        _, s = timed(lambda: hd.rasterize(
            element, aggregator="sum", dynamic=False, width=WIDTH, height=HEIGHT))  # fmt: skip
        out[f"objects_raster_{when}_s"] = round(s, 3)
    density_order = sky_plots.healpix_order(unwrap(c_ra), c_dec)
    _, s = timed(lambda: sky_plots.density_image(
        *counts.at_order(density_order), density_order, unwrap(c_ra), c_dec))  # fmt: skip
    out["density_order"], out["density_image_s"] = density_order, round(s, 3)
    out["zoom"] = measure_sky_zoom(counts, unwrap, order)
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    out["load_avg"] = [round(v, 2) for v in os.getloadavg()]
    return out


def measure_sky_zoom(
    counts: Any, unwrap: Any, drawn_order: int, repeats: int = 5
) -> list[dict[str, Any]]:
    """The Sky view's objects layer of views ever smaller about (185°, 15°), as
    ``SkyView.objects_in_view`` draws them from the counts (no catalog here): the order (the
    survey-wide layer when no deeper than ``drawn_order``), the view's pixels
    (``app.sky_plots.counts_in_view``) and their centres, then one 800x560 rasterization;
    seconds per view (median and max of ``repeats`` shifted views), ``select_s`` without the
    rasterization."""
    from holoviews.operation import datashader as hd

    from app import sky_plots
    from backend.survey.skycounts import centres_of

    out = []
    for side in (60.0, 20.0, 8.0, 2.0, 0.5, 0.1):
        times, selects, pixels, objects, order = [], [], 0, 0, 0
        for k in range(repeats):
            x0, y0 = 185.0 - side / 2 + 0.01 * k * side, 15.0 - side / 2
            rr, dr = (x0, x0 + side), (y0, y0 + side)
            start = time.perf_counter()
            order = sky_plots.view_order(rr, dr, sky_plots.VIEW_PIXELS, counts.order)
            if order <= drawn_order:
                break
            pix, n = sky_plots.counts_in_view(counts.pixels, counts.counts, counts.order, rr, dr,
                                              order)  # fmt: skip
            c_ra, c_dec = centres_of(pix, order)
            element = sky_plots.counted_points(unwrap(c_ra), c_dec, n)
            selects.append(time.perf_counter() - start)
            hd.rasterize(element, aggregator="sum", dynamic=False, width=WIDTH, height=HEIGHT,
                         x_range=rr, y_range=dr)  # fmt: skip
            times.append(time.perf_counter() - start)
            pixels, objects = len(pix), int(n.sum())
        if not times:
            out.append({"side_deg": side, "order": order, "drawn": "the survey-wide layer"})
            continue
        out.append({"side_deg": side, "order": order, "pixels": pixels, "objects": objects,
                    "select_s_median": round(float(np.median(selects)), 3),
                    "view_s_median": round(float(np.median(times)), 3),
                    "view_s_max": round(float(np.max(times)), 3)})  # fmt: skip
    return out


def measure_sky_highlight(n: int, seed: int = 4) -> dict[str, Any]:
    """A latent-map selection highlighted on the Sky view of a big survey: a catalog of ``n``
    positions over the 5,000 deg² footprint in row groups of 65,536 (rows in no sky order),
    then the RA/Dec of a selection's rows read by row group (``RowTable.rows``, as
    ``SkyView.marked``) and their marks (``sky_plots.highlight_positions``), for 20,000 rows
    in 2 row groups and for the view's cap of evenly spread rows (every row group)."""
    from app import sky_plots
    from app.views.sky import HIGHLIGHT_ROWS
    from backend.rowtable import ROW_GROUP, RowTable, Source

    rng = np.random.default_rng(seed)
    lo, hi = np.sin(np.radians(-5.0)), np.sin(np.radians(35.0))
    frame = pd.DataFrame({"ra": rng.uniform(120.0, 250.0, n),
                          "dec": np.degrees(np.arcsin(rng.uniform(lo, hi, n)))})  # fmt: skip
    out: dict[str, Any] = {"points": n}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "catalog.parquet"
        frame.to_parquet(path, row_group_size=ROW_GROUP, index=False)
        del frame
        for name, rows in (
            ("rows_20000_in_2_groups", np.arange(ROW_GROUP - 10_000, ROW_GROUP + 10_000)),
            (f"rows_{HIGHLIGHT_ROWS}_spread", np.linspace(0, n - 1, HIGHLIGHT_ROWS).astype(int)),
        ):
            table = RowTable([Source(path, {"ra": "ra", "dec": "dec"})], n)
            got, s = timed(lambda t=table, r=rows: t.rows(r, ["ra", "dec"]))
            ra, dec = got["ra"].to_numpy(), got["dec"].to_numpy()
            marks, s2 = timed(lambda a=ra, b=dec: sky_plots.highlight_positions(a, b))
            out[name] = {"read_s": round(s, 3), "row_groups_read": table.reads["groups"] // 2,
                         "marks": len(marks[0]), "marks_s": round(s2, 3)}  # fmt: skip
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    out["load_avg"] = [round(v, 2) for v in os.getloadavg()]
    return out


def measure_sky_objects(n: int, seed: int = 4, repeats: int = 5) -> dict[str, Any]:
    """The Sky view's zoomed objects read from the catalog: a paged survey of ``n`` objects
    over the 5,000 deg² footprint, its catalog in Dec order (row groups are Dec bands, as a
    sky-ordered catalog's), built in a temporary data root; views ever smaller about
    (185°, 15°) through ``SkyView.objects_in_view`` and one 800x560 rasterization: what each
    draws and seconds per view (median and max of ``repeats`` shifted views)."""
    from holoviews.operation import datashader as hd

    from app import data as app_data
    from app.state import AppState
    from app.views.sky import OBJECTS, SkyView
    from backend.survey import SurveyWriter

    rng = np.random.default_rng(seed)
    lo, hi = np.sin(np.radians(-5.0)), np.sin(np.radians(35.0))
    ra = rng.uniform(120.0, 250.0, n)
    dec = np.sort(np.degrees(np.arcsin(rng.uniform(lo, hi, n))))
    out: dict[str, Any] = {"points": n, "views": []}
    old = {k: os.environ.get(k) for k in ("LATENTSKY_HOME", "LATENTSKY_TILED_MAP_ABOVE")}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LATENTSKY_HOME"], os.environ["LATENTSKY_TILED_MAP_ABOVE"] = tmp, "1"
        try:
            start = time.perf_counter()
            with SurveyWriter("skyorder", ["g"], (8, 8), "synthetic-sky") as writer:
                for a in range(0, n, BATCH):
                    b = min(a + BATCH, n)
                    catalog = pd.DataFrame({"object_id": [f"k{i:09d}" for i in range(a, b)],
                                            "ra": ra[a:b], "dec": dec[a:b]})  # fmt: skip
                    writer.append(np.zeros((b - a, 1, 8, 8), np.float32), catalog)
            out["build_s"] = round(time.perf_counter() - start, 1)
            app_data.clear_cache()
            data = app_data.survey_data("skyorder")
            view = SkyView(data=data, state=AppState(survey="skyorder"))
            out["drawn_order"] = view.draw_order
            for side in (4.0, 1.0, 0.25, 0.05):
                times, what = [], ""
                for k in range(repeats):
                    x0, y0 = 185.0 - side / 2 + 0.05 * k * side, 15.0 - side / 2
                    rr, dr = (x0, x0 + side), (y0, y0 + side)
                    t0 = time.perf_counter()
                    element = view.base(OBJECTS, x_range=rr, y_range=dr)
                    hd.rasterize(element, aggregator="sum", dynamic=False, width=WIDTH,
                                 height=HEIGHT, x_range=rr, y_range=dr)  # fmt: skip
                    times.append(time.perf_counter() - t0)
                    what = view.detail
                out["views"].append({"side_deg": side, "drawn": what,
                                     "view_s_median": round(float(np.median(times)), 3),
                                     "view_s_max": round(float(np.max(times)), 3)})  # fmt: skip
            out["full_columns_read"] = data.table.reads["full_columns"]
            app_data.clear_cache()
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    out["load_avg"] = [round(v, 2) for v in os.getloadavg()]
    return out


def measure_labelled_colouring(data: Any) -> dict[str, Any]:
    """The first *Human labels* colouring of a labelled survey in a process (its id look-ups:
    memory-mapped from the file the survey writer stored), and the look-ups built from the
    catalog instead (as for a survey written before that file)."""
    from app.colouring import UNLABELLED
    from app.labelling import label_store
    from backend.survey import ids as survey_ids

    store = label_store()
    for row, value in ((10, "spiral"), (len(data) // 2, "merger"), (len(data) - 1, "spiral")):
        store.add(SURVEY, data.object_id(row), value, user="bench")
    (values, _key), s = timed(lambda: data.label_categories({}, UNLABELLED))
    lookup = survey_ids.id_lookup(data.survey.path / "catalog.parquet")
    catalog = data.survey.path / "catalog.parquet"
    read = survey_ids.IdLookup._read_hashes
    _, s_built = timed(lambda: survey_ids.sorted_hashes(read(catalog, len(data))))
    return {"labels_colouring_labelled_s": round(s, 3), "id_lookup_stored": lookup.stored,
            "labelled_rows_coloured": int((np.asarray(values.codes) != list(
                values.categories).index(UNLABELLED)).sum()),
            "id_lookup_built_from_catalog_s": round(s_built, 3)}  # fmt: skip


def run(n: int, keep: Path | None, index: bool, dtype: str = "auto") -> dict[str, Any]:
    home = keep or Path(tempfile.mkdtemp(prefix="bench-scale-", dir=os.environ.get("TMPDIR")))
    old = os.environ.get("LATENTSKY_HOME")
    os.environ["LATENTSKY_HOME"] = str(home)
    figures: dict[str, Any] = {"points": n, "build_s": {}, "embeddings_dtype": dtype}
    try:
        xy, cls, mag = map_positions(n)
        _, s = timed(lambda: make_survey(n, xy, cls, mag))
        figures["build_s"]["survey"] = round(s, 1)
        figures["survey_disk"] = survey_disk(home / "surveys" / SURVEY)
        figures["peak_rss_mb_after_survey"] = round(peak_rss_mb(), 1)
        say(f"survey of {n:,} in {s:.0f} s: {figures['survey_disk']}")
        version, s = timed(lambda: make_encoder(n, dtype=dtype))
        figures["build_s"]["embeddings"] = round(s, 1)
        write_map(version, xy)
        say(f"survey, embeddings and map of {n:,} in {sum(figures['build_s'].values()):.0f} s")
        from backend.latent.tiles_product import make_tiles, tiles_path

        rss0 = peak_rss_mb()
        meta, s = timed(lambda: make_tiles(SURVEY, version, numeric_columns=("mag",)))
        path = tiles_path(SURVEY, version)
        figures["build_s"]["tiles"] = round(s, 1)
        figures["tiles"] = {"levels": meta["levels"], "file_mb": round(path.stat().st_size / 2**20, 1),
                            "partitions": -(-n // meta["partition_size"]),
                            "peak_rss_mb_during": round(peak_rss_mb(), 1), "peak_rss_mb_before": round(rss0, 1)}  # fmt: skip
        say(f"tiles: {figures['tiles']} in {s:.1f} s")
        if index:
            from backend.pipeline.runner import ensure

            _, s = timed(lambda: ensure(SURVEY, ["index"], "sync"))
            figures["build_s"]["index"] = round(s, 1)
            say(f"index through the pipeline in {s:.1f} s")
        figures["map"] = measure_map(path, xy)
        figures["exact"] = check_exact(path, xy)
        if index:
            figures.update(search_and_lists(home))
        figures["peak_rss_mb"] = round(peak_rss_mb(), 1)
        figures["load_avg"] = [round(v, 2) for v in os.getloadavg()]
        return figures
    finally:
        if old is None:
            os.environ.pop("LATENTSKY_HOME", None)
        else:
            os.environ["LATENTSKY_HOME"] = old
        if keep is None:
            shutil.rmtree(home, ignore_errors=True)


def run_map_only(n: int, keep: Path | None) -> dict[str, Any]:
    """The tiles of N clustered map points built straight from memory (no survey, embeddings
    or index: for sizes whose embeddings do not fit this machine's disk), then measured; the
    peak RSS is that of generating the points and building the tiles."""
    from backend.latent.tiles import build_tiles

    directory = keep or Path(tempfile.mkdtemp(prefix="bench-scale-", dir=os.environ.get("TMPDIR")))
    directory.mkdir(parents=True, exist_ok=True)
    try:
        (xy, cls, mag), s = timed(lambda: map_positions(n))
        figures: dict[str, Any] = {
            "points": n,
            "map_only": True,
            "build_s": {"points": round(s, 1)},
        }
        path = directory / "tiles.zarr.zip"
        t0 = time.perf_counter()
        meta = build_tiles(path, xy[:, 0], xy[:, 1], {"true_class": (cls, CLASSES)}, {"mag": mag})
        s = time.perf_counter() - t0
        figures["build_s"]["tiles"] = round(s, 1)
        figures["tiles"] = {"levels": meta["levels"], "file_mb": round(path.stat().st_size / 2**20, 1),
                            "partitions": -(-n // meta["partition_size"]),
                            "peak_rss_mb_points_and_tiles": round(peak_rss_mb(), 1)}  # fmt: skip
        say(f"tiles: {figures['tiles']} in {s:.1f} s")
        del cls, mag  # measured with the map positions only
        figures["map"] = measure_map(path, xy)
        figures["exact"] = check_exact(path, xy)
        figures["peak_rss_mb"] = round(peak_rss_mb(), 1)
        figures["load_avg"] = [round(v, 2) for v in os.getloadavg()]
        return figures
    finally:
        if keep is None:
            shutil.rmtree(directory, ignore_errors=True)


def measure_tiles(n: int, path: Path, boxes: int = 10) -> dict[str, Any]:
    """Measure a tiles file already built from ``map_positions(n)`` (a ``--map-only --keep``
    run's): the same views and selections, without building it again."""
    xy, _, _ = map_positions(n)
    figures: dict[str, Any] = {"points": n, "map_only": True, "tiles_file": str(path)}
    figures["map"] = measure_map(path, xy, boxes=boxes)
    figures["exact"] = check_exact(path, xy)
    figures["peak_rss_mb"] = round(peak_rss_mb(), 1)
    figures["load_avg"] = [round(v, 2) for v in os.getloadavg()]
    return figures


THUMB_PX = 88  # the selection gallery's pictures (app/selectionpanel.py)


def _box_pages(home: Path, boxes: int, seed: int) -> tuple[Any, Any, list[tuple]]:
    """(the app's SurveyData, the tiles, ``boxes`` box bounds holding at least 48 objects) of
    a built data root: boxes around random mapped objects, an eighth to half the map's width."""
    from app import data as app_data
    from backend.latent.source import latent_dir
    from backend.latent.tiles import TileSet
    from backend.latent.tiles_product import tiles_path
    from backend.registry import ModelRegistry

    version = ModelRegistry().active(SURVEY, "encoder").version
    xy = np.load(latent_dir(SURVEY, version) / "map.npy", mmap_mode="r")
    tiles = TileSet(tiles_path(SURVEY, version))
    data = app_data.survey_data(SURVEY)
    rng = np.random.default_rng(seed)
    sample = np.asarray(xy[np.sort(rng.choice(len(xy), min(len(xy), 20_000), replace=False))])
    e, out = tiles.extent, []
    while len(out) < boxes:  # boxes chosen on a sample: the tiles have counted nothing yet
        cx, cy = (float(v) for v in xy[rng.integers(len(xy))])
        size = e.width / rng.choice([2, 4, 8])
        x0, y0, x1, y1 = cx - size / 2, cy - size / 3, cx + size / 2, cy + size / 3
        inside = (
            (sample[:, 0] > x0) & (sample[:, 0] < x1) & (sample[:, 1] > y0) & (sample[:, 1] < y1)
        )
        if inside.sum() * len(xy) / len(sample) >= 500:
            out.append((x0, y0, x1, y1))
    return data, tiles, out


def _render_48(rows: np.ndarray) -> list[bytes]:
    """The 48 PNGs as ``/thumb`` makes them: ``app.routes.render_png`` on the route's pool."""
    from app.routes import _POOL, render_png

    return list(_POOL.map(lambda i: render_png(SURVEY, int(i), THUMB_PX, None), rows))


def _fresh_store() -> None:
    """Forget the open survey (zarr store) and the PNG cache: the next picture starts cold."""
    from app import surveys
    from backend.survey.store import clear_thumbnail_cache

    with surveys._lock:
        surveys._open.clear()
    clear_thumbnail_cache()


def _stage_costs(pages: list[np.ndarray]) -> dict[str, float]:
    """Median milliseconds a page of 48 pictures spends in each stage, one picture after
    another, from a fresh store: opening it, reading the cutouts (zarr chunks), colour
    rendering, PNG encoding (over ``pages``, a fresh store for each)."""
    from app.surveys import get_survey
    from backend.survey.render import png_bytes, to_rgb

    got: dict[str, list[float]] = {"open_store_ms": [], "read_cutouts_ms": [], "render_ms": [],
                                   "png_ms": [], "png_bytes_mean": []}  # fmt: skip
    for rows in pages:
        _fresh_store()
        survey, t_open = timed(lambda: get_survey(SURVEY))
        cuts, t_read = timed(lambda rows=rows, s=survey: [s.cutout(int(i)) for i in rows])
        rgbs, t_rgb = timed(
            lambda c=cuts, s=survey: [to_rgb(x, s.bands, s.meta.display) for x in c]
        )
        pngs, t_png = timed(lambda r=rgbs: [png_bytes(p, THUMB_PX) for p in r])
        for key, v in zip(got, (t_open, t_read, t_rgb, t_png), strict=False):
            got[key].append(v * 1e3)
        got["png_bytes_mean"].append(float(np.mean([len(b) for b in pngs])))
    return {k: round(float(np.median(v)), 1) for k, v in got.items()}


def _serve_routes() -> tuple[str, Callable[[], None]]:
    """``app.routes``' handlers on a tornado server on 127.0.0.1 (a thread of its own);
    returns (base URL, stop)."""
    import asyncio
    import threading

    from tornado.httpserver import HTTPServer
    from tornado.web import Application

    from app.routes import ROUTES

    ready: dict[str, Any] = {}
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        server = HTTPServer(Application(ROUTES))
        sockets = __import__("tornado.netutil", fromlist=["bind_sockets"]).bind_sockets(
            0, "127.0.0.1"
        )
        server.add_sockets(sockets)
        ready["port"] = sockets[0].getsockname()[1]
        ready["loop"] = asyncio.get_event_loop()
        started.set()
        ready["loop"].run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    started.wait(30)

    def stop() -> None:
        ready["loop"].call_soon_threadsafe(ready["loop"].stop)
        thread.join(10)

    return f"http://127.0.0.1:{ready['port']}", stop


def _fetch_48(base: str, rows: np.ndarray, connections: int = 6) -> tuple[float, int]:
    """Seconds to GET the 48 thumbnails over ``connections`` concurrent connections (a
    browser's per-host limit for HTTP/1.1), and the bytes received; raises on a non-200."""
    import asyncio

    from tornado.httpclient import AsyncHTTPClient

    async def fetch_all() -> int:
        client = AsyncHTTPClient(force_instance=True, max_clients=connections)
        try:
            got = await asyncio.gather(*[
                client.fetch(f"{base}/thumb/{SURVEY}/{int(i)}.png?size={THUMB_PX}") for i in rows
            ])  # fmt: skip
        finally:
            client.close()
        return sum(len(r.body) for r in got)

    t0 = time.perf_counter()
    nbytes = asyncio.run(fetch_all())
    return time.perf_counter() - t0, nbytes


def measure_thumbnails(
    home: Path, boxes: int = 10, http: bool = True, seed: int = 6
) -> dict[str, Any]:
    """The first page of a box selection with its pictures (``--thumbnails HOME``): count, the
    first 48 rows and their ids (``SurveyData.object_ids``, as the gallery reads them), then
    their 48 PNGs made by ``/thumb``'s own code (``app.routes.render_png`` on its thread pool),
    per box: cold (a fresh survey store and PNG cache), new pictures from the open store (the
    usual case: another box in a running server) and cached; median stage costs of a cold page; and,
    with ``http``, the same 48 fetched from the routes served by tornado on 127.0.0.1 over 6
    connections (cold and cached). Timings are wall-clock under whatever load the machine has."""
    os.environ["LATENTSKY_HOME"] = str(home)
    from app.surveys import get_survey

    n = get_survey(SURVEY).meta.count
    os.environ.setdefault("LATENTSKY_TILED_MAP_ABOVE", str(max(1, n // 2)))
    from backend.latent.tiles import box_polygon
    from backend.survey.store import clear_thumbnail_cache

    load0 = os.getloadavg()
    data, tiles, bounds = _box_pages(home, boxes + 1, seed)
    warm = tiles.select(box_polygon(bounds[-1]))  # warm-up (the extra box): imports, kernels
    warm.count()
    _render_48(warm.rows(0, 48))  # and the pool's threads
    pages: list[np.ndarray] = []
    ids_t, count_t, cold_t, open_t, cached_t, first_t, counts = [], [], [], [], [], [], []
    for k, b in enumerate(bounds[:boxes]):
        sel = tiles.select(box_polygon(b))  # a new selection: nothing counted or listed yet
        got, s_count = timed(sel.count)
        rows, s_rows = timed(lambda sel=sel: sel.rows(0, 48))
        ids, s_ids = timed(lambda rows=rows: data.object_ids(rows))
        assert len(ids) == 48
        pages.append(rows)
        counts.append(got)
        count_t.append(s_count)
        ids_t.append(s_rows + s_ids)
        _fresh_store()
        _, s = timed(lambda rows=rows: _render_48(rows))
        cold_t.append(s)
        first_t.append(s_count + s_rows + s_ids + s)
        _, s = timed(lambda rows=rows: _render_48(rows))
        cached_t.append(s)
        if k:  # the store stays open: the previous box's pictures, no longer cached
            clear_thumbnail_cache()
            _, s = timed(lambda k=k: _render_48(pages[k - 1]))
            open_t.append(s)
    out: dict[str, Any] = {
        "points": n, "boxes": boxes, "thumb_px": THUMB_PX,
        "count": {**stats(count_t), "objects_median": int(np.median(counts))},
        "first_48_ids": stats(ids_t),
        "pngs_48_cold_store": stats(cold_t), "pngs_48_open_store": stats(open_t),
        "pngs_48_cached": stats(cached_t),
        "first_page_with_pictures_cold": stats(first_t),
        "stages_median_cold_page": _stage_costs(pages[:boxes]),
    }  # fmt: skip
    if http:
        base, stop = _serve_routes()
        try:
            cold, cached, sizes = [], [], []
            for rows in pages[:boxes]:
                _fresh_store()
                s, nbytes = _fetch_48(base, rows)
                cold.append(s)
                sizes.append(nbytes)
                cached.append(_fetch_48(base, rows)[0])
            out["http_48_cold_store"] = stats(cold)
            out["http_48_cached"] = stats(cached)
            out["http_bytes_per_page"] = int(np.mean(sizes))
        finally:
            stop()
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    out["load_avg"] = [round(v, 2) for v in load0] + [round(v, 2) for v in os.getloadavg()]
    out["cpus"] = os.cpu_count()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, help="number of objects (required to build)")
    parser.add_argument("--json", type=Path, default=RESULTS, help="results file to merge into")
    parser.add_argument("--keep", type=Path, help="data root to build in (kept)")
    parser.add_argument("--no-index", action="store_true", help="skip the index and search")
    parser.add_argument(
        "--dtype", choices=("auto", "float32", "float16"), default="auto",
        help="how the embeddings are stored (auto: float16 above 50M objects)",
    )  # fmt: skip
    parser.add_argument(
        "--map-only", action="store_true", help="only the tiles of N map points (no survey)"
    )
    parser.add_argument("--measure-app", type=Path, help="measure the app on a built data root")
    parser.add_argument(
        "--tiles", type=Path, help="with --points: measure this tiles file of map_positions(N)"
    )
    parser.add_argument("--boxes", type=int, default=10, help="with --tiles: selections timed")
    parser.add_argument(
        "--sky-footprint", action="store_true", help="with --points: the Sky view's counts"
    )
    parser.add_argument(
        "--sky-objects", action="store_true", help="with --points: zoomed views' objects"
    )
    parser.add_argument(
        "--sky-highlight", action="store_true", help="with --points: a map selection's marks"
    )
    parser.add_argument(
        "--eager", action="store_true", help="with --measure-app: the whole-table load instead"
    )
    parser.add_argument(
        "--thumbnails", type=Path, help="a built data root: a selection's first 48 pictures"
    )
    parser.add_argument(
        "--add-scores", type=Path, help="with --points: anomaly scores for a built data root"
    )
    parser.add_argument("--no-http", action="store_true", help="with --thumbnails: no server")
    args = parser.parse_args(argv)
    if args.add_scores:
        figures = add_scores(args.add_scores, args.points)
        say(json.dumps(figures, indent=2))
        merge_results(args.json, f"scores_{args.points}", figures)
        return 0
    if args.thumbnails:
        figures = measure_thumbnails(args.thumbnails, args.boxes, not args.no_http)
        say(json.dumps(figures, indent=2))
        merge_results(args.json, f"thumbnails_{figures['points']}", figures)
        return 0
    if not args.measure_app and not args.points:
        parser.error("--points is required (unless --measure-app)")
    if args.measure_app:
        figures = measure_app(args.measure_app, args.eager)
        say(json.dumps(figures, indent=2))
        kind = "eager" if args.eager else "paged"
        merge_results(args.json, f"app_{kind}_{figures['points']}", figures)
        return 0
    if args.sky_objects:
        figures = measure_sky_objects(args.points)
        say(json.dumps(figures, indent=2))
        merge_results(args.json, f"sky_objects_{args.points}", figures)
        return 0
    if args.sky_highlight:
        figures = measure_sky_highlight(args.points)
        say(json.dumps(figures, indent=2))
        merge_results(args.json, f"sky_highlight_{args.points}", figures)
        return 0
    if args.sky_footprint:
        figures = measure_sky_footprint(args.points)
        say(json.dumps(figures, indent=2))
        merge_results(args.json, f"sky_footprint_{args.points}", figures)
        return 0
    if args.tiles:
        figures = measure_tiles(args.points, args.tiles, args.boxes)
        say(json.dumps(figures, indent=2))
        merge_results(args.json, f"points_{args.points}_tiles_{args.boxes}_boxes", figures)
        return 0
    if args.map_only:
        figures = run_map_only(args.points, args.keep)
    else:
        figures = run(args.points, args.keep, not args.no_index, args.dtype)
    say(json.dumps(figures, indent=2))
    suffix = "_map_only" if args.map_only else ""
    merge_results(args.json, f"points_{args.points}{suffix}", figures)
    say(f"merged into {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
