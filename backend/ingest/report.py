"""What an ingestion did: objects written, inputs skipped (and why), pixels repaired."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backend.errors import UserError

REPORT_FILE = "ingest_report.json"
_SHOWN_SKIPS = 20  # skipped inputs listed on the terminal; the report file has them all


class IngestError(UserError):
    """A fatal ingestion problem (missing path, empty folder, bad catalog, nothing usable)."""


@dataclass(frozen=True)
class Skipped:
    """One input left out of the survey and the reason, e.g. ``("a.fits", "truncated")``."""

    source: str
    reason: str


@dataclass
class IngestReport:
    """Outcome of one ingestion; written as ``ingest_report.json`` inside the survey folder."""

    survey: str
    kind: str
    source: str
    options: dict[str, Any] = field(default_factory=dict)
    n_inputs: int = 0  # files (or rows, or detections) considered
    n_written: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    n_bad_pixels: int = 0  # NaN/inf pixels replaced by 0 in the stored cutouts
    n_bad_objects: int = 0  # objects with at least one such pixel
    catalog: dict[str, Any] | None = None  # catalog-join summary
    notes: list[str] = field(default_factory=list)
    bands: list[str] = field(default_factory=list)
    image_shape: list[int] = field(default_factory=list)  # (C, H, W)
    path: str = ""  # the survey folder, once committed
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def skip(self, source: str | Path, reason: str) -> None:
        self.skipped.append(Skipped(str(source), reason))

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["n_skipped"] = self.n_skipped
        return out

    def brief(self) -> dict[str, Any]:
        """The report without the per-input skip list (kept in ``survey.json`` ``extra``)."""
        out = self.to_dict()
        out.pop("skipped")
        out.pop("path")
        out["report_file"] = REPORT_FILE
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str) + "\n"

    def summary(self) -> str:
        """One line for the terminal."""
        c, h, w = self.image_shape or (0, 0, 0)
        parts = [
            f"ingested {self.n_written:,} objects into survey {self.survey!r} "
            f"({c}x{h}x{w}, bands {','.join(self.bands)}) from {self.n_inputs:,} {self._unit()}"
        ]
        parts.append(f"skipped {self.n_skipped:,}")
        if self.n_bad_pixels:
            parts.append(
                f"{self.n_bad_pixels:,} NaN/inf pixels set to 0 in {self.n_bad_objects:,} objects"
            )
        else:
            parts.append("no NaN/inf pixels")
        if self.catalog:
            parts.append(self.catalog_line())
        return "; ".join(parts)

    def catalog_line(self) -> str:
        cat = self.catalog or {}
        how = (
            f"by id column {cat['id_column']!r}"
            if cat.get("id_column")
            else f'within {cat.get("radius_arcsec")}" on the sky'
        )
        return (
            f"catalog {Path(cat.get('file', '')).name}: {cat.get('n_matched', 0):,} of "
            f"{self.n_written:,} objects matched {how}"
        )

    def skipped_lines(self, limit: int = _SHOWN_SKIPS) -> list[str]:
        """``skipped <source>: <reason>`` lines, the first ``limit`` of them."""
        lines = [f"skipped {s.source}: {s.reason}" for s in self.skipped[:limit]]
        if self.n_skipped > limit:
            where = f" (all in {Path(self.path) / REPORT_FILE})" if self.path else ""
            lines.append(f"... and {self.n_skipped - limit:,} more{where}")
        return lines

    def _unit(self) -> str:
        return {"galaxy10": "rows", "hats": "rows", "hdf": "detections"}.get(self.kind, "files")


def nothing_usable(report: IngestReport) -> IngestError:
    """The error for an ingestion whose every input was skipped."""
    reasons = "\n  ".join(report.skipped_lines(10)) or "no inputs"
    return IngestError(
        f"no usable input in {report.source} for survey {report.survey!r} "
        f"({report.n_skipped:,} skipped):\n  {reasons}"
    )
