"""Astronomy augmentations on batched (B, C, H, W) tensors in flux units (before normalisation).

Geometric operations (rotation, flips, jitter, zoom) move all bands together, as the sky does;
photometric ones (PSF blur, sky noise, reddening) act on each band separately. Every operation
keeps the shape. Following Hayat et al. 2021 and Stein et al. 2021 (self-supervised learning on
SDSS / DECaLS cutouts): random rotation and flips, jitter-and-crop, Galactic reddening, added
sky noise, plus a small zoom and a PSF broadening.

Units are explicit: angles in degrees, shifts in pixels, PSF widths as FWHM in arcsec converted
to a Gaussian sigma in pixels with :func:`fwhm_to_sigma_pixels` (needs the pixel scale in
arcsec/pixel), noise in units of each image's own robust noise, reddening as E(B-V) in
magnitudes with ``A_b = R_b * E(B-V)`` (see :mod:`models.extinction`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.errors import BandMismatchError
from models.extinction import EXTINCTION_TABLES, SYSTEM_ALIASES, extinction_coefficients
from models.normalize import robust_sigma

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # 2.3548
PADDING_MODES = ("reflection", "zeros", "border")
NOISE_PIXELS = 1024  # pixels per band used to measure each image's noise level


@dataclass
class AugmentConfig:
    """Parameters of the random augmentations (ranges are sampled uniformly per image).

    rotation_deg: rotation angle drawn from [-rotation_deg, +rotation_deg] degrees
        (180 = any angle).
    flip: random horizontal and vertical flips, each with probability 1/2.
    jitter_pixels: integer translation drawn from [-jitter_pixels, +jitter_pixels] per axis,
        i.e. a random crop re-centred by up to that many pixels, keeping the size.
    zoom: magnification drawn log-uniformly from [1/(1+zoom), 1+zoom]; 0 disables.
    padding: how pixels that come from outside the stamp are filled: "reflection", "zeros" or
        "border".
    blur_fwhm_arcsec: (low, high) FWHM in arcsec of an extra Gaussian PSF, drawn independently
        per image and per band; needs ``pixel_scale_arcsec``.
    pixel_scale_arcsec: pixel scale in arcsec/pixel, used only to convert the blur FWHM.
    noise_sigma: (low, high) standard deviation of added Gaussian noise, in units of each
        image's robust per-band noise (1.4826 MAD), drawn per image and per band.
    ebv_range: (low, high) E(B-V) in magnitudes, drawn per image (one sightline: same for all
        bands); band b is multiplied by 10**(-0.4 * R_b * E(B-V)).
    extinction_system: default photometric system for bare band letters ("decam", "sdss",
        "hsc", "ukirt").
    extinction_coeffs: per-band R_b overrides by band name.
    """

    rotation_deg: float = 180.0
    flip: bool = True
    jitter_pixels: int = 4
    zoom: float = 0.0
    padding: str = "reflection"
    blur_fwhm_arcsec: tuple[float, float] = (0.0, 0.0)
    pixel_scale_arcsec: float | None = None
    noise_sigma: tuple[float, float] = (0.0, 0.0)
    ebv_range: tuple[float, float] = (0.0, 0.0)
    extinction_system: str = "decam"
    extinction_coeffs: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.blur_fwhm_arcsec = _pair("blur_fwhm_arcsec", self.blur_fwhm_arcsec, minimum=0.0)
        self.noise_sigma = _pair("noise_sigma", self.noise_sigma, minimum=0.0)
        self.ebv_range = _pair("ebv_range", self.ebv_range)
        self.extinction_coeffs = {str(k): float(v) for k, v in self.extinction_coeffs.items()}
        if self.padding not in PADDING_MODES:
            raise ValueError(f"padding {self.padding!r}: use one of {PADDING_MODES}")
        if self.rotation_deg < 0 or self.jitter_pixels < 0 or self.zoom < 0:
            raise ValueError("rotation_deg, jitter_pixels and zoom must be >= 0")
        if self.blur_fwhm_arcsec[1] > 0 and not (self.pixel_scale_arcsec or 0) > 0:
            raise ValueError(
                "blur_fwhm_arcsec is in arcsec: give pixel_scale_arcsec (arcsec/pixel) too"
            )
        system = SYSTEM_ALIASES.get(self.extinction_system.lower(), self.extinction_system.lower())
        if system not in EXTINCTION_TABLES:
            raise ValueError(
                f"extinction_system {self.extinction_system!r}: use one of "
                f"{sorted(EXTINCTION_TABLES) + sorted(SYSTEM_ALIASES)}"
            )

    @classmethod
    def none(cls) -> AugmentConfig:
        """Identity: no augmentation."""
        return cls(rotation_deg=0.0, flip=False, jitter_pixels=0)

    @classmethod
    def geometric(cls, jitter_pixels: int = 2) -> AugmentConfig:
        """Rotations, flips and a small jitter: keeps colours, sizes and noise (for regressors)."""
        return cls(jitter_pixels=jitter_pixels)

    @classmethod
    def contrastive(cls, pixel_scale_arcsec: float | None = None) -> AugmentConfig:
        """The SimCLR default: geometry, zoom, noise, mild reddening, PSF when scale known.

        Survey cutouts are centred on their detection, so a small jitter (2 px) is enough; the
        zoom range (x1/1.3 to x1.3) makes the views differ in apparent size as well as
        orientation. On the demo survey both gave better linear probes than 4-8 px and x1.1
        (x1.5 was as good as x1.3; ``bench/bench_encoder_budget.py``).
        """
        return cls(
            jitter_pixels=2,
            zoom=0.3,
            noise_sigma=(0.0, 1.0),
            ebv_range=(0.0, 0.1),
            blur_fwhm_arcsec=(0.0, 0.5) if pixel_scale_arcsec else (0.0, 0.0),
            pixel_scale_arcsec=pixel_scale_arcsec,
        )

    @classmethod
    def composite(cls, flip: bool = False) -> AugmentConfig:
        """SimCLR views of colour composites (RGB in [0, 1], no physical bands or pixel scale).

        Geometry, zoom, noise and a blur in pixels (``pixel_scale_arcsec=1``: FWHM given in
        pixels); no reddening, since R, G, B are not photometric bands. No flips by default, so
        the representation keeps mirror-asymmetric information (spiral winding direction).
        """
        return cls(
            flip=flip,
            jitter_pixels=2,
            zoom=0.3,
            noise_sigma=(0.0, 1.0),
            ebv_range=(0.0, 0.0),
            blur_fwhm_arcsec=(0.0, 1.5),
            pixel_scale_arcsec=1.0,
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("blur_fwhm_arcsec", "noise_sigma", "ebv_range"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> AugmentConfig:
        if data is None:
            return cls.none()
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown augmentation parameters: {sorted(unknown)}")
        return cls(**data)


def _pair(name: str, value: Any, minimum: float | None = None) -> tuple[float, float]:
    low, high = (float(value), float(value)) if isinstance(value, (int, float)) else value
    low, high = float(low), float(high)
    if high < low or (minimum is not None and low < minimum):
        raise ValueError(
            f"{name}: need {minimum if minimum is not None else '-inf'} <= low <= high"
        )
    return low, high


# -- functional operations ---------------------------------------------------------------------
def fwhm_to_sigma_pixels(fwhm_arcsec: Tensor | float, pixel_scale_arcsec: float) -> Tensor:
    """Gaussian sigma in PIXELS for a FWHM in ARCSEC: ``fwhm / 2.3548 / pixel_scale``."""
    if not pixel_scale_arcsec > 0:
        raise ValueError(f"pixel scale must be positive arcsec/pixel, got {pixel_scale_arcsec}")
    return torch.as_tensor(fwhm_arcsec, dtype=torch.float32) / FWHM_PER_SIGMA / pixel_scale_arcsec


def affine_transform(
    x: Tensor,
    angle_deg: Tensor | float = 0.0,
    *,
    zoom: Tensor | float = 1.0,
    shift_pixels: Tensor | None = None,
    flip_x: Tensor | None = None,
    flip_y: Tensor | None = None,
    padding: str = "reflection",
) -> Tensor:
    """Rotate counter-clockwise by ``angle_deg`` (same sense as ``torch.rot90(x, 1, (-2, -1))``),
    magnify by ``zoom``, shift by ``shift_pixels`` (B, 2) as (dx, dy) in pixels and flip, all
    about the stamp centre, in one bilinear ``grid_sample`` per batch. Per-image parameters are
    (B,) tensors or scalars.
    """
    b, _, h, w = x.shape
    opts = {"device": x.device, "dtype": torch.float32}
    theta = torch.deg2rad(torch.as_tensor(angle_deg, **opts).expand(b))
    inv_zoom = 1.0 / torch.as_tensor(zoom, **opts).expand(b)
    cos, sin = torch.cos(theta) * inv_zoom, torch.sin(theta) * inv_zoom
    sx = 1.0 - 2.0 * flip_x.to(**opts) if flip_x is not None else torch.ones(b, **opts)
    sy = 1.0 - 2.0 * flip_y.to(**opts) if flip_y is not None else torch.ones(b, **opts)
    # Output pixel (u, v) samples input pixel A @ (u, v) - shift (pixel units, origin at centre);
    # A = flip @ R(theta) / zoom, expressed in grid_sample's normalised [-1, 1] coordinates.
    a11, a12 = sx * cos, sx * -sin * (h / w)
    a21, a22 = sy * sin * (w / h), sy * cos
    theta_mat = torch.stack([a11, a12, a21, a22], dim=-1).view(b, 2, 2)
    if shift_pixels is None:
        offset = torch.zeros(b, 2, **opts)
    else:
        shift = shift_pixels.to(**opts)
        offset = -torch.stack([shift[:, 0] * 2.0 / w, shift[:, 1] * 2.0 / h], dim=-1)
    matrix = torch.cat([theta_mat, offset[:, :, None]], dim=2)
    grid = F.affine_grid(matrix, list(x.shape), align_corners=False)
    out = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode=padding, align_corners=False)
    return out.to(x.dtype)


def rotate(x: Tensor, angle_deg: Tensor | float, padding: str = "reflection") -> Tensor:
    """Counter-clockwise rotation by ``angle_deg`` about the centre (per image when (B,))."""
    return affine_transform(x, angle_deg, padding=padding)


def flip(x: Tensor, horizontal: Tensor | bool = False, vertical: Tensor | bool = False) -> Tensor:
    """Exact flips, per image when given (B,) booleans."""
    b = x.shape[0]
    h = torch.as_tensor(horizontal, device=x.device).expand(b).view(b, 1, 1, 1)
    v = torch.as_tensor(vertical, device=x.device).expand(b).view(b, 1, 1, 1)
    x = torch.where(h, x.flip(-1), x)
    return torch.where(v, x.flip(-2), x)


def jitter_crop(
    x: Tensor, shift_pixels: Tensor, padding: str = "reflection", out_size: int | None = None
) -> Tensor:
    """Translate each image by integer ``shift_pixels`` (B, 2) = (dx, dy), then centre-crop to
    ``out_size`` (default: keep the size)."""
    out = affine_transform(x, 0.0, shift_pixels=shift_pixels.round(), padding=padding)
    return out if out_size is None else center_crop(out, out_size)


def center_crop(x: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Central (size x size) crop."""
    th, tw = (size, size) if isinstance(size, int) else size
    h, w = x.shape[-2:]
    if th > h or tw > w:
        raise ValueError(f"crop {th}x{tw} larger than image {h}x{w}")
    top, left = (h - th) // 2, (w - tw) // 2
    return x[..., top : top + th, left : left + tw]


