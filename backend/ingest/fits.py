"""``ingest fits``: a folder of FITS cutouts (2-D, 3-D cubes or one HDU per band) -> survey.

Two passes: headers first (layout, band count and names, size, sky position), so the band
count of the majority of files, the band names and the common size are known before any pixel
is written; then the pixels, file by file, brought to the common size by centre crop/pad or by
resampling. Files that do not fit are skipped with a reason, never fatal.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from backend.ingest.crossmatch import CatalogJoin, catalog_join
from backend.ingest.fits_read import (
    FITS_SUFFIXES,
    FitsCutout,
    FitsReadError,
    probe,
    read_pixels,
)
from backend.ingest.pipeline import Batch, check_target, progress_bar, write_survey
from backend.ingest.report import IngestError, IngestReport, Skipped, nothing_usable
from backend.ingest.resize import RESIZE_MODES, ResizeMode, fit_to_shape
from backend.ingest.sources import find_inputs, relative_name, stem, unique_ids

DEFAULT_HEADER_KEYS = ("OBJECT",)


def ingest_fits(
    path: str | Path,
    survey: str,
    *,
    size: int | None = None,
    resize: ResizeMode = "crop",
    bands: Sequence[str] | None = None,
    header_keys: Sequence[str] = DEFAULT_HEADER_KEYS,
    catalog: str | Path | None = None,
    id_column: str | None = None,
    match_radius: float | None = None,
    ra_column: str | None = None,
    dec_column: str | None = None,
    overwrite: bool = False,
    limit: int | None = None,
    root: Path | None = None,
    progress: bool = True,
    description: str = "",
    scheduler: Any = None,
) -> IngestReport:
    """Ingest the FITS cutouts under ``path`` (a folder, searched recursively, or one file).

    ``size``: common N x N size (default: the most common size among the files);
    ``resize``: "crop" (centre crop/pad, keeps the pixel scale) or "resample";
    ``bands``: survey band names, in the files' band order (default: from headers - BANDS,
    FILTERn, FILTER, BAND, EXTNAME - else b0, b1, ...); files whose headers name the same bands
    in another order are reordered, files naming other bands are skipped unless ``bands`` is
    given; ``header_keys``: header values kept as catalog columns (lower-cased names).
    The catalog options join a table by file stem (``id_column``) or sky position.
    The pixels are read per partition of files where ``scheduler`` says.
    """
    if resize not in RESIZE_MODES:
        raise IngestError(f"--resize {resize!r}: use one of {', '.join(RESIZE_MODES)}")
    if size is not None and size < 2:
        raise IngestError(f"--size {size}: must be at least 2 pixels")
    check_target(survey, overwrite, root)
    root_path = Path(path).expanduser()
    files, others = find_inputs(root_path, FITS_SUFFIXES, "FITS")
    join = catalog_join(catalog, id_column, match_radius, ra_column, dec_column)
    keys = tuple(k.strip().upper() for k in header_keys if k.strip())
    report = IngestReport(
        survey=survey,
        kind="fits",
        source=str(root_path),
        options={"size": size, "resize": resize, "bands": list(bands) if bands else None},
    )
    if others:
        report.notes.append(f"{others} files without a FITS suffix were ignored")

    cutouts = _scan(files, root_path, keys, report, progress, limit)
    if not cutouts:
        raise nothing_usable(report)
    n_bands = _majority([c.n_bands for c in cutouts])
    cutouts = _keep_band_count(cutouts, n_bands, root_path, report)
    survey_bands = _survey_bands(cutouts, n_bands, bands)
    cutouts = _keep_band_names(cutouts, survey_bands, bands is not None, root_path, report)
    if not cutouts:
        raise nothing_usable(report)
    shape = (size, size) if size else _majority([c.shape for c in cutouts])
    _check_positions(join, cutouts)
    report.n_inputs = report.n_skipped  # files skipped by the scan; the writer adds the rest

    return write_survey(
        _cutouts(cutouts, root_path, survey_bands, shape, resize, keys, scheduler),
        report,
        bands=survey_bands,
        image_shape=shape,
        total=len(cutouts),
        unit="file",
        join=join,
        pixel_scale=_pixel_scale(cutouts, shape, resize),
        description=description or f"FITS cutouts from {root_path}",
        overwrite=overwrite,
        root=root,
        limit=limit,
        progress=progress,
    )


# -- pass 1: headers ---------------------------------------------------------------------------
def _scan(
    files: list[Path],
    root: Path,
    keys: tuple[str, ...],
    report: IngestReport,
    progress: bool,
    limit: int | None,
) -> list[FitsCutout]:
    """Headers of ``files`` (with a ``limit``, only until that many are usable)."""
    cutouts: list[FitsCutout] = []
    with progress_bar(len(files), "scan FITS headers", "file", progress) as bar:
        for path in files:
            if limit is not None and len(cutouts) >= limit:
                break
            try:
                cutouts.append(probe(path, keys))
            except FitsReadError as exc:
                report.skip(relative_name(path, root), str(exc))
            bar.update(1)
    return cutouts


def _majority(values: list[Any]) -> Any:
    """The most common value; ties go to the one seen first."""
    counts = Counter(values)
    best = max(counts.values())
    return next(v for v in values if counts[v] == best)


def _keep_band_count(
    cutouts: list[FitsCutout], n_bands: int, root: Path, report: IngestReport
) -> list[FitsCutout]:
    kept = []
    for c in cutouts:
        if c.n_bands == n_bands:
            kept.append(c)
        else:
            report.skip(
                relative_name(c.path, root),
                f"{c.n_bands} band(s) ({c.layout}) where the survey has {n_bands} "
                "(the band count of most files)",
            )
    return kept


def _survey_bands(
    cutouts: list[FitsCutout], n_bands: int, bands: Sequence[str] | None
) -> list[str]:
    if bands is not None:
        names = [str(b).strip() for b in bands]
        if len(names) != n_bands or len(set(names)) != n_bands or not all(names):
            raise IngestError(
                f"--bands {','.join(names)}: need {n_bands} distinct names, one per band "
                "(in the files' band order)"
            )
        return names
    named = [tuple(c.bands) for c in cutouts if c.bands]
    return list(_majority(named)) if named else [f"b{i}" for i in range(n_bands)]


def _keep_band_names(
    cutouts: list[FitsCutout],
    survey_bands: list[str],
    forced: bool,
    root: Path,
    report: IngestReport,
) -> list[FitsCutout]:
    """Files naming other bands than the survey's are skipped (unless names were forced)."""
    if forced:
        return cutouts
    kept = []
    for c in cutouts:
        if c.bands is None or sorted(c.bands) == sorted(survey_bands):
            kept.append(c)
        else:
            report.skip(
                relative_name(c.path, root),
                f"bands {','.join(c.bands)} differ from the survey's {','.join(survey_bands)}",
            )
    return kept


