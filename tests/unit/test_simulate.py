"""The GalSim demo survey simulator: determinism, classes, anomalies, physics, store, CLI."""

from __future__ import annotations

import galsim
import numpy as np
import pandas as pd
import pytest

from backend.simulate.anomalies import HOST_CLASS
from backend.simulate.config import ANOMALY_KINDS, CLASS_FRACTIONS, CLASSES
from backend.simulate.galaxies import Context, build_galaxy
from backend.simulate.optics import Component, KRenderer
from backend.simulate.sed import counts_to_mag
from backend.simulate.shapes import sersic
from backend.simulate.survey import (
    DEFAULT_CONFIG,
    catalog_columns,
    iter_simulated,
    photometry_table,
    render_object,
    simulate_survey,
)
from backend.survey import Survey, SurveyError

CFG = DEFAULT_CONFIG
BANDS = list(CFG.bands)


def _context(seed: int = 0) -> Context:
    return Context(CFG, photometry_table(CFG), galsim.BaseDeviate(seed + 1))


def _centre_snr(image: np.ndarray) -> float:
    """Signal-to-noise of the r-band flux in the central 12x12 pixels."""
    c = CFG.stamp // 2
    return float(image[1, c - 6 : c + 6, c - 6 : c + 6].sum() / (12 * CFG.sky_sigma[1]))


def test_render_object_shape_dtype_columns() -> None:
    image, row = render_object(0, seed=0)
    assert image.shape == (4, 64, 64) and image.dtype == np.float32
    assert np.isfinite(image).all()
    assert list(row) == catalog_columns(CFG)
    assert row["object_id"] == "demo-00000000"
    assert row["true_class"] in CLASSES and row["anomaly_type"] in ("", *ANOMALY_KINDS)


def test_same_seed_same_object_other_seed_other_object() -> None:
    a_img, a_row = render_object(7, seed=3)
    b_img, b_row = render_object(7, seed=3)
    c_img, _ = render_object(7, seed=4)
    assert np.array_equal(a_img, b_img)
    assert a_row == b_row or all(
        a == b or (a != a and b != b) for a, b in zip(a_row.values(), b_row.values(), strict=True)
    )
    assert not np.array_equal(a_img, c_img)


def test_survey_identical_whatever_workers_and_chunks() -> None:
    def run(workers: int, chunk: int) -> tuple[np.ndarray, pd.DataFrame]:
        parts = list(iter_simulated(20, seed=5, workers=workers, chunk=chunk))
        return np.concatenate([p[0] for p in parts]), pd.concat([p[1] for p in parts])

    img1, cat1 = run(1, 8)
    img2, cat2 = run(2, 6)
    assert img1.shape == (20, 4, 64, 64)
    assert np.array_equal(img1, img2)
    pd.testing.assert_frame_equal(cat1.reset_index(drop=True), cat2.reset_index(drop=True))
    assert list(cat1["object_id"]) == [f"demo-{i:08d}" for i in range(20)]


@pytest.mark.parametrize("cls", CLASSES)
def test_every_class_renders_with_sane_truth(cls: str) -> None:
    for index in range(3):
        image, row = render_object(index, seed=11, true_class=cls, anomaly="")
        assert row["true_class"] == cls and row["anomaly_type"] == ""
        assert np.isfinite(image).all()
        assert 0.0 < row["redshift"] < 1.5
        assert 0.05 < row["half_light_radius"] < 6.0
        assert 0.0 <= row["ellipticity"] < 1.0
        assert 0.0 <= row["position_angle"] < 180.0
        assert 0.0 <= row["bulge_fraction"] <= 1.0
        assert 0.5 <= row["sersic_n"] <= 6.0
        mags = [row[f"mag_{b}"] for b in BANDS]
        assert all(np.isfinite(mags)) and all(10 < m < 28 for m in mags)
        assert _centre_snr(image) > 10.0, "the target galaxy stands out of the noise"
    if cls == "elliptical":
        assert row["bulge_fraction"] == 1.0 and row["sersic_n"] >= 3.0
    if cls == "irregular":
        assert row["bulge_fraction"] == 0.0


