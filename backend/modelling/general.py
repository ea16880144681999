"""The shipped general encoder, taken to a survey through an input adapter.

``assets/encoders/<name>/`` holds a SimCLR encoder pretrained on 64x64 colour composites
(``python -m backend pretrain``; model card in ``card.json``). Any survey reaches it through a
declared :class:`models.adapter.AdapterConfig`:

- pictures that are already colour (bands R, G, B: PNG/JPEG surveys) are centre-cropped to the
  region that holds the galaxies and resampled to 64 pixels;
- multi-band surveys become a Lupton composite with the survey's own display mapping (the
  three bands and stretch its thumbnails use), resampled to 64 pixels; a single band is shown
  as grey (the same band in R, G and B).

The adapter has no weights, so the pretrained weights stay valid for every survey.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from backend.survey import Survey

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "encoders"
DEFAULT_GENERAL = "general-v1"
NATIVE_SIZE = 64


def general_encoder_dir(name: str = DEFAULT_GENERAL) -> Path:
    return ASSETS / name


def general_available(name: str = DEFAULT_GENERAL) -> bool:
    folder = general_encoder_dir(name)
    return (folder / "weights.pt").is_file() and (folder / "model.json").is_file()


def is_colour_pictures(survey: Survey) -> bool:
    """PNG/JPEG surveys: three channels that are already colours, not photometric bands."""
    display = survey.meta.display
    return [b.upper() for b in survey.bands] == ["R", "G", "B"] or (
        display is not None and display.mode == "linear" and len(survey.bands) == 3
    )


def auto_crop(sample: np.ndarray, native: int = NATIVE_SIZE) -> int | None:
    """A centre crop (pixels) holding the galaxies of a sample of (n, C, H, W) cutouts.

    Twice the radius that holds 90% of the sky-subtracted light of the median cutout, rounded
    up to a multiple of ``native`` and at least ``native``; None when that is the whole cutout.
    """
    h, w = sample.shape[-2:]
    side = min(h, w)
    if side <= native:
        return None
    light = np.nanmedian(np.nan_to_num(sample.astype(np.float64)).sum(axis=1), axis=0)
    light = np.clip(light - np.median(light), 0.0, None)
    yy, xx = np.indices(light.shape)
    radius = np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2).ravel()
    order = np.argsort(radius)
    cumulative = np.cumsum(light.ravel()[order])
    if not cumulative[-1] > 0:
        return None
    r90 = float(radius[order][np.searchsorted(cumulative, 0.9 * cumulative[-1])])
    crop = int(np.ceil(2 * 2 * r90 / native) * native)  # 2 x diameter, a multiple of native
    crop = max(native, crop)
    return None if crop >= side else crop


def survey_adapter(
    survey: Survey, *, mode: str | None = None, size: int = NATIVE_SIZE, sample: Any = None
) -> Any:
    """The :class:`AdapterConfig` that takes ``survey``'s cutouts to a ``size``-pixel input.

    ``mode``: ``composite`` (what the general encoder reads) or ``bands`` (per-band input at
    the native size, e.g. for the autoencoder); default: composite.
    """
    from models.adapter import AdapterConfig

    bands = list(survey.bands)
    if sample is None:
        n = min(len(survey), 256)
        sample = np.asarray(survey.cutouts(np.linspace(0, len(survey) - 1, n).astype(int)))
    crop = auto_crop(sample, size)
    h = survey.image_shape[1]
    target = None if (crop or h) == size else size
    mode = mode or "composite"
    if mode == "bands" or (is_colour_pictures(survey) and mode == "composite"):
        return AdapterConfig(bands=bands, mode="bands", size=target, crop=crop)
    display = survey.meta.display
    if display is None:
        from backend.survey.render import default_display

        display = default_display(bands, sample)
    return AdapterConfig(
        bands=bands, mode="composite", size=target, crop=crop, rgb_bands=list(display.rgb_bands),
        band_scales=dict(display.band_scales or {}), stretch=float(display.stretch),
        q=float(display.q), minimum=float(display.minimum),
    )  # fmt: skip


def load_general_config(name: str = DEFAULT_GENERAL) -> dict[str, Any]:
    folder = general_encoder_dir(name)
    if not general_available(name):
        raise FileNotFoundError(
            f"no general encoder in {folder} (make it with `python -m backend pretrain`)"
        )
    return json.loads((folder / "model.json").read_text())


def general_encoder_for(survey: Survey, name: str = DEFAULT_GENERAL) -> Any:
    """The general encoder with ``survey``'s adapter (weights as shipped), in eval mode."""
    import torch

    from models import build_model

    config = load_general_config(name)
    adapter = survey_adapter(survey)
    normalization = {**config["normalization"], "bands": adapter.channels}
    config = {
        **config, "bands": adapter.bands, "adapter": adapter.to_dict(),
        "normalization": normalization,
    }  # fmt: skip
    model = build_model(config)
    state = torch.load(general_encoder_dir(name) / "weights.pt", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


def general_card(name: str = DEFAULT_GENERAL) -> dict[str, Any]:
    path = general_encoder_dir(name) / "card.json"
    return json.loads(path.read_text()) if path.is_file() else {}
