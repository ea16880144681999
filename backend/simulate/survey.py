"""Render objects and whole surveys: one object from (seed, index), chunks in parallel, a store.

Object ``i`` draws every random number from ``SeedSequence([seed, i])`` (separate streams for
its class, galaxy, anomaly, frame and noise), so a survey is identical whatever the number of
worker processes or chunk size, and forcing a class or anomaly leaves other streams unchanged.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import galsim
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from backend.simulate import detector
from backend.simulate.anomalies import HOST_CLASS, Injection, inject, make_host
from backend.simulate.config import (
    ANOMALY_KINDS,
    CLASS_FRACTIONS,
    CLASSES,
    SIMULATOR_VERSION,
    SurveyConfig,
)
from backend.simulate.galaxies import Context, Galaxy, build_galaxy
from backend.simulate.masks import MASKS_FILE, AnomalyMasks, edited_mask, light_mask
from backend.simulate.optics import GSPARAMS, Component, KRenderer
from backend.simulate.sed import PhotometryTable, build_table, counts_to_mag
from backend.simulate.shapes import sersic

DEFAULT_CONFIG = SurveyConfig()
SOURCE = "galsim-demo"
_TABLES: dict[tuple, PhotometryTable] = {}


def photometry_table(cfg: SurveyConfig) -> PhotometryTable:
    """The band/redshift table of this process (built once, or handed over by the parent)."""
    key = (cfg.bands, cfg.zeropoint)
    if key not in _TABLES:
        _TABLES[key] = build_table(cfg.bands, cfg.zeropoint)
    return _TABLES[key]


@lru_cache(maxsize=4)
def _renderer(stamp: int, pixel_scale: float, beta: float) -> KRenderer:
    return KRenderer(stamp, pixel_scale, beta)


def catalog_columns(cfg: SurveyConfig = DEFAULT_CONFIG) -> list[str]:
    """Catalog columns in order (``n_bad_pixels`` is added by the survey writer).

    Truth refers to the target object (for mergers, both galaxies and their tails); light added
    by an anomaly is excluded. ``abs_mag_r``: rest-frame r absolute AB magnitude before dust;
    ``sersic_n``: r-flux-weighted mean Sérsic index of the components (disks, arms: 1);
    ``bulge_sersic_n``: NaN without a bulge; ``half_light_radius``: arcsec, radius of the
    circle holding half the PSF-free r-band light; ``ellipticity``: 1 - b/a and
    ``position_angle``: degrees North (+y) through East (-x) in [0, 180), both of the main
    disk or spheroid; ``bulge_fraction``: observed r-band B/T; ``mag_<band>``: total AB
    magnitudes (dust included; zero point ``cfg.zeropoint`` for counts); ``psf_fwhm_<band>``:
    Moffat FWHM in arcsec.
    """
    return [
        "object_id", "ra", "dec", "true_class", "anomaly_type", "redshift", "abs_mag_r",
        "sersic_n", "bulge_sersic_n", "half_light_radius", "ellipticity", "position_angle",
        "bulge_fraction",
        *(f"mag_{b}" for b in cfg.bands),
        *(f"psf_fwhm_{b}" for b in cfg.bands),
    ]  # fmt: skip


def render_object(
    index: int,
    seed: int = 0,
    cfg: SurveyConfig = DEFAULT_CONFIG,
    *,
    true_class: str | None = None,
    anomaly: str | None = None,
    anomaly_fraction: float = 0.01,
    id_prefix: str = "demo",
) -> tuple[np.ndarray, dict]:
    """Render object ``index`` of survey ``seed``: a (C, H, W) float32 image and its catalog row.

    ``true_class`` forces the morphology and ``anomaly`` the anomaly kind ("" forces a normal
    object); left None they are drawn (class by :data:`CLASS_FRACTIONS`, an anomaly with
    probability ``anomaly_fraction``). ``strong_lens`` and ``ring_galaxy`` imply their class.
    """
    image, record, _ = render_object_with_mask(
        index, seed, cfg, true_class=true_class, anomaly=anomaly,
        anomaly_fraction=anomaly_fraction, id_prefix=id_prefix,
    )  # fmt: skip
    return image, record


def render_object_with_mask(
    index: int,
    seed: int = 0,
    cfg: SurveyConfig = DEFAULT_CONFIG,
    *,
    true_class: str | None = None,
    anomaly: str | None = None,
    anomaly_fraction: float = 0.01,
    id_prefix: str = "demo",
) -> tuple[np.ndarray, dict, np.ndarray | None]:
    """:func:`render_object` plus the (H, W) mask of the injected anomaly (None for a normal
    object; see :mod:`backend.simulate.masks`). The image is the same bit for bit, and the
    mask draws no random numbers."""
    streams = np.random.SeedSequence([int(seed), int(index)]).spawn(5)
    rng_cls, rng_gal, rng_anom, rng_frame, rng_noise = map(np.random.default_rng, streams)
    kind = _choose_anomaly(rng_anom, anomaly, anomaly_fraction)
    drawn = str(rng_cls.choice(CLASSES, p=np.array(list(CLASS_FRACTIONS.values()))))
    cls = HOST_CLASS.get(kind, true_class or drawn)
    if cls not in CLASSES:
        raise ValueError(f"unknown galaxy class {cls!r} (known: {', '.join(CLASSES)})")

    ctx = Context(cfg, photometry_table(cfg), galsim.BaseDeviate(int(rng_gal.integers(1, 2**31))))
    host = make_host(kind, rng_gal, ctx) if kind in HOST_CLASS else None
    host = host or build_galaxy(cls, rng_gal, ctx)
    offset = rng_frame.uniform(-0.5, 0.5, 2) * cfg.pixel_scale
    host = host.shifted(*offset)
    injection = inject(kind, host, rng_anom, ctx) if kind else Injection()
    field = _field_objects(rng_frame, ctx, host.truth["half_light_radius"])
    fwhm = np.asarray(cfg.seeing) * np.exp(rng_frame.normal(0, cfg.seeing_scatter))
    renderer = _renderer(cfg.stamp, cfg.pixel_scale, cfg.psf_beta)
    fwhm = np.array([renderer.quantise(f) for f in fwhm])

    scene = host.components + injection.components + field
    image, own = renderer.draw(scene, fwhm, intrinsic=(len(host.components), cfg.ref_band))
    truth = dict(host.truth)
    truth["half_light_radius"] = renderer.half_light_radius(own, tuple(offset))
    injected = _injected_light(renderer, injection, host, kind, fwhm) if kind else None
    if injection.direct:
        image += renderer.draw_direct(injection.direct, fwhm)
    np.maximum(image, 0.0, out=image)  # dust lanes are negative light: never below the sky
    detector.add_noise(image, cfg, rng_noise)
    before = image.copy() if kind else None
    detector.saturate(image, cfg.saturation)
    if before is not None and not injection.direct:
        before = image.copy()  # saturation of the target itself is not the anomaly's doing
    for effect in injection.effects:
        effect(image)
    mask = None
    if kind:
        mask = edited_mask(before, image, cfg.sky_sigma)
        if injected is not None:
            mask |= light_mask(injected, cfg.sky_sigma)

    ra, dec = _sky_position(rng_frame, cfg)
    record = {
        "object_id": f"{id_prefix}-{index:08d}",
        "ra": ra,
        "dec": dec,
        "true_class": cls,
        "anomaly_type": kind,
        **{k: float(v) for k, v in truth.items()},
    }
    mags = counts_to_mag(host.flux, cfg.zeropoint)
    record.update({f"mag_{b}": float(m) for b, m in zip(cfg.bands, mags, strict=True)})
    record.update({f"psf_fwhm_{b}": float(f) for b, f in zip(cfg.bands, fwhm, strict=True)})
    return image.astype(np.float32), {c: record[c] for c in catalog_columns(cfg)}, mask


def _injected_light(
    renderer: KRenderer, injection: Injection, host: Galaxy, kind: str, fwhm: np.ndarray
) -> np.ndarray | None:
    """Noise-free light the anomaly added (for a ring galaxy: its ring and knots), or None."""
    light = None
    comps = host.components[1:] if kind == "ring_galaxy" else injection.components
    if comps:
        light = renderer.draw(comps, fwhm)[0]
    if injection.direct:
        direct = renderer.draw_direct(injection.direct, fwhm)
        light = direct if light is None else light + direct
    return light


def _choose_anomaly(rng: np.random.Generator, forced: str | None, fraction: float) -> str:
    hit, pick = rng.random(), str(rng.choice(ANOMALY_KINDS))
    if forced is not None:
        if forced and forced not in ANOMALY_KINDS:
            raise ValueError(f"unknown anomaly {forced!r} (known: {', '.join(ANOMALY_KINDS)})")
        return forced
    return pick if hit < fraction else ""


def _sky_position(rng: np.random.Generator, cfg: SurveyConfig) -> tuple[float, float]:
    """Uniform on the sphere inside a square patch around (ra_center, dec_center)."""
    half = np.radians(cfg.patch_size / 2)
    d0 = np.radians(cfg.dec_center)
    sin_dec = rng.uniform(np.sin(d0 - half), np.sin(d0 + half))
    ra = cfg.ra_center + rng.uniform(-0.5, 0.5) * cfg.patch_size / np.cos(d0)
    return float(ra % 360.0), float(np.degrees(np.arcsin(sin_dec)))


def _field_objects(rng: np.random.Generator, ctx: Context, host_hlr: float) -> list[Component]:
    """Faint background galaxies and stars scattered around the target (not in the catalog)."""
    cfg, comps = ctx.cfg, []
    half = 0.48 * cfg.stamp * cfg.pixel_scale
    keep_out = max(2.5 * host_hlr, 2.0)

    def position() -> tuple[float, float]:
        for _ in range(20):
            x, y = rng.uniform(-half, half, 2)
            if np.hypot(x, y) > keep_out:
                break
        return float(x), float(y)

    for _ in range(rng.poisson(0.9)):
        z = rng.uniform(0.3, 1.3)
        n = float(rng.choice([1.0, 1.0, 4.0]))
        hlr = float(np.clip(rng.lognormal(np.log(4.0), 0.3) / ctx.table.scale(z), 0.2, 0.9))
        theta = rng.uniform(0, np.pi)
        prof = sersic(n, hlr).shear(q=rng.uniform(0.3, 1.0), beta=theta * galsim.radians)
        template = "E" if n > 2 else str(rng.choice(["Sbc", "Scd", "Im"]))
        flux = ctx.table.fluxes(template, rng.normal(-20.3, 1.0), z)
        comps.append(Component(prof.shift(*position()).withFlux(1.0), flux))
    for _ in range(rng.poisson(0.35)):
        star = galsim.DeltaFunction(gsparams=GSPARAMS).shift(*position())
        comps.append(
            Component(
                star, ctx.table.blackbody_fluxes(rng.uniform(3200, 8000), rng.uniform(18.0, 24.0))
            )
        )
    return comps


def render_chunk(
    lo: int,
    hi: int,
    seed: int,
    cfg: SurveyConfig,
    anomaly_fraction: float,
    id_prefix: str,
    masks: bool = False,
) -> tuple:
    """Objects ``lo..hi-1`` as an (n, C, H, W) float32 array and a catalog frame; with
    ``masks`` also ``(rows, masks)``: the anomalous rows (survey numbering) and their masks."""
    images, rows, mask_rows, mask_list = [], [], [], []
    for i in range(lo, hi):
        img, row, mask = render_object_with_mask(
            i, seed, cfg, anomaly_fraction=anomaly_fraction, id_prefix=id_prefix
        )
        images.append(img)
        rows.append(row)
        if mask is not None:
            mask_rows.append(i)
            mask_list.append(mask)
    catalog = pd.DataFrame.from_records(rows, columns=catalog_columns(cfg))
    if not masks:
        return np.stack(images), catalog
    stack = np.stack(mask_list) if mask_list else np.zeros((0, cfg.stamp, cfg.stamp), bool)
    return np.stack(images), catalog, (np.asarray(mask_rows, np.int64), stack)


def _init_worker(cfg: SurveyConfig, table: PhotometryTable) -> None:
    _TABLES[(cfg.bands, cfg.zeropoint)] = table


def _mp_context() -> multiprocessing.context.BaseContext:
    """ "spawn" (safe when the parent holds threads, e.g. torch or a web server), unless the
    main script cannot be re-imported by children (code piped on stdin): then "fork"."""
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if (
        main_file
        and not os.path.exists(main_file)
        and "fork" in multiprocessing.get_all_start_methods()
    ):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


@dataclass(frozen=True)
class RenderPartition:
    """Objects ``[lo, hi)`` rendered by :func:`render_chunk` (a task of an executor)."""

    seed: int
    cfg: SurveyConfig
    anomaly_fraction: float
    id_prefix: str
    masks: bool = False

    def __call__(self, rows: tuple[int, int]) -> tuple:
        return render_chunk(
            *rows, self.seed, self.cfg, self.anomaly_fraction, self.id_prefix, self.masks
        )


def iter_simulated(
    n: int,
    seed: int = 0,
    workers: int | None = None,
    chunk: int = 64,
    *,
    cfg: SurveyConfig = DEFAULT_CONFIG,
    anomaly_fraction: float = 0.01,
    id_prefix: str = "demo",
    scheduler: Any = None,
    masks: bool = False,
) -> Iterator[tuple]:
    """Yield ``(images, catalog)`` chunks of objects 0..n-1 in order, rendered by ``workers``
    processes (default: all cores; 1 renders in this process), or, given a ``scheduler``
    (:mod:`backend.pipeline.execution`), one task per chunk on it. Each object is seeded by
    its number, so the survey is the same whichever renders it. With ``masks`` each chunk
    also carries ``(rows, masks)`` of its anomalies (:func:`render_chunk`)."""
    bounds = [(lo, min(lo + chunk, n)) for lo in range(0, n, chunk)]
    if scheduler is not None:
        from backend.pipeline.execution import executor

        task = RenderPartition(seed, cfg, anomaly_fraction, id_prefix, masks)
        with executor(scheduler) as ex:
            yield from ex.imap(task, bounds)
        return
    workers = max(1, min(workers or os.cpu_count() or 1, len(bounds)))
    args = (seed, cfg, anomaly_fraction, id_prefix, masks)
    if workers == 1:
        for lo, hi in bounds:
            yield render_chunk(lo, hi, *args)
        return
    from concurrent.futures import ProcessPoolExecutor

    table = photometry_table(cfg)
    context = _mp_context()
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(cfg, table)
    ) as pool:
        pending: deque = deque()
        todo = iter(bounds)
        try:
            for lo, hi in todo:
                pending.append(pool.submit(render_chunk, lo, hi, *args))
                if len(pending) >= 2 * workers:
                    break
            while pending:
                result = pending.popleft().result()
                nxt = next(todo, None)
                if nxt is not None:
                    pending.append(pool.submit(render_chunk, *nxt, *args))
                yield result
        finally:  # an error or an abandoned generator: do not finish queued chunks
            for future in pending:
                future.cancel()


def simulate_survey(
    name: str = "demo",
    n: int = 10_000,
    seed: int = 0,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    root: Path | None = None,
    *,
    stamp: int = 64,
    anomaly_fraction: float = 0.01,
    scheduler: Any = None,
) -> Path:
    """Simulate ``n`` objects into survey ``name`` (atomically) and return its folder;
    rendered on ``scheduler``'s workers when given (else by ``workers`` processes)."""
    from backend.survey import SurveyWriter

    if n < 1:
        raise ValueError("n must be at least 1")
    cfg = replace(DEFAULT_CONFIG, stamp=stamp)
    extra = {
        "seed": seed,
        "simulator": "backend.simulate",
        "simulator_version": SIMULATOR_VERSION,
        "galsim_version": galsim.__version__,
        "class_fractions": dict(CLASS_FRACTIONS),
        "anomaly_fraction": anomaly_fraction,
        "anomaly_kinds": list(ANOMALY_KINDS),
        "config": {k: v for k, v in asdict(cfg).items()},
        "flux_units": f"counts; AB mag = {cfg.zeropoint} - 2.5 log10(counts)",
    }
    description = (
        f'Simulated {n:,} galaxies ({stamp}x{stamp} px, {cfg.pixel_scale}"/px, bands '
        f"{''.join(cfg.bands)}) with GalSim: bulge+disk Sérsic profiles, spiral arms, bars, "
        "dust lanes, mergers and injected anomalies; seed "
        f"{seed}."
    )
    start = time.perf_counter()
    with SurveyWriter(
        name,
        list(cfg.bands),
        (stamp, stamp),
        SOURCE,
        pixel_scale=cfg.pixel_scale,
        description=description,
        extra=extra,
        overwrite=overwrite,
        root=root,
    ) as writer:
        classes: dict[str, int] = {}
        kinds: dict[str, int] = {}
        mask_parts: list[tuple[np.ndarray, np.ndarray]] = []
        with tqdm(total=n, unit="gal", desc=f"simulate {name}", disable=not progress) as bar:
            for images, catalog, found in iter_simulated(
                n, seed, workers, cfg=cfg, anomaly_fraction=anomaly_fraction, id_prefix=name,
                scheduler=scheduler, masks=True,
            ):  # fmt: skip
                writer.append(images, catalog)
                mask_parts.append(found)
                for key, value in catalog["true_class"].value_counts().items():
                    classes[key] = classes.get(key, 0) + int(value)
                for key, value in catalog["anomaly_type"].value_counts().items():
                    if key:
                        kinds[key] = kinds.get(key, 0) + int(value)
                bar.update(len(images))
        masks = AnomalyMasks.from_parts(mask_parts, (stamp, stamp))
        writer.add_file(MASKS_FILE, masks.to_bytes())
        writer.extra.update(
            anomaly_masks=MASKS_FILE,
            class_counts=classes,
            anomaly_counts=kinds,
            seconds=round(time.perf_counter() - start, 1),
        )
    return writer.final_path


def draw_galaxy_only(galaxy: Galaxy, cfg: SurveyConfig = DEFAULT_CONFIG) -> np.ndarray:
    """Noiseless image of one galaxy at the median seeing (for checks and figures)."""
    renderer = _renderer(cfg.stamp, cfg.pixel_scale, cfg.psf_beta)
    return renderer.draw(galaxy.components, [renderer.quantise(f) for f in cfg.seeing])[0]
