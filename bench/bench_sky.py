"""The Sky view's server side on a prepared survey: reading the positions, the HEALPix
density, building the view, one rendering of each layer, a box selection shared with Explore
and a latent-map selection highlighted on the sky.

    LATENTSKY_HOME=var .venv/bin/python bench/bench_sky.py [--survey demo] [--runs 3]

Wall-clock medians (whatever else the machine does: load recorded); figures print and merge
into ``bench/results/sky.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results_file import merge_results  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "sky.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--survey", default="demo")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    import holoviews as hv

    from app import sky_plots
    from app.data import load_survey_data
    from app.selection import ArrayRows
    from app.state import AppState
    from app.views.sky import DENSITY, OBJECTS, SkyView

    data = load_survey_data(args.survey)
    times: dict[str, list[float]] = {}

    @contextmanager
    def timed(name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        times.setdefault(name, []).append(time.perf_counter() - start)

    for _ in range(args.runs):
        data._memo.clear()  # every run from scratch
        with timed("positions_s"):
            pos = sky_plots.sky_positions(data.table)
        order = sky_plots.healpix_order(pos.ra, pos.dec)
        with timed("healpix_density_s"):
            sky_plots.healpix_density(pos.ra, pos.dec, order)
        state = AppState(survey=args.survey)
        with timed("view_build_s"):
            view = SkyView(data=data, state=state)
        for layer in (OBJECTS, DENSITY):
            view.layer = layer
            with timed(f"render_{layer.split()[0].lower()}_s"):
                hv.render(view.plot)
        (ra0, ra1), (dec0, dec1) = np.percentile(pos.ra, [25, 75]), np.percentile(pos.dec, [25, 75])
        with timed("box_select_s"):
            view._on_box((ra0, dec0, ra1, dec1))
        state.share_selection(ArrayRows(np.arange(0, len(data), 3)), "explore")
        with timed("highlight_s"):
            view.highlighted(state.selection)

    figures = {k: round(float(np.median(v)), 4) for k, v in times.items()}
    figures.update(
        survey=args.survey, objects=len(data), healpix_order=order, runs=args.runs,
        load=os.getloadavg()[0], date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    )  # fmt: skip
    print(json.dumps(figures, indent=2))
    merge_results(RESULTS, args.survey, figures)


if __name__ == "__main__":
    main()
