"""Ingestion of the formats users bring: FITS cutouts, PNG/JPEG, Galaxy10 HDF5, the HDF.

Each ``ingest_*`` function writes one survey atomically (through ``SurveyWriter``), skips bad
inputs with a reason and returns an :class:`IngestReport`. Submodules are imported on first use
so ``import backend.ingest`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ingest_fits": "backend.ingest.fits",
    "ingest_images": "backend.ingest.images",
    "ingest_galaxy10": "backend.ingest.galaxy10",
    "ingest_hdf": "backend.ingest.hdf",
    "CatalogJoin": "backend.ingest.crossmatch",
    "IngestReport": "backend.ingest.report",
    "IngestError": "backend.ingest.report",
    "Skipped": "backend.ingest.report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'backend.ingest' has no attribute {name!r}")
