"""Held-out metrics stored with each model version (classification, calibration, emulation)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

OUTLIER_THRESHOLD = 0.15  # |dz| / (1 + z) above this is a photo-z outlier


def stratified_split(
    labels: np.ndarray, held_fraction: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(train_rows, held_rows) over labelled rows (label >= 0), stratified by class."""
    rng = np.random.default_rng(seed)
    train, held = [], []
    for cls in np.unique(labels[labels >= 0]):
        rows = rng.permutation(np.flatnonzero(labels == cls))
        n_held = max(1, round(len(rows) * held_fraction)) if len(rows) > 1 else 0
        held.append(rows[:n_held])
        train.append(rows[n_held:])
    if not train:
        raise ValueError("no labelled objects to train on")
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(held))


def subsample(rows: np.ndarray, labels: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Keep ``fraction`` of ``rows`` per class (at least one per class)."""
    rng = np.random.default_rng(seed + 1)
    kept = []
    for cls in np.unique(labels[rows]):
        members = rows[labels[rows] == cls]
        kept.append(rng.choice(members, max(1, round(len(members) * fraction)), replace=False))
    return np.sort(np.concatenate(kept))


def ece(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    from models import expected_calibration_error

    return float(expected_calibration_error(probs, labels, n_bins))


def classification(
    probs: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    decisions: np.ndarray | None = None,
) -> dict[str, Any]:
    """Accuracy, balanced accuracy, per-class recall, ECE and the reliability diagram of
    held-out predictions; ``decisions``: the predicted classes when not argmax of ``probs``."""
    from models import reliability_diagram

    pred = probs.argmax(axis=1) if decisions is None else np.asarray(decisions)
    recall = {
        name: float((pred[labels == i] == i).mean()) if (labels == i).any() else None
        for i, name in enumerate(classes)
    }
    diagram = reliability_diagram(probs, labels)
    return {
        "accuracy": float((pred == labels).mean()),
        "balanced_accuracy": float(np.mean([v for v in recall.values() if v is not None])),
        "ece": ece(probs, labels),
        "recall": recall,
        "n_held_out": len(labels),
        "reliability": {k: np.nan_to_num(v, nan=-1.0).tolist() for k, v in diagram.items()},
    }


def photoz(z_pred: np.ndarray, z_true: np.ndarray) -> dict[str, float]:
    """NMAD, bias and outlier fraction of dz = (z_pred - z_true) / (1 + z_true)."""
    dz = (z_pred - z_true) / (1.0 + z_true)
    return {
        "nmad": float(1.4826 * np.median(np.abs(dz - np.median(dz)))),
        "bias": float(np.median(dz)),
        "outlier_fraction": float(np.mean(np.abs(dz) > OUTLIER_THRESHOLD)),
    }


def regression(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Median absolute and relative error, and NMAD of the relative error."""
    rel = (pred - true) / np.where(np.abs(true) > 1e-6, np.abs(true), 1e-6)
    return {
        "median_abs_error": float(np.median(np.abs(pred - true))),
        "median_rel_error": float(np.median(np.abs(rel))),
        "nmad_rel": float(1.4826 * np.median(np.abs(rel - np.median(rel)))),
    }


def emulation(
    model: Any,
    pixels: Any,
    targets: np.ndarray,
    rows: np.ndarray,
    names: Sequence[str],
    device: str = "auto",
    batch_size: int = 512,
) -> dict[str, Any]:
    """Per target: point-estimate errors, 68% interval coverage and the PIT histogram."""
    import torch

    from models import pit_calibration, predict_targets

    x_held = np.asarray(pixels[rows]) if not isinstance(pixels, np.ndarray) else pixels[rows]
    y_held = targets[rows]
    post = predict_targets(model, x_held, device=device, batch_size=batch_size)
    pits = []
    model.eval()
    with torch.no_grad():
        for lo in range(0, len(rows), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(x_held[lo : lo + batch_size]))
            y = torch.from_numpy(y_held[lo : lo + batch_size])
            pits.append(model.cpu().pit(x, y).numpy())
    pit = np.concatenate(pits)
    out: dict[str, Any] = {"n_held_out": len(rows)}
    for j, name in enumerate(names):
        ok = np.isfinite(y_held[:, j])
        mean, std, true = post["mean"][ok, j], post["std"][ok, j], y_held[ok, j]
        scores = photoz(mean, true) if name == "redshift" else regression(mean, true)
        p = pit[ok, j]
        calib = pit_calibration(p)
        scores.update(
            {
                "coverage_68": float(np.mean((p > 0.16) & (p < 0.84))),
                "coverage_68_gaussian": float(np.mean(np.abs(mean - true) <= std)),
                "pit_histogram": np.asarray(calib["density"]).tolist(),
                "pit_ks": float(calib["ks"]),
            }
        )
        out[name] = scores
    if "redshift" in out:
        out["nmad_redshift"] = out["redshift"]["nmad"]
    return out