def gaussian_blur(x: Tensor, sigma_pixels: Tensor | float) -> Tensor:
    """Per-band Gaussian blur; ``sigma_pixels`` is a scalar, (C,) or (B, C), in pixels.

    Bands with sigma 0 are returned unchanged. Edges are reflected.
    """
    b, c, h, w = x.shape
    sigma = torch.as_tensor(sigma_pixels, dtype=torch.float32, device=x.device)
    sigma = sigma.expand(b, c).reshape(-1)
    if not torch.any(sigma > 0):
        return x
    radius = math.ceil(3.0 * float(sigma.max()))
    radius = max(1, min(radius, h - 1, w - 1))
    taps = torch.arange(-radius, radius + 1, device=x.device, dtype=torch.float32)
    safe = sigma.clamp_min(1e-6)[:, None]
    kernel = torch.exp(-0.5 * (taps[None, :] / safe) ** 2)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)
    delta = (taps == 0).float().expand_as(kernel)
    kernel = torch.where((sigma > 0)[:, None], kernel, delta)
    flat = x.float().reshape(1, b * c, h, w)
    flat = F.pad(flat, (radius, radius, radius, radius), mode="reflect")
    flat = F.conv2d(flat, kernel.view(b * c, 1, 1, -1), groups=b * c)
    flat = F.conv2d(flat, kernel.view(b * c, 1, -1, 1), groups=b * c)
    out = flat.view(b, c, h, w).to(x.dtype)
    keep = (sigma == 0).view(b, c, 1, 1)
    return torch.where(keep, x, out)


