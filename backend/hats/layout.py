"""Names shared by the HATS export and ingestion: columns, folders, the sidecar file."""

from __future__ import annotations

from pathlib import Path

from hats.pixel_math import HealpixPixel

from backend.errors import UserError

CUTOUTS_DIR = "cutouts"
CUTOUT_FILE_COLUMN = "cutout_file"  # path of the partition's cutout array, relative to the catalog
CUTOUT_ROW_COLUMN = "cutout_row"  # row of the object's cutout in that array
SURVEY_INDEX_COLUMN = "survey_index"  # the object's position in the exported survey
SIDECAR_FILE = "latentsky.json"
SIDECAR_FORMAT = "latentsky-hats"
SIDECAR_VERSION = 1
DEFAULT_PARTITION_ROWS = 250_000  # ~0.5 GB of catalog and 128-d embeddings per partition
MAPPING_ORDER = 10  # the finest HEALPix order a partition can have (hats-import's default)


class HatsError(UserError, ValueError):
    """A survey cannot be exported as HATS, or a folder is not a usable HATS catalog."""


def cutout_relpath(pixel: HealpixPixel) -> str:
    """``cutouts/order=K/dir=D/npix=N.zarr``: the cutout array of one partition (not named
    ``Norder=``/``Dir=``/``Npix=``: hats' validation takes any such path for a partition)."""
    return f"{CUTOUTS_DIR}/order={pixel.order}/dir={pixel.dir}/npix={pixel.pixel}.zarr"


def cutout_path(base: Path, relpath: str) -> Path:
    """The cutout array ``relpath`` under ``base``, refusing paths that leave it."""
    base = Path(base)
    target = (base / relpath).resolve()
    if not target.is_relative_to(base.resolve()):
        raise HatsError(f"{base}: cutout path {relpath!r} points outside the catalog")
    return target
