"""Galactic extinction coefficients ``R_b = A_b / E(B-V)`` per band.

Sources (R_V = 3.1):

* SDSS ugriz, DECam (DES) grizY, UKIRT JHK: Schlafly & Finkbeiner 2011, ApJ 737, 103, table 6.
* HSC grizy: the values of the HSC pipeline (M. Tanaka), which follow the same recipe.

Band names are matched case-insensitively: ``"g"`` uses the default system; ``"HSC-G"``,
``"hsc_g"``, ``"decam_r"``, ``"sdss-i"``, ``"g_DECam"`` name the system; HST-style names
(``"F814W"``, ``"F160W"``) and other bands with a known central wavelength are interpolated
linearly in 1/λ between the SDSS and UKIRT anchors. Anything else gets 0 (no reddening) and a
warning, so an unknown band is never made redder than the data warrant.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

EXTINCTION_TABLES: dict[str, dict[str, float]] = {
    "sdss": {"u": 4.239, "g": 3.303, "r": 2.285, "i": 1.698, "z": 1.263},
    "decam": {"g": 3.237, "r": 2.176, "i": 1.595, "z": 1.217, "y": 1.058},
    "hsc": {"g": 3.240, "r": 2.276, "i": 1.633, "z": 1.263, "y": 1.075},
    "ukirt": {"j": 0.709, "h": 0.449, "k": 0.302},
}
SYSTEM_ALIASES = {"des": "decam", "legacy": "decam", "ls": "decam", "2mass": "ukirt"}

# Effective wavelengths (nm) of the anchor bands used to interpolate R(λ).
_ANCHORS_NM = np.array([355.1, 468.6, 616.6, 748.0, 893.2, 1250.0, 1635.0, 2200.0])
_ANCHORS_R = np.array([4.239, 3.303, 2.285, 1.698, 1.263, 0.709, 0.449, 0.302])

_SPLIT = re.compile(r"[\s_\-./:]+")
_HST = re.compile(r"^f(\d{3,4})(w|m|n|lp|x)?$")
_NM = re.compile(r"^(\d+(?:\.\d+)?)\s*(nm|a|å|um|µm)$")


def wavelength_coefficient(wavelength_nm: float) -> float:
    """``A/E(B-V)`` at a central wavelength (nm): linear in 1/λ between anchors, clamped."""
    inv = 1.0 / np.asarray(_ANCHORS_NM)
    x = 1.0 / float(wavelength_nm)
    return float(np.interp(x, inv[::-1], _ANCHORS_R[::-1]))


def _band_wavelength_nm(name: str) -> float | None:
    hst = _HST.match(name)
    if hst:
        number = int(hst.group(1))
        return number * 10.0 if number < 200 else float(number)  # F160W = 1.6 µm, F814W = 814 nm
    nm = _NM.match(name)
    if nm:
        value, unit = float(nm.group(1)), nm.group(2)
        return {"nm": value, "a": value / 10, "å": value / 10}.get(unit, value * 1000.0)
    return None


def extinction_coefficient(
    band: str, system: str = "decam", overrides: Mapping[str, float] | None = None
) -> float:
    """``R_b = A_b / E(B-V)`` for one band name (see the module docstring for the rules)."""
    if overrides and band in overrides:
        return float(overrides[band])
    name = str(band).strip().lower()
    parts = [p for p in _SPLIT.split(name) if p]
    system = SYSTEM_ALIASES.get(system.lower(), system.lower())
    if len(parts) == 1 and len(parts[0]) == 1:
        # a bare letter: the default system first, then any system that has it (e.g. "u", "J")
        tables = [EXTINCTION_TABLES.get(system, {}), *EXTINCTION_TABLES.values()]
        for table in tables:
            if parts[0] in table:
                return table[parts[0]]
    if len(parts) == 2:
        for sys_name, letter in (parts, parts[::-1]):
            table = EXTINCTION_TABLES.get(SYSTEM_ALIASES.get(sys_name, sys_name))
            if table and letter in table:
                return table[letter]
    wavelength = _band_wavelength_nm(parts[-1] if parts else name)
    if wavelength is not None:
        return wavelength_coefficient(wavelength)
    warnings.warn(
        f"no extinction coefficient known for band {band!r}; reddening leaves it unchanged",
        stacklevel=2,
    )
    return 0.0


def extinction_coefficients(
    bands: Sequence[str], system: str = "decam", overrides: Mapping[str, float] | None = None
) -> list[float]:
    """``A_b / E(B-V)`` for each band, in order."""
    return [extinction_coefficient(b, system, overrides) for b in bands]
