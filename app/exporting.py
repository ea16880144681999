"""Selections and result tables as downloadable files (CSV, FITS, VOTable via astropy)."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import pandas as pd

from backend.latent.export import export_table

FORMATS = {"CSV": ("csv", ".csv"), "FITS": ("fits", ".fits"), "VOTable": ("votable", ".vot")}


def table_bytes(df: pd.DataFrame, fmt: str) -> io.BytesIO:
    """The file contents of ``df`` in format ``fmt`` (a key of :data:`FORMATS`)."""
    kind, suffix = FORMATS[fmt]
    with tempfile.TemporaryDirectory(prefix="latentsky-export-") as tmp:
        path = export_table(df, Path(tmp) / f"export{suffix}", kind)
        return io.BytesIO(path.read_bytes())


def file_name(stem: str, fmt: str) -> str:
    """``stem`` with the suffix of ``fmt`` and no characters a file system dislikes."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:80] or "export"
    return safe + FORMATS[fmt][1]