@pytest.mark.parametrize("kind", ANOMALY_KINDS)
def test_every_anomaly_kind_renders(kind: str) -> None:
    image, row = render_object(3, seed=2, anomaly=kind)
    normal, normal_row = render_object(3, seed=2, anomaly="")
    assert row["anomaly_type"] == kind
    assert np.isfinite(image).all() and image.dtype == np.float32
    assert row["true_class"] == HOST_CLASS.get(kind, normal_row["true_class"])
    if kind in HOST_CLASS:
        return
    # Same host, frame and noise streams: the difference is the anomaly itself.
    diff = image.astype(np.float64) - normal
    per_band = np.abs(diff).reshape(4, -1).max(axis=1)
    sky = np.asarray(CFG.sky_sigma)
    assert (per_band > 5 * sky).any(), f"{kind} left no visible trace"
    if kind == "cosmic_ray":
        assert (per_band > 5 * sky).sum() == 1, "cosmic rays hit one band"
        assert np.max(diff) > 20 * sky.max()
    if kind == "bright_star":
        assert image.max() == pytest.approx(CFG.saturation), "the star's core saturates"
    if kind in ("supernova", "blended_pair"):
        assert (diff.sum(axis=(1, 2)) > 0).all(), "extra light in every band"


def test_strong_lens_arc_is_blue_ring_has_light_off_centre() -> None:
    lens, _ = render_object(4, seed=1, anomaly="strong_lens")
    ctx, rng = _context(), np.random.default_rng(0)
    from backend.simulate.anomalies import inject, make_host

    host = make_host("strong_lens", rng, ctx)
    arc = inject("strong_lens", host, rng, ctx).components[0].flux
    host_flux = host.flux
    assert arc[0] / arc[1] > host_flux[0] / host_flux[1], "arc bluer (g-r) than the lens"
    ring, _ = render_object(4, seed=1, anomaly="ring_galaxy")
    assert np.isfinite(lens).all() and np.isfinite(ring).all()


def test_anomaly_fraction_changes_only_anomalous_objects() -> None:
    rows0 = [render_object(i, seed=9, anomaly_fraction=0.0)[1] for i in range(30)]
    rows1 = [render_object(i, seed=9, anomaly_fraction=0.3)[1] for i in range(30)]
    assert all(r["anomaly_type"] == "" for r in rows0)
    n_anom = sum(bool(r["anomaly_type"]) for r in rows1)
    assert 2 <= n_anom <= 20
    for a, b in zip(rows0, rows1, strict=True):
        if b["anomaly_type"] not in HOST_CLASS:
            assert a["true_class"] == b["true_class"] and a["redshift"] == b["redshift"]


def test_class_mix_matches_fractions() -> None:
    assert sum(CLASS_FRACTIONS.values()) == pytest.approx(1.0)
    assert max(CLASS_FRACTIONS, key=CLASS_FRACTIONS.get) == "spiral"
    assert CLASS_FRACTIONS["merger"] < CLASS_FRACTIONS["elliptical"]


def test_ellipticals_redder_than_irregulars_at_same_redshift() -> None:
    ctx = _context()
    for z in (0.05, 0.15, 0.4):
        ell = [build_galaxy("elliptical", np.random.default_rng(i), ctx, z=z) for i in range(5)]
        irr = [build_galaxy("irregular", np.random.default_rng(i), ctx, z=z) for i in range(5)]

        def g_r(gals: list) -> float:
            mags = [counts_to_mag(g.flux, CFG.zeropoint) for g in gals]
            return float(np.mean([m[0] - m[1] for m in mags]))

        assert g_r(ell) > g_r(irr) + 0.3
    table = photometry_table(CFG)
    assert np.all(
        np.diff(
            [
                table.magnitudes("E", -21, z)[0] - table.magnitudes("E", -21, z)[1]
                for z in (0.02, 0.1, 0.3)
            ]
        )
        > 0
    ), "E gets redder with redshift"


def test_farther_galaxies_are_smaller_and_fainter() -> None:
    ctx = _context()
    near = build_galaxy("spiral", np.random.default_rng(1), ctx, z=0.05)
    far = build_galaxy("spiral", np.random.default_rng(1), ctx, z=0.25)
    assert far.truth["half_light_radius"] < near.truth["half_light_radius"] / 2
    assert far.flux[1] < near.flux[1] / 10


