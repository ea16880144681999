"""HEALPix partitioning of a survey, done the way hats-import does it, with hats' own functions.

Every object gets its ``_healpix_29`` spatial index; objects are counted per HEALPix pixel, and
``hats.pixel_math.partition_stats.generate_alignment`` merges neighbouring pixels up the HEALPix
tree while a partition stays within ``max_rows`` objects (empty siblings dropped). Each
partition's rows are sorted by spatial index, as HATS readers expect.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hats.pixel_math import HealpixPixel
from hats.pixel_math.partition_stats import empty_histogram, generate_alignment
from hats.pixel_math.spatial_index import compute_spatial_index, spatial_index_to_healpix

from backend.hats.layout import MAPPING_ORDER, HatsError

MIN_MAPPING_ORDER = 7


@dataclass
class Partitioning:
    """Partitions of N objects: ``rows[k]`` are the survey rows of ``pixels[k]``."""

    spatial_index: np.ndarray  # (N,) int64 ``_healpix_29``
    pixels: list[HealpixPixel]
    rows: list[np.ndarray]
    histogram: np.ndarray  # objects per pixel at ``mapping_order`` (the point map)
    max_rows: int
    mapping_order: int  # order of ``histogram``: the coarsest at which every pixel fits


def partition(
    ra: np.ndarray,
    dec: np.ndarray,
    *,
    max_rows: int,
    max_order: int = MAPPING_ORDER,
    survey: str = "survey",
) -> Partitioning:
    """Partition objects at (``ra``, ``dec``) degrees into HEALPix pixels of order at most
    ``max_order`` holding at most ``max_rows`` objects each."""
    ra = np.asarray(ra, dtype=np.float64)
    dec = np.asarray(dec, dtype=np.float64)
    spatial = np.asarray(compute_spatial_index(ra, dec), dtype=np.int64)
    finest = spatial_index_to_healpix(spatial, target_order=max_order)
    occupied, counts = np.unique(finest, return_counts=True)
    if counts.max() > max_rows:
        raise HatsError(
            f"survey {survey}: {int(counts.max()):,} objects fall in one order-{max_order} "
            f"HEALPix pixel, more than --partition-rows {max_rows:,}; raise --partition-rows"
        )
    # Counting at order 10 costs ~15 s however small the survey (12.6 million bins), so the
    # objects are counted at the coarsest order where no pixel holds more than max_rows, but at
    # least at order 7 (LSDB's from_dataframe does the same), so that empty siblings can still
    # be dropped and a small field gets small partitions.
    for mapping_order in range(min(MIN_MAPPING_ORDER, max_order), max_order + 1):
        coarse, inverse = np.unique(
            occupied >> 2 * (max_order - mapping_order), return_inverse=True
        )
        coarse_counts = np.bincount(inverse, weights=counts).astype(np.int64)
        if coarse_counts.max() <= max_rows:
            break
    fine = finest >> 2 * (max_order - mapping_order)
    occupied = coarse
    histogram = empty_histogram(mapping_order)
    histogram[coarse] += coarse_counts
    alignment = generate_alignment(
        histogram,
        highest_order=mapping_order,
        lowest_order=0,
        threshold=max_rows,
        drop_empty_siblings=True,
    )
    # alignment[p] = (order, pixel, count) of the partition holding fine pixel p. Partitions are
    # disjoint, so the first fine pixel each covers is a key that sorts them in nested order.
    dest = {}
    for fine_pixel, target in zip(occupied, alignment[occupied], strict=True):
        pixel = HealpixPixel(int(target[0]), int(target[1]))
        dest[int(fine_pixel)] = (pixel.pixel << 2 * (mapping_order - pixel.order), pixel)
    key_of_fine = np.array([dest[int(p)][0] for p in occupied], dtype=np.int64)
    row_key = key_of_fine[np.searchsorted(occupied, fine)]
    order = np.lexsort((spatial, row_key))
    sorted_keys = row_key[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    stops = np.r_[starts[1:], len(order)]
    pixel_of_key = {key: pixel for key, pixel in dest.values()}
    pixels = [pixel_of_key[int(k)] for k in sorted_keys[starts]]
    rows = [order[a:b] for a, b in zip(starts, stops, strict=True)]
    return Partitioning(spatial, pixels, rows, histogram, max_rows, mapping_order)
