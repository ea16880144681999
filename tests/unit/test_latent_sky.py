"""Sky positions: parsing (degrees, sexagesimal), nearest object within a radius, dedupe."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from backend.latent.errors import LatentError
from backend.latent.sky import SkyIndex, dedupe_on_sky, parse_position


@pytest.mark.parametrize(
    "text",
    [
        "150.1 2.2",
        "150.1, 2.2",
        "10:00:24 +02:12:00",
        "10h00m24s +2d12m00s",
        "10 00 24 +02 12 00",
        "150.1d 2.2",
        (150.1, 2.2),
    ],
)
def test_parse_degrees_and_sexagesimal(text: object) -> None:
    coord = parse_position(text)
    assert coord.ra.deg == pytest.approx(150.1) and coord.dec.deg == pytest.approx(2.2)


def test_negative_declination_in_sexagesimal() -> None:
    assert parse_position("10:00:24 -00:30:00").dec.deg == pytest.approx(-0.5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("400 2", r"RA 400 deg is outside \[0, 360\)"),
        ("-1 2", "RA -1 deg is outside"),
        ("150 95", r"Dec 95 deg is outside \[-90, 90\]"),
        ("25:00:00 +00:00:00", "cannot read sky position"),
        ("nowhere special", "cannot read sky position"),
        ("1 2 3", "give RA and Dec"),
    ],
)
def test_bad_positions_are_named(text: str, message: str) -> None:
    with pytest.raises(LatentError, match=message):
        parse_position(text)


def test_nearest_within_radius_and_none_outside() -> None:
    ra = np.array([150.0, 150.01, 150.02, np.nan])
    dec = np.array([2.0, 2.0, 2.0, 2.0])
    sky = SkyIndex(ra, dec)
    target = SkyCoord(150.01, 2.0, unit="deg").spherical_offsets_by(2 * u.arcsec, 1 * u.arcsec)
    found = sky.nearest(target, radius_arcsec=5)
    assert found is not None and found[0] == 1 and found[1] == pytest.approx(np.hypot(2, 1), 1e-3)
    assert sky.nearest(target, radius_arcsec=2) is None
    assert sky.nearest_any(target)[0] == 1
    with pytest.raises(LatentError, match="radius must be positive"):
        sky.nearest(target, 0)


def test_dedupe_keeps_the_best_of_each_close_group() -> None:
    ra = np.array([10.0, 10.0001, 10.0002, 20.0, 10.00005])
    keep = dedupe_on_sky(ra, np.zeros(5), radius_arcsec=0.5)
    # 1 is 0.36" from 0; 2 is 0.72" from 0 (kept) and near dropped 1; 4 is near 0.
    assert keep.tolist() == [True, False, True, True, False]
    assert dedupe_on_sky(ra, np.zeros(5), 0).all()