def add_noise(x: Tensor, sigma: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Add Gaussian noise with per-image, per-band standard deviation ``sigma`` (B, C)."""
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=torch.float32)
    return x + (noise * sigma[:, :, None, None].to(noise)).to(x.dtype)


def redden(x: Tensor, ebv: Tensor | float, coefficients: Tensor | Sequence[float]) -> Tensor:
    """Multiply band b by ``10**(-0.4 * R_b * E(B-V))``; ``ebv`` scalar or (B,), R (C,)."""
    r = torch.as_tensor(coefficients, dtype=torch.float32, device=x.device)
    e = torch.as_tensor(ebv, dtype=torch.float32, device=x.device).reshape(-1, 1)
    factor = torch.pow(10.0, -0.4 * e * r[None, :])  # (B or 1, C)
    return x * factor[:, :, None, None].to(x.dtype)


# -- the random pipeline -----------------------------------------------------------------------
class Augmenter(nn.Module):
    """Draws random parameters per image and applies the operations of an :class:`AugmentConfig`.

    Order: noise level measured on the input; geometry (one resampling); PSF blur; reddening;
    added noise last so it stays white. Parameters are drawn from ``generator`` (or torch's
    global generator), noise on the input's device.
    """

    def __init__(self, config: AugmentConfig, bands: Sequence[str]) -> None:
        super().__init__()
        self.cfg = config
        self.bands = [str(b) for b in bands]
        coeffs = [0.0] * len(self.bands)  # only looked up (and warned about) when used
        if config.ebv_range != (0.0, 0.0):
            coeffs = extinction_coefficients(
                self.bands, config.extinction_system, config.extinction_coeffs
            )
        self.register_buffer("extinction", torch.tensor(coeffs, dtype=torch.float32), False)

    @property
    def config(self) -> dict[str, Any]:
        return self.cfg.to_dict()

    @staticmethod
    def noise_level(x: Tensor) -> Tensor:
        """Robust per-image, per-band noise (B, C) that scales the added noise."""
        return robust_sigma(x, max_pixels=NOISE_PIXELS)

    @property
    def is_identity(self) -> bool:
        c = self.cfg
        return (
            c.rotation_deg == 0
            and not c.flip
            and c.jitter_pixels == 0
            and c.zoom == 0
            and c.blur_fwhm_arcsec[1] == 0
            and c.noise_sigma[1] == 0
            and c.ebv_range == (0.0, 0.0)
        )

    def forward(
        self,
        x: Tensor,
        generator: torch.Generator | None = None,
        noise_reference: Tensor | None = None,
    ) -> Tensor:
        """Augment a batch; ``noise_reference`` (B, C) reuses an already measured noise level."""
        if self.is_identity:
            return x
        c, b, nb = self.cfg, x.shape[0], x.shape[1]
        if nb != len(self.bands):
            raise BandMismatchError(self.bands, nb)
        dev = generator.device if generator is not None else torch.device("cpu")

        def uniform(low: float, high: float, *shape: int) -> Tensor:
            return low + (high - low) * torch.rand(shape, generator=generator, device=dev)

        noise_ref = None
        if c.noise_sigma[1] > 0:
            noise_ref = noise_reference if noise_reference is not None else self.noise_level(x)
        if c.rotation_deg or c.flip or c.jitter_pixels or c.zoom:
            angle = uniform(-c.rotation_deg, c.rotation_deg, b)
            zoom = torch.exp(uniform(-1.0, 1.0, b) * math.log1p(c.zoom))
            j = c.jitter_pixels
            shift = torch.randint(-j, j + 1, (b, 2), generator=generator, device=dev).float()
            flips = uniform(0.0, 1.0, b, 2) < 0.5 if c.flip else torch.zeros(b, 2, dtype=torch.bool)
            x = affine_transform(
                x,
                angle.to(x.device),
                zoom=zoom.to(x.device),
                shift_pixels=shift.to(x.device),
                flip_x=flips[:, 0].to(x.device),
                flip_y=flips[:, 1].to(x.device),
                padding=c.padding,
            )
        if c.blur_fwhm_arcsec[1] > 0:
            fwhm = uniform(*c.blur_fwhm_arcsec, b, nb)
            x = gaussian_blur(x, fwhm_to_sigma_pixels(fwhm, c.pixel_scale_arcsec).to(x.device))
        if c.ebv_range != (0.0, 0.0):
            x = redden(x, uniform(*c.ebv_range, b).to(x.device), self.extinction)
        if noise_ref is not None:
            level = uniform(*c.noise_sigma, b, nb).to(x.device) * noise_ref
            noise_gen = generator if generator is not None and dev == x.device else None
            x = add_noise(x, level, noise_gen)
        return x
