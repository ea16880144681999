"""``models.training.fit`` gives the same model it gave before: recorded losses, learning rates
and weights for a fixed seed, and a resumed run equal, bit for bit, to an uninterrupted one.

The reference figures were recorded from ``fit`` before it was split into steps; any change to
the order of seeding, shuffling, scheduling, clipping or checkpointing moves them far beyond the
tolerance (which only absorbs a different BLAS build).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from models import ArrayDataset, ConvAutoencoder, TrainConfig, fit, seed_everything
from models.normalize import fit_normalization

BANDS = ["g", "r", "i"]

#: (train_loss, val_loss, lr) per epoch of ``_run()``, recorded before the refactor.
REFERENCE_HISTORY = [
    (0.9963721930980682, 1.0016069412231445, 0.0028869611057792607),
    (0.8488529324531555, 0.9947097301483154, 0.0020832848970621584),
    (0.7732016146183014, 0.9827042818069458, 0.0009467151029378418),
    (0.7297690510749817, 0.9714537858963013, 0.0001430388942207392),
]
REFERENCE_WEIGHT_SUM = 1231.5937302957918  # sum of |w| over the state dict after ``_run()``


def _images(n: int = 96, size: int = 16) -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    widths = rng.uniform(1.0, 4.0, n)
    colours = rng.uniform(0.5, 2.0, (n, len(BANDS)))
    blob = np.exp(-(xx**2 + yy**2)[None] / (2 * widths[:, None, None] ** 2))
    images = colours[:, :, None, None] * blob[:, None] * 10.0
    return (images + rng.normal(0, 0.1, (n, len(BANDS), size, size))).astype(np.float32)


IMAGES = _images()
TRAIN, VAL = ArrayDataset(IMAGES).split(0.25, block_size=8)


def _model() -> ConvAutoencoder:
    seed_everything(0)
    norm = fit_normalization(IMAGES, BANDS)
    return ConvAutoencoder(BANDS, image_size=16, widths=(8, 16), normalization=norm)


def _cfg(**kw: Any) -> TrainConfig:
    base = {"epochs": 4, "batch_size": 32, "lr": 3e-3, "progress_bar": False, "device": "cpu",
            "block_size": 8, "seed": 7}  # fmt: skip
    return TrainConfig(**{**base, **kw})


def _run(
    cfg: TrainConfig, progress: Callable[[dict[str, Any]], bool | None] | None = None
) -> tuple[ConvAutoencoder, Any]:
    model = _model()
    return model, fit(model, TRAIN, cfg, val=VAL, progress=progress)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_fit_reproduces_the_recorded_run() -> None:
    calls: list[dict[str, Any]] = []
    model, result = _run(_cfg(), calls.append)
    got = [(h["train_loss"], h["val_loss"], h["lr"]) for h in result.history]
    assert np.allclose(got, REFERENCE_HISTORY, rtol=1e-6, atol=0), got
    weights = sum(float(p.double().abs().sum()) for p in model.state_dict().values()
                  if p.is_floating_point())  # fmt: skip
    assert weights == pytest.approx(REFERENCE_WEIGHT_SUM, rel=1e-6)
    assert (result.stopped, result.epochs, result.steps, result.planned_steps) == (
        "completed", 4, 8, 8,
    )  # fmt: skip
    assert result.best_epoch == 4 and result.best_val_loss == result.val_loss
    phases = [(c["phase"], c["epoch"], c["step"]) for c in calls]
    per_epoch = [[("train", e, 2 * e - 1), ("train", e, 2 * e), ("epoch", e, 2 * e)]
                 for e in range(1, 5)]  # fmt: skip
    assert phases == [p for epoch in per_epoch for p in epoch] + [("done", 4, 8)]


def test_resume_at_an_epoch_boundary_equals_the_uninterrupted_run(tmp_path: Path) -> None:
    straight, done = _run(_cfg())
    cfg = {"checkpoint_path": str(tmp_path / "c.pt")}
    stop_after_2 = lambda info: not (info["phase"] == "epoch" and info["epoch"] == 2)  # noqa: E731
    _, first = _run(_cfg(**cfg), stop_after_2)
    assert (first.stopped, first.epochs, first.steps) == ("cancelled", 2, 4)
    resumed, result = _run(_cfg(**cfg, resume=True))
    assert (result.stopped, result.epochs, result.steps) == ("completed", 4, 8)
    assert _same_weights(straight, resumed)
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(result.history) == strip(done.history)


def test_resume_mid_epoch_from_a_step_checkpoint_equals_the_uninterrupted_run(
    tmp_path: Path,
) -> None:
    # restore_best=False: a cancelled run's last checkpoint holds its best weights otherwise
    straight, done = _run(_cfg(max_steps=7, restore_best=False))
    assert (done.steps, done.epochs) == (7, 4)  # 2 batches per epoch: the last one is cut
    cfg = {"max_steps": 7, "checkpoint_path": str(tmp_path / "s.pt"), "checkpoint_every_steps": 1,
           "restore_best": False}  # fmt: skip
    _, first = _run(_cfg(**cfg), lambda info: info["step"] < 3)
    assert (first.stopped, first.steps) == ("cancelled", 3)
    resumed, result = _run(_cfg(**cfg, resume=True))
    assert (result.stopped, result.steps) == ("completed", 7)
    assert _same_weights(straight, resumed)
    assert result.history[-1]["train_loss"] == done.history[-1]["train_loss"]
