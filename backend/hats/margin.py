"""The margin cache of an export: for each partition, the objects just outside it.

LSDB cross-matches partition by partition; a source near a partition's edge can have its match
in the neighbouring partition, which it finds only through the right catalog's *margin cache*.
This computes the margin the way hats-import and LSDB do, with hats' functions: every catalog
partition and every pixel of the catalog's negative tree (the empty sky, so a source far from
any partition still sees objects across the edge) gets the pixels at ``margin_order`` that
border it (``hats.pixel_math.get_margin``), and the objects in those pixels are its margin.
``margin_order`` is the finest order whose pixels are still wider than the threshold.
"""

from __future__ import annotations

import hats.pixel_math.healpix_shim as hp
import numpy as np
from hats.pixel_math import HealpixPixel, get_margin
from hats.pixel_math.spatial_index import spatial_index_to_healpix

from backend.hats.layout import HatsError
from backend.hats.partition import Partitioning

MARGIN_ARCSEC = 5.0  # hats-import's and LSDB's default


def margin_order(threshold_arcsec: float, highest_order: int) -> int:
    """The order of the margin pixels for ``threshold_arcsec`` (finer than every partition)."""
    order = int(hp.margin2order(margin_thr_arcmin=threshold_arcsec / 60.0))
    if order <= highest_order or hp.order2mindist(order) * 60.0 < threshold_arcsec:
        raise HatsError(
            f"--margin-arcsec {threshold_arcsec:g}: too wide for partitions of order "
            f"{highest_order} (the margin must fit in pixels finer than the partitions); "
            "use a smaller margin or --partition-rows"
        )
    return order


def negative_tree(pixels: list[HealpixPixel]) -> list[HealpixPixel]:
    """The largest pixels covering the sky outside ``pixels`` (hats'
    ``compute_negative_tree_pixels``, which compiles a numba kernel first: 7 s a process)."""
    taken = {(p.order, p.pixel) for p in pixels}
    above = {(o, p.pixel >> 2 * (p.order - o)) for p in pixels for o in range(p.order)}
    found, todo = [], [(0, n) for n in range(12)]
    while todo:
        order, pixel = todo.pop()
        if (order, pixel) in taken:
            continue
        if (order, pixel) in above:
            todo.extend((order + 1, 4 * pixel + c) for c in range(4))
        else:
            found.append(HealpixPixel(order, pixel))
    return sorted(found, key=lambda p: (p.order, p.pixel))


def margin_partitions(
    parts: Partitioning, threshold_arcsec: float
) -> list[tuple[HealpixPixel, np.ndarray]]:
    """(pixel, survey rows sorted by spatial index) of every non-empty margin partition."""
    highest = max(p.order for p in parts.pixels)
    order = margin_order(threshold_arcsec, highest)
    pixels = [*parts.pixels, *negative_tree(parts.pixels)]
    margin_pixels, owners = [], []
    for k, pixel in enumerate(pixels):
        border = np.asarray(get_margin(pixel.order, pixel.pixel, order - pixel.order), np.int64)
        margin_pixels.append(border)
        owners.append(np.full(len(border), k, dtype=np.int64))
    border = np.concatenate(margin_pixels)
    owner = np.concatenate(owners)
    by_pixel = np.argsort(border, kind="stable")
    border, owner = border[by_pixel], owner[by_pixel]
    objects = spatial_index_to_healpix(parts.spatial_index, target_order=order)
    lo = np.searchsorted(border, objects, side="left")
    hi = np.searchsorted(border, objects, side="right")
    counts = hi - lo
    rows = np.repeat(np.arange(len(objects)), counts)
    # the pair index of each (object, owner) pair: lo of its object plus its rank among them
    rank = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    owners_of_rows = owner[np.repeat(lo, counts) + rank]
    found = []
    for k in np.unique(owners_of_rows):
        mine = rows[owners_of_rows == k]
        mine = mine[np.argsort(parts.spatial_index[mine], kind="stable")]
        found.append((pixels[int(k)], mine))
    return found
