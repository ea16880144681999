"""HATS export and ingestion throughput, and LSDB reading the export.

    .venv/bin/python bench/bench_hats.py [--n 20000] [--size 32] [--partition-rows 2000]

A synthetic survey (Gaussian blobs with noise, 4 bands, objects in random order over a
10 x 10 degree field, with a 128-d embedding product of an encoder version) is exported with
``export_hats`` (``--scheduler sync`` and ``local:2``), ingested back with ``ingest_hats``, and
opened by LSDB, which cross-matches it with a 1,000-source catalog. Prints the figures and
merges them into ``bench/results/hats.json``. Timings are wall-clock on whatever else the
machine is doing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results_file import merge_results

RESULTS = Path(__file__).resolve().parent / "results" / "hats.json"


def say(*parts: object) -> None:
    print(*parts, flush=True)


def make_survey(n: int, size: int, seed: int = 0) -> None:
    import torch

    from backend.products import write_embeddings
    from backend.registry import ModelRegistry
    from backend.survey import SurveyWriter

    rng = np.random.default_rng(seed)
    ra = rng.uniform(150.0, 160.0, n)
    dec = rng.uniform(-5.0, 5.0, n)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    with SurveyWriter("bench", ["g", "r", "i", "z"], (size, size), "bench", pixel_scale=0.2) as w:
        for lo in range(0, n, 2048):
            m = min(2048, n - lo)
            widths = rng.uniform(1.0, size / 6, m)
            blob = np.exp(-(xx**2 + yy**2)[None] / (2 * widths[:, None, None] ** 2))
            images = rng.uniform(0.5, 2.0, (m, 4))[:, :, None, None] * blob[:, None] * 10
            images += rng.normal(0, 0.1, images.shape)
            ids = [f"bench-{i:08d}" for i in range(lo, lo + m)]
            rows = pd.DataFrame({"object_id": ids, "ra": ra[lo : lo + m], "dec": dec[lo : lo + m]})
            w.append(images.astype(np.float32), rows)
    registry = ModelRegistry()
    version = registry.save("encoder", {"w": torch.zeros(1)}, {"arch": "bench"}, survey="bench")
    registry.set_active("bench", "encoder", version.version)
    vectors = rng.normal(size=(n, 128)).astype(np.float32)

    def fill(out: np.ndarray) -> None:
        out[:] = vectors

    write_embeddings("bench", "encoder", version.version, vectors.shape, fill)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--partition-rows", type=int, default=2_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_hats_") as tmp:
        os.environ["LATENTSKY_HOME"] = str(Path(tmp) / "home")
        from backend.hats.export import export_hats
        from backend.ingest.hats import ingest_hats

        t0 = time.perf_counter()
        make_survey(args.n, args.size)
        say(f"survey: {args.n:,} objects of 4x{args.size}x{args.size} in "
            f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
        figures: dict[str, object] = {
            "n": args.n,
            "image": [4, args.size, args.size],
            "load_average_at_start": round(os.getloadavg()[0], 1),
        }
        for spec in ("sync", "local:2"):
            out = Path(tmp) / f"export-{spec.replace(':', '')}"
            t0 = time.perf_counter()
            report = export_hats(
                "bench", out, max_rows=args.partition_rows, progress=False, scheduler=spec
            )
            seconds = time.perf_counter() - t0
            say(f"export ({spec}): {report.partitions} partitions, {seconds:.1f} s, "
                f"{args.n / seconds:,.0f} objects/s")  # fmt: skip
            figures[f"export_{spec}_s"] = round(seconds, 2)
            figures[f"export_{spec}_objects_per_s"] = round(args.n / seconds)
            figures["partitions"] = report.partitions
        t0 = time.perf_counter()
        ingest_hats(Path(tmp) / "export-sync", "back", progress=False, scheduler="sync")
        seconds = time.perf_counter() - t0
        say(f"ingest: {seconds:.1f} s, {args.n / seconds:,.0f} objects/s")
        figures["ingest_s"] = round(seconds, 2)
        figures["ingest_objects_per_s"] = round(args.n / seconds)

        import lsdb

        rng = np.random.default_rng(1)
        picked = rng.choice(args.n, 1000, replace=False)
        from backend.survey import Survey

        catalog = Survey.open("bench").catalog.iloc[picked]
        other = pd.DataFrame(
            {"sid": np.arange(1000), "ra": catalog["ra"] + 0.2 / 3600, "dec": catalog["dec"]}
        )
        lsdb.from_dataframe(other, ra_column="ra", dec_column="dec", margin_threshold=None
                            ).write_catalog(Path(tmp) / "other", progress_bar=False)  # fmt: skip
        t0 = time.perf_counter()
        matched = (
            lsdb.open_catalog(Path(tmp) / "export-sync", columns=["object_id", "ra", "dec"])
            .crossmatch(lsdb.open_catalog(Path(tmp) / "other"), radius_arcsec=1.0, n_neighbors=1)
            .compute()
        )
        seconds = time.perf_counter() - t0
        say(f"lsdb crossmatch of 1,000 sources: {len(matched)} matched in {seconds:.1f} s")
        figures["lsdb_crossmatch_s"] = round(seconds, 2)
        figures["lsdb_matched"] = len(matched)
    merge_results(RESULTS, f"n{args.n}", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
