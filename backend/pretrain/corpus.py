"""The pretraining corpus: colour composites of simulated and real galaxies at the encoder's
native size, stored as ``images.npy`` (N, 3, S, S) uint8 and ``catalog.parquet``.

Simulated objects are rendered per survey preset (:mod:`backend.pretrain.presets`) with the demo
simulator and turned into Lupton composites by the same function the encoder's input adapter
uses for multi-band surveys (:func:`models.adapter.lupton_composite`), with a display stretch
chosen from the data (:func:`backend.survey.render.default_display`). Real images (PNG/JPEG
folders) are centre-cropped and area-resampled like the adapter does. Written atomically.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from backend.pretrain.presets import preset
from backend.survey.render import default_display

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def composites(images: np.ndarray, bands: list[str], display: object) -> np.ndarray:
    """(N, C, H, W) fluxes -> (N, 3, H, W) Lupton composites in [0, 1] (float32)."""
    import torch

    from models.adapter import AdapterConfig, InputAdapter

    adapter = InputAdapter(
        AdapterConfig(
            bands=list(bands), mode="composite", rgb_bands=list(display.rgb_bands),
            band_scales=dict(display.band_scales or {}), stretch=float(display.stretch),
            q=float(display.q), minimum=float(display.minimum),
        )
    )  # fmt: skip
    with torch.inference_mode():
        return adapter(torch.from_numpy(np.ascontiguousarray(images, np.float32))).numpy()


def render_preset(
    name: str, n: int, seed: int, size: int = 64, workers: int | None = None
) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
    """Yield (composites, catalog) chunks of ``n`` objects rendered like survey ``name``."""
    from backend.simulate.survey import iter_simulated

    cfg = replace(preset(name), stamp=size)
    display = None
    for images, catalog in iter_simulated(
        n, seed, workers, cfg=cfg, anomaly_fraction=0.05, id_prefix=f"sim-{name}"
    ):
        if display is None:  # one stretch per preset, from its first chunk
            display = default_display(list(cfg.bands), images)
        catalog = catalog[["object_id", "true_class", "anomaly_type"]].assign(
            source="galsim", preset=name
        )
        yield composites(images, list(cfg.bands), display), catalog


def real_image_files(folder: Path) -> list[Path]:
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"{folder}: no PNG or JPEG images")
    return files


def load_real(path: Path, size: int, crop: int) -> np.ndarray:
    """One RGB picture -> (3, size, size) in [0, 1]: centre crop, then area resampling."""
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")
        w, h = img.size
        side = min(crop, w, h)
        left, top = (w - side) // 2, (h - side) // 2
        img = img.crop((left, top, left + side, top + side)).resize(
            (size, size), Image.Resampling.BOX
        )
        return np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0


def build_corpus(
    out: Path,
    *,
    presets: Iterable[str],
    n_per_preset: int,
    real: Iterable[Path] = (),
    seed: int = 0,
    size: int = 64,
    real_crop: int = 128,
    workers: int | None = None,
    command: str = "",
) -> Path:
    """Render every preset and read every real folder into ``out`` (replaced atomically)."""
    out = Path(out)
    tmp = out.parent / f".incoming-{out.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        chunks, tables = [], []
        presets = list(presets)
        for k, name in enumerate(presets):
            bar = tqdm(total=n_per_preset, desc=f"render {name}", unit="obj")
            for images, catalog in render_preset(
                name, n_per_preset, seed + 1000 * k, size, workers
            ):
                chunks.append(np.round(images * 255).astype(np.uint8))
                tables.append(catalog)
                bar.update(len(images))
            bar.close()
        for folder in real:
            files = real_image_files(Path(folder))
            images = np.stack(
                [load_real(f, size, real_crop) for f in tqdm(files, desc=f"read {folder}")]
            )
            chunks.append(np.round(images * 255).astype(np.uint8))
            tables.append(
                pd.DataFrame({
                    "object_id": [f.stem for f in files], "true_class": "", "anomaly_type": "",
                    "source": "real", "preset": _folder_label(Path(folder)),
                })
            )  # fmt: skip
        np.save(tmp / "images.npy", np.concatenate(chunks))
        pd.concat(tables, ignore_index=True).to_parquet(tmp / "catalog.parquet", index=False)
        if command:
            (tmp / "command.txt").write_text(command + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _folder_label(folder: Path) -> str:
    """A readable name for a folder of pictures (``.../sdss_gz1/images`` -> ``sdss_gz1``)."""
    folder = folder.resolve()
    return folder.parent.name if folder.name in ("images", "img", "pictures") else folder.name


def load_corpus(folder: Path) -> tuple[np.ndarray, pd.DataFrame]:
    """(images as float32 in [0, 1], catalog) of a corpus folder."""
    folder = Path(folder)
    if not (folder / "images.npy").is_file():
        raise FileNotFoundError(f"{folder}: no pretraining corpus (images.npy) here")
    images = np.load(folder / "images.npy").astype(np.float32) / 255.0
    return images, pd.read_parquet(folder / "catalog.parquet")