def test_fourier_renderer_matches_galsim_drawimage() -> None:
    renderer = KRenderer(64, 0.2)
    prof = galsim.Add([
        galsim.Sersic(n=4, half_light_radius=0.5).shear(q=0.7, beta=0.3 * galsim.radians),
        galsim.Exponential(half_light_radius=1.5).shear(q=0.4, beta=1 * galsim.radians)
        .shift(0.3, -0.2),
    ]).withFlux(1.0)  # fmt: skip
    flux = np.array([1000.0, 2000.0, 3000.0, 4000.0])
    fwhm = [0.8, 0.7, 0.6, 0.65]
    ours, _ = renderer.draw([Component(prof, flux)], fwhm)
    for b in range(4):
        ref = galsim.Convolve(prof.withFlux(flux[b]), galsim.Moffat(beta=3.0, fwhm=fwhm[b]))
        ref = ref.drawImage(nx=64, ny=64, scale=0.2).array
        assert np.abs(ours[b] - ref).max() < 1e-3 * ref.max()


def test_simulate_survey_end_to_end(tmp_path) -> None:
    path = simulate_survey("demo", n=60, seed=0, workers=1, progress=False, root=tmp_path)
    survey = Survey(path)
    assert len(survey) == 60 and survey.bands == BANDS
    assert survey.image_shape == (4, 64, 64)
    assert survey.meta.pixel_scale == pytest.approx(0.2)
    assert survey.meta.source == "galsim-demo"
    assert survey.meta.extra["seed"] == 0 and "simulator_version" in survey.meta.extra
    assert sum(survey.meta.extra["class_counts"].values()) == 60
    cat = survey.catalog
    for col in (
        "object_id",
        "ra",
        "dec",
        "true_class",
        "anomaly_type",
        "redshift",
        "sersic_n",
        "half_light_radius",
        "ellipticity",
        "position_angle",
        "bulge_fraction",
        "mag_g",
        "mag_r",
        "mag_i",
        "mag_z",
    ):
        assert col in cat.columns, col
    assert cat["object_id"].iloc[42] == "demo-00000042"
    assert (cat["redshift"] > 0).all() and np.isfinite(cat[["mag_g", "mag_z"]]).all().all()
    assert cat["ra"].between(147.0, 153.5).all() and cat["dec"].between(0.6, 3.8).all()
    first, _ = render_object(0, seed=0)
    assert np.array_equal(survey.cutout(0), first)
    with pytest.raises(SurveyError):
        simulate_survey("demo", n=5, seed=0, workers=1, progress=False, root=tmp_path)


def test_cli_simulate(tmp_path, monkeypatch, capsys) -> None:
    from backend.cli import main

    monkeypatch.setenv("LATENTSKY_HOME", str(tmp_path))
    args = ["simulate", "--survey", "clitest", "--n", "12", "--seed", "3", "--workers", "1"]
    assert main([*args, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "simulated 12 objects" in out and "classes:" in out
    survey = Survey.open("clitest", root=tmp_path / "surveys")
    assert len(survey) == 12 and survey.meta.extra["seed"] == 3
    assert main([*args, "--no-progress"]) == 2, "exists: refuses without --overwrite"
    assert main([*args, "--no-progress", "--overwrite"]) == 0
    assert main(["simulate", "--n", "0"]) == 2
    from backend.simulate.cli import simulate_survey as from_cli

    assert from_cli is simulate_survey, "the prepare command imports it from here"


@pytest.mark.parametrize(("n", "hlr"), [(1.0, 0.4), (1.0, 2.0), (4.0, 1.0)])
def test_half_light_radius_truth_matches_galsim(n: float, hlr: float) -> None:
    renderer = KRenderer(64, 0.2)
    prof = sersic(n, hlr).shift(0.05, -0.03)  # round, so the circular hlr is the profile's
    _, own = renderer.draw([Component(prof, np.ones(4))], [0.7] * 4, (1, 1))
    assert renderer.half_light_radius(own, (0.05, -0.03)) == pytest.approx(hlr, rel=0.03)
