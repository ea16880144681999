"""Joining a user's catalog (CSV, parquet, FITS/VOTable/ECSV table) onto ingested objects.

Two ways: by id (a catalog column equal to the object's id, e.g. the file stem) or by sky
position (astropy ``SkyCoord.match_to_catalog_sky`` within a radius in arcsec). Objects without
a counterpart keep NaN/empty catalog columns. A :class:`CatalogJoin` is built once (catalog read
and validated before any pixel is touched) and applied to each batch of catalog rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backend.ingest.report import IngestError

_RA_NAMES = ("ra", "ra_deg", "raj2000", "ra_icrs", "alpha_j2000", "radeg", "ra2000")
_DEC_NAMES = (
    "dec",
    "dec_deg",
    "dej2000",
    "decj2000",
    "de_icrs",
    "dec_icrs",
    "delta_j2000",
    "dedeg",
    "dec2000",
)
_ASTROPY_FORMATS = {
    ".fits": "fits",
    ".fit": "fits",
    ".fits.gz": "fits",
    ".vot": "votable",
    ".xml": "votable",
    ".ecsv": "ascii.ecsv",
}
SUFFIX = "_cat"  # appended to catalog columns whose names the ingested catalog already uses


def _columns_list(columns: Any) -> str:
    names = [str(c) for c in columns]
    shown = ", ".join(names[:40])
    return shown + (f", ... ({len(names)} in all)" if len(names) > 40 else "")


def read_table(path: str | Path, str_columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a catalog file into a DataFrame; ``str_columns`` are kept as text (ids).

    CSV/TSV/TXT via pandas, parquet via pyarrow, FITS/VOTable/ECSV tables via astropy (only
    one-dimensional columns are kept).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise IngestError(f"catalog {path}: no such file")
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        fmt = next((f for s, f in _ASTROPY_FORMATS.items() if name.endswith(s)), None)
        if fmt is not None:
            return _read_astropy(path, fmt)
        sep = "\t" if name.endswith((".tsv", ".tab")) else ","
        header = pd.read_csv(path, sep=sep, nrows=0, comment="#")
        keep = {c: str for c in str_columns if c in header.columns}
        return pd.read_csv(path, sep=sep, dtype=keep, comment="#", skipinitialspace=True)
    except IngestError:
        raise
    except Exception as exc:  # pandas/pyarrow/astropy raise many types for bad files
        raise IngestError(f"catalog {path}: cannot read it ({type(exc).__name__}: {exc})") from exc


def _read_astropy(path: Path, fmt: str) -> pd.DataFrame:
    from astropy.table import Table

    table = Table.read(path, format=fmt)
    flat = [n for n in table.colnames if table[n].ndim == 1]
    frame = table[flat].to_pandas()
    for col in frame.columns:  # FITS text columns arrive as bytes
        if frame[col].dtype == object and len(frame) and isinstance(frame[col].iloc[0], bytes):
            frame[col] = frame[col].str.decode("utf-8", errors="replace").str.strip()
    return frame


def id_strings(values: pd.Series) -> pd.Series:
    """Ids as text: integral floats lose their ``.0`` (a NaN in an int column makes floats);
    missing ids become ""."""
    if pd.api.types.is_float_dtype(values):
        finite = values.dropna()
        if len(finite) and np.all(np.mod(finite, 1) == 0):
            text = [str(int(v)) if pd.notna(v) else "" for v in values]
            return pd.Series(text, index=values.index, dtype=object)
    text = ["" if pd.isna(v) else str(v).strip() for v in values]
    return pd.Series(text, index=values.index, dtype=object)


def _pick_column(
    frame: pd.DataFrame,
    wanted: str | None,
    names: tuple[str, ...],
    what: str,
    path: Path,
    option: str,
) -> str:
    """``wanted`` if the catalog has it, else the first column named like ``names``."""
    if wanted is not None:
        if wanted not in frame.columns:
            raise IngestError(
                f"catalog {path} has no {what} column {wanted!r} "
                f"(available columns: {_columns_list(frame.columns)})"
            )
        return wanted
    lower = {str(c).lower(): c for c in frame.columns}
    for name in names:
        if name in lower:
            return str(lower[name])
    raise IngestError(
        f"catalog {path}: no {what} column found (looked for {', '.join(names)}); "
        f"name it with {option} (available columns: {_columns_list(frame.columns)})"
    )


def _degrees(values: pd.Series, hours: bool) -> np.ndarray:
    """Catalog coordinates in degrees: numbers as they are, sexagesimal text parsed."""
    numeric = np.array(pd.to_numeric(values, errors="coerce"), dtype=float)
    text = np.flatnonzero(np.isnan(numeric) & values.notna().to_numpy())
    if len(text):
        from astropy import units as u
        from astropy.coordinates import Angle

        unit = u.hourangle if hours else u.deg
        for k in text:
            try:
                numeric[k] = Angle(str(values.iloc[k]).strip(), unit=unit).degree
            except Exception:  # unparseable text stays NaN (never matched)
                continue
    return numeric


@dataclass
class CatalogJoin:
    """A catalog joined onto batches of ingested catalog rows, by id or by sky position."""

    path: Path
    table: pd.DataFrame
    id_column: str | None = None
    radius_arcsec: float | None = None
    ra_column: str | None = None
    dec_column: str | None = None
    n_objects: int = 0
    n_matched: int = 0
    notes: list[str] = field(default_factory=list)
    _coords: Any = None

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def by_id(cls, path: str | Path, id_column: str) -> CatalogJoin:
        """Join rows whose ``id_column`` equals the object's id (file stem / object_id)."""
        path = Path(path).expanduser()
        table = read_table(path, str_columns=(id_column,))
        if id_column not in table.columns:
            raise IngestError(
                f"catalog {path} has no id column {id_column!r} "
                f"(available columns: {_columns_list(table.columns)})"
            )
        ids = id_strings(table[id_column])
        dupes = ids.duplicated() & (ids != "")
        join = cls(path=path, table=table, id_column=id_column)
        if dupes.any():
            join.notes.append(
                f"catalog {path.name}: {int(dupes.sum())} repeated ids in {id_column!r}; "
                "the first row of each is used"
            )
        keep = (~dupes & (ids != "")).to_numpy()
        join.table = table.loc[keep].set_axis(ids[keep].to_numpy(), axis=0)
        join.table = join.table.drop(columns=[id_column])
        return join

    @classmethod
    def by_sky(
        cls,
        path: str | Path,
        radius_arcsec: float,
        ra_column: str | None = None,
        dec_column: str | None = None,
    ) -> CatalogJoin:
        """Join each object to its nearest catalog source within ``radius_arcsec``."""
        path = Path(path).expanduser()
        if not radius_arcsec or not np.isfinite(radius_arcsec) or radius_arcsec <= 0:
            raise IngestError(
                f"match radius must be a positive number of arcsec, not {radius_arcsec}"
            )
        return cls.by_sky_table(path, read_table(path), radius_arcsec, ra_column, dec_column)

    @classmethod
    def by_sky_table(
        cls,
        path: str | Path,
        table: pd.DataFrame,
        radius_arcsec: float,
        ra_column: str | None = None,
        dec_column: str | None = None,
    ) -> CatalogJoin:
        """:meth:`by_sky` on a table already read (``path`` names it in messages)."""
        from astropy import units as u
        from astropy.coordinates import SkyCoord

        path = Path(path)
        if not radius_arcsec or not np.isfinite(radius_arcsec) or radius_arcsec <= 0:
            raise IngestError(
                f"match radius must be a positive number of arcsec, not {radius_arcsec}"
            )
        table = table.reset_index(drop=True)
        ra_col = _pick_column(table, ra_column, _RA_NAMES, "RA", path, "--ra-column")
        dec_col = _pick_column(table, dec_column, _DEC_NAMES, "Dec", path, "--dec-column")
        ra = _degrees(table[ra_col], hours=True)
        dec = _degrees(table[dec_col], hours=False)
        ok = np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90)
        if not ok.any():
            raise IngestError(
                f"catalog {path}: no valid positions in columns {ra_col!r}/{dec_col!r} (degrees)"
            )
        join = cls(
            path=path,
            table=table.loc[ok].reset_index(drop=True),
            radius_arcsec=float(radius_arcsec),
            ra_column=ra_col,
            dec_column=dec_col,
        )
        if not ok.all():
            join.notes.append(
                f"catalog {path.name}: {int((~ok).sum())} rows without a valid position ignored"
            )
        join._coords = SkyCoord(ra[ok] * u.deg, dec[ok] * u.deg)
        return join

    # -- use ---------------------------------------------------------------------------------
    def apply(self, catalog: pd.DataFrame) -> pd.DataFrame:
        """``catalog`` (object_id, ra, dec, ...) with the matched catalog columns added."""
        catalog = catalog.reset_index(drop=True)
        if self.id_column is not None:
            ids = catalog["object_id"].astype(str).to_numpy()
            matched = pd.Index(self.table.index).get_indexer(ids) >= 0
            extra = self.table.reindex(ids).reset_index(drop=True)
            sep = None
        else:
            extra, matched, sep = self._sky_rows(catalog)
        self.n_objects += len(catalog)
        self.n_matched += int(matched.sum())
        out = _merge_columns(catalog, extra)
        if sep is not None:
            out["match_sep_arcsec"] = sep
        return out

    def _sky_rows(self, catalog: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        rows, sep = self.match_rows(catalog)
        matched = rows >= 0
        extra = self.table.reindex(np.where(matched, rows, -1)).reset_index(drop=True)
        return extra, matched, sep

    def match_rows(self, catalog: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Per object (``catalog`` ra/dec): the row of :attr:`table` nearest on the sky within
        the radius (-1: none) and its separation in arcsec (NaN: none)."""
        from astropy import units as u
        from astropy.coordinates import SkyCoord

        catalog = catalog.reset_index(drop=True)
        ra, dec = _float_column(catalog, "ra"), _float_column(catalog, "dec")
        have = np.isfinite(ra) & np.isfinite(dec)
        rows = np.full(len(catalog), -1)
        sep = np.full(len(catalog), np.nan)
        if have.any():
            ours = SkyCoord(ra[have] * u.deg, dec[have] * u.deg)
            idx, d2d, _ = ours.match_to_catalog_sky(self._coords)  # KD-tree cached on _coords
            d = d2d.to_value(u.arcsec)
            hit = d <= self.radius_arcsec
            rows[np.flatnonzero(have)[hit]] = idx[hit]
            sep[np.flatnonzero(have)[hit]] = d[hit]
        return rows, sep

    def summary(self) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "id_column": self.id_column,
            "radius_arcsec": self.radius_arcsec,
            "ra_column": self.ra_column,
            "dec_column": self.dec_column,
            "catalog_rows": len(self.table),
            "n_objects": self.n_objects,
            "n_matched": self.n_matched,
            "notes": self.notes,
        }


def _float_column(frame: pd.DataFrame, col: str) -> np.ndarray:
    if col not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)


def _merge_columns(catalog: pd.DataFrame, extra: pd.DataFrame) -> pd.DataFrame:
    """Add ``extra``'s columns to ``catalog``; names already used get the ``_cat`` suffix,
    except that catalog ra/dec fill positions the objects lack (e.g. PNG cutouts)."""
    extra = extra.copy()
    for col in ("ra", "dec"):
        if col in extra.columns:
            theirs = pd.to_numeric(extra[col], errors="coerce")
            ours = pd.to_numeric(catalog[col], errors="coerce") if col in catalog else None
            if ours is None or ours.isna().all():
                catalog[col] = theirs.to_numpy(dtype=float)
                extra = extra.drop(columns=[col])
            elif ours.isna().any():
                catalog[col] = ours.fillna(theirs).to_numpy(dtype=float)
    rename = {c: f"{c}{SUFFIX}" for c in extra.columns if c in catalog.columns}
    extra = extra.rename(columns=rename)
    return pd.concat([catalog, extra], axis=1)


def catalog_join(
    catalog: str | Path | None,
    id_column: str | None = None,
    match_radius: float | None = None,
    ra_column: str | None = None,
    dec_column: str | None = None,
) -> CatalogJoin | None:
    """The join the options ask for (None without ``catalog``); option mistakes raise."""
    if catalog is None:
        if id_column is not None or match_radius is not None:
            raise IngestError("--id-column and --match-radius need --catalog FILE")
        return None
    if id_column is not None and match_radius is not None:
        raise IngestError(
            "join the catalog either by id (--id-column) or by position (--match-radius), not both"
        )
    if id_column is not None:
        return CatalogJoin.by_id(catalog, id_column)
    if match_radius is not None:
        return CatalogJoin.by_sky(catalog, match_radius, ra_column, dec_column)
    raise IngestError(
        f"--catalog {catalog}: say how to join it: --id-column COL (the column holding the "
        "object ids, i.e. file stems) or --match-radius ARCSEC (nearest source on the sky)"
    )
