"""HEALPix counts of every object written with the catalog, and sky selections over the
catalog's row groups (issue 12: the Sky view of a big survey)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app.selection import box_indices
from app.sky_plots import healpix_pixels, ra_unwrapper
from backend.latent.sky import PagedSkyIndex
from backend.survey.skycounts import (
    SKY_COUNTS_FILE,
    count_pixels,
    read_sky_counts,
    write_sky_counts,
)


def _positions(n: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    ra = rng.normal(0.0, 4.0, n) % 360.0  # across RA 0
    dec = np.sort(rng.uniform(-6.0, 6.0, n))  # sorted: row groups hold Dec bands
    ra[[3, 9]] = np.nan
    return ra, dec


def test_counts_at_every_order_equal_a_direct_count() -> None:
    ra, dec = _positions()
    counts = count_pixels(ra, dec)
    assert counts.total == np.isfinite(ra).sum()
    ok = np.isfinite(ra)
    for order in (3, 7, 12):
        pixels, n = counts.at_order(order)
        want, want_n = np.unique(healpix_pixels(order, ra[ok], dec[ok]), return_counts=True)
        np.testing.assert_array_equal(pixels, want)
        np.testing.assert_array_equal(n, want_n)


def test_stored_counts_are_read_only_when_they_are_the_catalogs(tmp_path: Path) -> None:
    ra, dec = _positions()
    catalog = tmp_path / "catalog.parquet"
    pd.DataFrame({"ra": ra, "dec": dec}).to_parquet(catalog)
    write_sky_counts(tmp_path, ra, dec)
    found = read_sky_counts(catalog, len(ra))
    assert found is not None and found.total == np.isfinite(ra).sum()
    assert read_sky_counts(catalog, 100) is None  # more objects than the survey holds
    stored = tmp_path / SKY_COUNTS_FILE
    ns = catalog.stat().st_mtime_ns - 10**9
    os.utime(stored, ns=(ns, ns))  # older than the catalog: rewritten since
    assert read_sky_counts(catalog, len(ra)) is None


def test_a_box_across_ra_0_reads_only_the_groups_it_meets(tmp_path: Path) -> None:
    ra, dec = _positions()
    path = tmp_path / "catalog.parquet"
    pd.DataFrame({"ra": ra, "dec": dec}).to_parquet(path, row_group_size=1_000)
    unwrap = ra_unwrapper(ra[np.isfinite(ra)])
    bounds = (-3.0, 1.0, 2.0, 2.5)  # unwrapped RA: 357 to 2 degrees
    expected = box_indices(unwrap(ra), dec, bounds)
    index = PagedSkyIndex(path)

    def inside(r: np.ndarray, d: np.ndarray) -> np.ndarray:
        mask = np.zeros(len(r), bool)
        mask[box_indices(unwrap(r), d, bounds)] = True
        return mask

    rows, got_ra, got_dec = index.rows_in((-3.0, 2.0), (1.0, 2.5), inside)
    np.testing.assert_array_equal(rows, expected)
    np.testing.assert_array_equal(got_dec, dec[expected])
    np.testing.assert_array_equal(got_ra, ra[expected])
    assert 0 < index.reads <= 5  # of 20 groups: those of the Dec band 1..2.5 (of -6..6)


def test_the_objects_layer_draws_a_bounded_order_and_still_counts_every_object(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.views import sky

    ra, dec = _positions()
    counts = count_pixels(ra, dec)
    order = counts.order_within(500)
    assert len(counts.at_order(order)[0]) <= 500 < len(counts.at_order(order + 1)[0])
    monkeypatch.setattr(sky, "DRAW_PIXELS", 500)
    drawn, c_ra, c_dec, objects = sky.drawn_counts(counts)
    assert drawn == order and len(objects) == len(c_ra) == len(c_dec) <= 500
    assert objects.sum() == counts.total  # coarser pixels, every object
