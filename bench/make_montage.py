"""Montage of the GalSim demo survey: one row per class and per anomaly kind.

    .venv/bin/python bench/make_montage.py [--out PNG]

Stamps go through the survey store's own rendering (``default_display`` chosen from a sample of
normal objects, exactly as the survey writer does, then ``to_rgb``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.simulate.config import ANOMALY_KINDS, CLASSES
from backend.simulate.survey import DEFAULT_CONFIG, render_object
from backend.survey.render import default_display, to_rgb

LABEL_WIDTH = 170
DEFAULT_OUT = Path("docs/img/demo_montage.png")


def _font(size: int) -> ImageFont.ImageFont:
    for name in ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default()


def montage(per_row: int, seed: int, zoom: int, sample_size: int) -> Image.Image:
    bands = list(DEFAULT_CONFIG.bands)
    sample = np.stack([render_object(i, seed, anomaly="")[0] for i in range(sample_size)])
    display = default_display(bands, sample)
    scales = display.band_scales or {}
    rows = [(c, {"true_class": c, "anomaly": ""}) for c in CLASSES]
    rows += [(k, {"anomaly": k}) for k in ANOMALY_KINDS]
    cell = DEFAULT_CONFIG.stamp * zoom + 4
    canvas = Image.new("RGB", (LABEL_WIDTH + per_row * cell, len(rows) * cell + 30), "white")
    draw = ImageDraw.Draw(canvas)
    font, small = _font(15), _font(11)
    scale_note = ", ".join(f"{b}x{s:.2f}" for b, s in scales.items())
    draw.text(
        (6, 6),
        f"LatentSky GalSim demo survey, seed {seed}, display: Lupton "
        f"{'/'.join(display.rgb_bands)}, stretch {display.stretch:.1f}, Q {display.q:g}, "
        f"minimum {display.minimum:.2f}, band scales {scale_note}",
        fill="black",
        font=small,
    )
    for r, (label, kwargs) in enumerate(rows):
        y = 30 + r * cell
        kind = "class" if r < len(CLASSES) else "anomaly"
        draw.text((8, y + cell // 2 - 18), label, fill="black", font=font)
        draw.text((8, y + cell // 2 + 2), kind, fill="gray", font=small)
        for j in range(per_row):
            image, row = render_object(1000 * (r + 1) + j, seed, **kwargs)
            rgb = Image.fromarray(to_rgb(image, bands, display))
            rgb = rgb.resize((rgb.width * zoom, rgb.height * zoom), Image.Resampling.NEAREST)
            x = LABEL_WIDTH + j * cell
            canvas.paste(rgb, (x + 2, y + 2))
            draw.text((x + 4, y + 3), f"z={row['redshift']:.2f}", fill="white", font=small)
            if kind == "anomaly":
                draw.text((x + 4, y + cell - 17), row["true_class"], fill="white", font=small)
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="PNG path")
    parser.add_argument("--per-row", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--zoom", type=int, default=2)
    parser.add_argument("--sample", type=int, default=256, help="objects setting the stretch")
    args = parser.parse_args()
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    montage(args.per_row, args.seed, args.zoom, args.sample).save(out, optimize=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