def _check_positions(join: CatalogJoin | None, cutouts: list[FitsCutout]) -> None:
    if join is None or join.radius_arcsec is None:
        return
    if not any(np.isfinite(c.ra) and np.isfinite(c.dec) for c in cutouts):
        raise IngestError(
            f"cannot match {join.path} on the sky: none of the {len(cutouts)} FITS files has "
            "a position (no celestial WCS, no RA/DEC keys); join by --id-column instead"
        )


def _pixel_scale(
    cutouts: list[FitsCutout], shape: tuple[int, int], resize: ResizeMode
) -> float | None:
    """Median arcsec/pixel of the stored cutouts (resampling changes it by the zoom)."""
    scales = [
        c.pixel_scale * (c.width / shape[1] if resize == "resample" else 1.0)
        for c in cutouts
        if c.pixel_scale
    ]
    return float(np.median(scales)) if scales else None


# -- pass 2: pixels ----------------------------------------------------------------------------
#: FITS files read per task (one partition of the second pass).
FITS_PARTITION = 512


def _cutouts(
    cutouts: list[FitsCutout],
    root: Path,
    survey_bands: list[str],
    shape: tuple[int, int],
    resize: ResizeMode,
    keys: tuple[str, ...],
    scheduler: Any = None,
) -> Iterator[Batch | Skipped]:
    """The cutouts' pixels, in order: partitions of :data:`FITS_PARTITION` files read where
    ``scheduler`` says (:mod:`backend.pipeline.execution`; the workers must see the files)."""
    from backend.pipeline.execution import executor, partitions

    ids = unique_ids(stem(c.path, FITS_SUFFIXES) for c in cutouts)
    pairs = list(zip(cutouts, ids, strict=True))
    groups = [pairs[lo:hi] for lo, hi in partitions(len(pairs), FITS_PARTITION)]
    task = PixelsPartition(root, tuple(survey_bands), shape, resize, keys)
    with executor(scheduler) as ex:
        for items in ex.imap(task, groups):
            yield from items


@dataclass(frozen=True)
class PixelsPartition:
    """Pixels of a group of FITS cutouts as :class:`Batch` (or :class:`Skipped`) items."""

    root: Path
    survey_bands: tuple[str, ...]
    shape: tuple[int, int]
    resize: ResizeMode
    keys: tuple[str, ...]

    def __call__(self, group: list[tuple[FitsCutout, str]]) -> list[Batch | Skipped]:
        return [self._one(cutout, object_id) for cutout, object_id in group]

    def _one(self, cutout: FitsCutout, object_id: str) -> Batch | Skipped:
        name = relative_name(cutout.path, self.root)
        survey_bands = list(self.survey_bands)
        try:
            data = read_pixels(cutout)
            if cutout.bands is not None and len(cutout.bands) == len(survey_bands):
                order = [cutout.bands.index(b) for b in survey_bands if b in cutout.bands]
                if len(order) == len(survey_bands):
                    data = data[order]
            if not np.isfinite(data).any():
                raise FitsReadError("every pixel is NaN or infinite")
            data = fit_to_shape(data, self.shape, self.resize)
        except FitsReadError as exc:
            return Skipped(name, str(exc))
        except Exception as exc:  # one bad file never stops the ingestion
            return Skipped(name, f"cannot use the pixels ({type(exc).__name__}: {exc})")
        row: dict[str, Any] = {
            "object_id": object_id,
            "ra": cutout.ra,
            "dec": cutout.dec,
            "file": name,
            "radec_source": cutout.radec_source,
        }
        for key in self.keys:
            row[key.lower().replace("-", "_")] = cutout.header_values.get(key)
        return Batch(data[None], [row])
