"""The loop every ingestion shares: batches of cutouts in, one atomic survey out.

Readers yield :class:`Batch` (cutouts + catalog rows) or :class:`Skipped` items; this module
buffers them, applies the optional catalog join, appends to a :class:`SurveyWriter`, keeps the
report and the progress bar, and writes ``ingest_report.json`` into the survey folder before
the writer renames it into place. Any exception leaves no survey and no temporary folder.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from backend.ingest.crossmatch import CatalogJoin
from backend.ingest.report import REPORT_FILE, IngestReport, Skipped, nothing_usable
from backend.survey import SurveyError, SurveyWriter, survey_path, validate_survey_name
from backend.survey.meta import DisplaySettings

#: Output pixels one ingestion task (one partition) returns, at most (unless one object is more).
PARTITION_BYTES = 64 * 2**20


def partition_rows(object_bytes: int, at_least: int = 1) -> int:
    """Objects per ingestion partition: as many as fit in :data:`PARTITION_BYTES` of output
    pixels (``object_bytes`` each), a multiple of ``at_least`` (a read size), never fewer."""
    at_least = max(1, int(at_least))
    return at_least * max(1, PARTITION_BYTES // max(1, at_least * int(object_bytes)))


@dataclass
class Batch:
    """``images`` (n, C, H, W) with ``n`` catalog rows (a DataFrame or a list of row dicts);
    ``n_inputs`` is the number of progress units (files, rows) it consumed."""

    images: np.ndarray
    catalog: pd.DataFrame | list[dict[str, Any]]
    n_inputs: int = 1

    def __len__(self) -> int:
        return len(self.images)

    def head(self, n: int) -> Batch:
        rows = self.catalog.iloc[:n] if isinstance(self.catalog, pd.DataFrame) else self.catalog[:n]
        return Batch(self.images[:n], rows, self.n_inputs)


def check_target(name: str, overwrite: bool, root: Path | None) -> None:
    """Fail early (before a long scan) on a bad survey name or an existing survey."""
    validate_survey_name(name)
    path = survey_path(name, root)
    if path.exists() and not overwrite:
        raise SurveyError(
            f"survey {name!r} already exists at {path}; choose another name or pass --overwrite"
        )


def progress_bar(total: int | None, desc: str, unit: str, enabled: bool) -> tqdm:
    """A tqdm bar on stderr (hidden when disabled or when stderr is not a terminal)."""
    return tqdm(total=total, desc=desc, unit=unit, disable=None if enabled else True, leave=False)


def write_survey(
    items: Iterable[Batch | Skipped],
    report: IngestReport,
    *,
    bands: Sequence[str],
    image_shape: tuple[int, int],
    total: int | None = None,
    unit: str = "file",
    join: CatalogJoin | None = None,
    pixel_scale: float | None = None,
    display: DisplaySettings | None = None,
    description: str = "",
    overwrite: bool = False,
    root: Path | None = None,
    limit: int | None = None,
    progress: bool = True,
    batch_size: int = 256,
) -> IngestReport:
    """Write every batch of ``items`` into survey ``report.survey`` and return the report."""
    report.bands = [str(b) for b in bands]
    report.image_shape = [len(report.bands), int(image_shape[0]), int(image_shape[1])]
    pending: list[Batch] = []
    writer = SurveyWriter(
        report.survey,
        bands=report.bands,
        image_shape=image_shape,
        source=report.kind,
        pixel_scale=pixel_scale,
        display=display,
        description=description,
        overwrite=overwrite,
        root=root,
    )
    with writer, progress_bar(total, f"ingest {report.kind}", unit, progress) as bar:
        for item in items:
            if isinstance(item, Skipped):
                report.skipped.append(item)
                report.n_inputs += 1
                bar.update(1)
                continue
            report.n_inputs += item.n_inputs
            bar.update(item.n_inputs)
            room = None if limit is None else limit - report.n_written - _count(pending)
            if room is not None and room < len(item):
                item = item.head(room)
            pending.append(item)
            if _count(pending) >= batch_size:
                _flush(writer, pending, report, join)
            if limit is not None and report.n_written + _count(pending) >= limit:
                report.notes.append(f"stopped after --limit {limit} objects")
                break
        _flush(writer, pending, report, join)
        if report.n_written == 0:
            raise nothing_usable(report)
        if join is not None:
            report.catalog = join.summary()
            report.notes.extend(join.notes)
        report.path = str(writer.final_path)
        writer.extra["ingest"] = report.brief()
        writer.add_file(REPORT_FILE, report.to_json().encode())
    return report


def _count(pending: list[Batch]) -> int:
    return sum(len(b) for b in pending)


def _flush(
    writer: SurveyWriter, pending: list[Batch], report: IngestReport, join: CatalogJoin | None
) -> None:
    pending[:] = [b for b in pending if len(b)]
    if not pending:
        return
    images = np.concatenate([b.images for b in pending], axis=0)
    if all(isinstance(b.catalog, list) for b in pending):
        catalog = pd.DataFrame([row for b in pending for row in b.catalog])
    else:
        frames = [pd.DataFrame(b.catalog) for b in pending]
        catalog = pd.concat(frames, ignore_index=True)
    pending.clear()
    if join is not None:
        catalog = join.apply(catalog)
    bad = ~np.isfinite(images.reshape(len(images), -1))
    report.n_bad_objects += int(bad.any(axis=1).sum())
    report.n_bad_pixels += writer.append(images, catalog)
    report.n_written += len(images)
