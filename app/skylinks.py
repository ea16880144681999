"""Links to look at a sky position in public viewers (Legacy Survey, ESASky, SIMBAD).

Links only: the server never fetches them. URLs are built with :mod:`urllib.parse` and written
into HTML escaped, opening in a new tab with ``rel="noopener noreferrer"``.
"""

from __future__ import annotations

import html
import math
from urllib.parse import urlencode

LEGACY = "https://www.legacysurvey.org/viewer"
ESASKY = "https://sky.esa.int/esasky/"
SIMBAD = "https://simbad.cds.unistra.fr/simbad/sim-coo"
SIMBAD_RADIUS_ARCSEC = 10


def sky_links(ra: float, dec: float) -> dict[str, str]:
    """Viewer name -> URL showing (``ra``, ``dec``) in degrees (ICRS); empty when the position
    is not finite or outside RA [0, 360), Dec [-90, 90]."""
    ra, dec = float(ra), float(dec)
    if not (math.isfinite(ra) and math.isfinite(dec)) or not -90 <= dec <= 90:
        return {}
    ra %= 360.0
    where = f"{ra:.6f} {dec:+.6f}"
    legacy = {"ra": f"{ra:.6f}", "dec": f"{dec:.6f}", "layer": "ls-dr10", "zoom": 16}
    esasky = {"target": where, "fov": "0.05", "cooframe": "J2000", "hips": "DSS2 color"}
    simbad = {
        "Coord": where, "CooFrame": "ICRS", "Radius": SIMBAD_RADIUS_ARCSEC,
        "Radius.unit": "arcsec", "submit": "submit query",
    }  # fmt: skip
    return {
        "Legacy Survey viewer": f"{LEGACY}?{urlencode(legacy)}",
        "ESASky": f"{ESASKY}?{urlencode(esasky)}",
        "SIMBAD": f"{SIMBAD}?{urlencode(simbad)}",
    }


def links_html(ra: float, dec: float) -> str:
    """The links of :func:`sky_links` as escaped anchors opening in a new tab ("" if none)."""
    anchors = [
        f'<a href="{html.escape(url, quote=True)}" target="_blank" '
        f'rel="noopener noreferrer">{html.escape(name)} ↗</a>'
        for name, url in sky_links(ra, dec).items()
    ]
    return " · ".join(anchors)
