"""Where each injected anomaly is: one boolean (H, W) mask per anomalous object.

A mask marks the pixels the anomaly changed by more than one sky sigma in any band: its own
light (noise-free: lens arcs, the ring, a blended companion, a supernova, a bright star and its
spikes) and the pixels a detector effect edited (trails, cosmic rays, bad columns, hot pixels,
amplifier blocks, saturation bleed). Masks travel with the survey as ``anomaly_masks.npz``
(``rows``: the anomalous rows, ascending; ``masks``: bit-packed (k, H, W)), written inside the
survey's atomic commit; the catalog's ``anomaly_type`` names the kind.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backend.errors import UserError

MASKS_FILE = "anomaly_masks.npz"
LIGHT_THRESHOLD_SIGMA = 1.0  # a change counts where it exceeds this many sky sigmas


def light_mask(light: np.ndarray, sky_sigma: np.ndarray) -> np.ndarray:
    """Pixels where noise-free ``light`` (C, H, W) exceeds the threshold in any band."""
    sigma = np.asarray(sky_sigma, dtype=np.float64)[:, None, None]
    return (np.abs(light) > LIGHT_THRESHOLD_SIGMA * sigma).any(axis=0)


def edited_mask(before: np.ndarray, after: np.ndarray, sky_sigma: np.ndarray) -> np.ndarray:
    """Pixels a pixel edit changed by more than the threshold in any band."""
    return light_mask(np.asarray(after, np.float64) - before, sky_sigma)


@dataclass(frozen=True)
class AnomalyMasks:
    """The masks of a survey's anomalous rows."""

    rows: np.ndarray  # (k,) int64, ascending
    masks: np.ndarray  # (k, H, W) bool

    def get(self, row: int) -> np.ndarray | None:
        """The mask of survey row ``row``, or None when nothing was injected there."""
        at = int(np.searchsorted(self.rows, row))
        if at < len(self.rows) and int(self.rows[at]) == int(row):
            return self.masks[at]
        return None

    def to_bytes(self) -> bytes:
        """The ``anomaly_masks.npz`` content (bit-packed, compressed)."""
        k, h, w = self.masks.shape
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            rows=self.rows.astype(np.int64),
            masks=np.packbits(self.masks.reshape(k, h * w), axis=1),
            shape=np.array([h, w], dtype=np.int64),
        )
        return buf.getvalue()

    @classmethod
    def from_parts(
        cls, parts: list[tuple[np.ndarray, np.ndarray]], shape: tuple[int, int]
    ) -> AnomalyMasks:
        """Concatenate per-chunk ``(rows, masks)`` pairs (rows already global)."""
        rows = [r for r, _ in parts if len(r)]
        masks = [m for r, m in parts if len(r)]
        if not rows:
            return cls(np.zeros(0, np.int64), np.zeros((0, *shape), bool))
        all_rows = np.concatenate(rows).astype(np.int64)
        order = np.argsort(all_rows, kind="stable")
        return cls(all_rows[order], np.concatenate(masks)[order])


def read_masks(survey_dir: Path) -> AnomalyMasks | None:
    """The masks stored with the survey at ``survey_dir``, or None for a survey without them."""
    path = Path(survey_dir) / MASKS_FILE
    if not path.exists():
        return None
    try:
        with np.load(path) as data:
            rows, packed, (h, w) = data["rows"], data["masks"], data["shape"]
    except (OSError, KeyError, ValueError) as exc:
        raise UserError(f"{path}: cannot read the anomaly masks ({exc})") from exc
    bits = np.unpackbits(packed, axis=1, count=int(h) * int(w))
    masks = bits.astype(bool).reshape(len(rows), int(h), int(w))
    return AnomalyMasks(rows.astype(np.int64), masks)
