"""``survey.json``: what a survey is (bands, shape, pixel scale, source, display settings)."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from backend.errors import UserError

SCHEMA_VERSION = 1
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # whole name: fullmatch, never $


class SurveyError(UserError, ValueError):
    """A survey is missing, malformed, or asked for something it does not hold."""


def validate_survey_name(name: str) -> str:
    """Return ``name`` if it is a safe folder name (no paths, no dot-files), else raise."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or name in {".", ".."}:
        raise SurveyError(
            f"invalid survey name {name!r}: use 1-64 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return name


@dataclass
class DisplaySettings:
    """How multi-band pixels become an RGB picture (astropy Lupton or asinh stretch)."""

    rgb_bands: list[str]  # band names mapped to (R, G, B); one name repeated for mono
    mode: str = "lupton"  # "lupton" (multi-band astro), "asinh" (mono), "linear" (already RGB)
    stretch: float = 1.0  # Lupton/asinh linear-range scale, in pixel units
    q: float = 8.0  # Lupton softening
    minimum: float = 0.0
    origin: str = "lower"  # "lower": row 0 is the bottom (FITS, GalSim); "upper": PNG/JPEG
    band_scales: dict[str, float] | None = None  # per-band multipliers applied before the stretch


@dataclass
class SurveyMeta:
    """Contents of ``survey.json``."""

    name: str
    bands: list[str]
    image_shape: list[int]  # (C, H, W)
    count: int
    source: str
    pixel_scale: float | None = None  # arcsec / pixel, None when unknown
    created: str = ""
    dtype: str = "float32"
    schema_version: int = SCHEMA_VERSION
    display: DisplaySettings | None = None
    n_nonfinite_pixels: int = 0  # NaN/inf pixels replaced by 0 during ingestion
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_survey_name(self.name)
        if len(self.image_shape) != 3:
            raise SurveyError(f"survey {self.name}: image_shape must be (C, H, W)")
        if len(self.bands) != self.image_shape[0]:
            raise SurveyError(
                f"survey {self.name}: {len(self.bands)} band names for "
                f"{self.image_shape[0]} channels"
            )
        if isinstance(self.display, dict):
            self.display = DisplaySettings(**self.display)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2, default=_json_default) + "\n")

    @classmethod
    def read(cls, path: Path) -> SurveyMeta:
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise SurveyError(f"{path}: missing survey.json") from exc
        except json.JSONDecodeError as exc:
            raise SurveyError(f"{path}: not valid JSON ({exc})") from exc
        if raw.get("schema_version", 0) > SCHEMA_VERSION:
            raise SurveyError(
                f"{path}: schema version {raw['schema_version']} is newer than this "
                f"LatentSky understands ({SCHEMA_VERSION}); upgrade LatentSky"
            )
        known = set(cls.__dataclass_fields__)
        try:
            return cls(**{k: v for k, v in raw.items() if k in known})
        except TypeError as exc:
            raise SurveyError(f"{path}: {exc}") from exc


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
