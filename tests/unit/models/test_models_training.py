"""The shared training loop: learning on tiny problems, budgets, callbacks, checkpoints."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from models import (
    ArrayDataset,
    AugmentConfig,
    BackboneConfig,
    ConvAutoencoder,
    EmbeddingClassifier,
    Emulator,
    SimCLREncoder,
    TargetScaling,
    TrainConfig,
    evaluate,
    fit,
    load_checkpoint,
    load_model,
    pick_device,
    save_checkpoint,
    seed_everything,
)
from models.normalize import fit_normalization

BANDS = ["g", "r", "i"]
TINY = BackboneConfig(embedding_dim=16, stem_width=8, widths=(8, 16), strides=(2, 2))


def _blobs(n: int = 128, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs of varying width and colour plus noise; returns (images, widths)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    widths = rng.uniform(1.0, 4.0, n)
    colours = rng.uniform(0.5, 2.0, (n, len(BANDS)))
    blob = np.exp(-(xx**2 + yy**2)[None] / (2 * widths[:, None, None] ** 2))
    images = colours[:, :, None, None] * blob[:, None] * 10.0
    return (images + rng.normal(0, 0.1, images.shape)).astype(np.float32), widths


def _cfg(**kw: object) -> TrainConfig:
    base = {"epochs": 10, "batch_size": 32, "lr": 3e-3, "progress_bar": False, "device": "cpu",
            "block_size": 8}  # fmt: skip
    return TrainConfig(**{**base, **kw})


def _learns(model: torch.nn.Module, data: ArrayDataset, cfg: TrainConfig) -> None:
    before = evaluate(model, data, device="cpu")
    result = fit(model, data, cfg)
    after = evaluate(model, data, device="cpu")
    assert result.stopped == "completed" and result.steps == cfg.epochs * (len(data) // 32)
    print(f"{model.kind}: loss {before:.4f} -> {after:.4f}")
    assert after < 0.8 * before, (before, after)


def test_simclr_loss_decreases() -> None:
    images, _ = _blobs()
    seed_everything(0)
    model = SimCLREncoder(
        BANDS, backbone=TINY, projection_dim=16, projection_hidden=32,
        normalization=fit_normalization(images, BANDS),
        augment=AugmentConfig(jitter_pixels=1, noise_sigma=(0.0, 0.5), ebv_range=(0.0, 0.1)),
    )  # fmt: skip
    data = ArrayDataset(images)
    before = evaluate(model, data, batch_size=32, device="cpu")
    fit(model, data, _cfg(epochs=15))
    after = evaluate(model, data, batch_size=32, device="cpu")
    chance = math.log(2 * 32 - 1)  # NT-Xent of an encoder that cannot tell views apart
    assert after < min(before - 0.5, chance - 0.5), (before, after)


def test_pooled_simclr_trains_and_records_its_settings() -> None:
    """The prepare encoder's shape: input_pool=2, contrastive preset, default temperature."""
    images, _ = _blobs(64)
    seed_everything(0)
    model = SimCLREncoder(
        BANDS, backbone=BackboneConfig(**{**TINY.to_dict(), "input_pool": 2}),
        normalization=fit_normalization(images, BANDS),
        augment=AugmentConfig.contrastive(pixel_scale_arcsec=0.2),
    )  # fmt: skip
    result = fit(model, ArrayDataset(images), _cfg(epochs=2))
    assert result.steps == 4 and math.isfinite(result.train_loss)
    config = json.loads(json.dumps(model.config))
    assert config["backbone"]["input_pool"] == 2
    assert config["temperature"] == 0.1
    assert config["augment"]["zoom"] == 0.3 and config["augment"]["jitter_pixels"] == 2
    clone = SimCLREncoder.from_config(config).eval()
    clone.load_state_dict(model.state_dict())
    x = torch.from_numpy(images[:4])
    with torch.no_grad():
        assert torch.equal(clone.embed(x), model.eval().embed(x))


def test_autoencoder_loss_decreases() -> None:
    seed_everything(0)
    images, _ = _blobs()
    model = ConvAutoencoder(BANDS, image_size=16, latent_dim=8, widths=(8, 16),
                            normalization=fit_normalization(images, BANDS))  # fmt: skip
    _learns(model, ArrayDataset(images), _cfg())


def test_classifier_loss_decreases_and_ignores_unlabelled() -> None:
    seed_everything(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype(np.float32)
    labels = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    labels[::10] = -1
    model = EmbeddingClassifier(8, ["a", "b"], hidden=(32,), dropout=0.1)
    _learns(model, ArrayDataset(x, labels), _cfg(epochs=15))
    pred = model.predict_proba(torch.from_numpy(x)).argmax(1).numpy()
    assert (pred[labels >= 0] == labels[labels >= 0]).mean() > 0.9


def test_batch_without_labels_gives_zero_loss() -> None:
    model = EmbeddingClassifier(4, 2)
    batch = {"inputs": torch.randn(3, 4), "targets": torch.full((3,), -1)}
    loss = model.training_loss(batch)
    assert float(loss.detach()) == 0.0 and loss.requires_grad


def test_emulator_loss_decreases_with_missing_targets() -> None:
    seed_everything(0)
    images, widths = _blobs(n=192)
    y = np.stack([widths, images[:, 0].sum((1, 2)) / 100], axis=1).astype(np.float32)
    y[::7, 1] = np.nan
    model = Emulator(BANDS, ["width", "flux"], backbone=TINY, n_components=2, head_hidden=16,
                     normalization=fit_normalization(images, BANDS),
                     augment=AugmentConfig.none())  # fmt: skip
    model.set_target_scaling(TargetScaling.fit(y, ["width", "flux"], ["log", "identity"]))
    _learns(model, ArrayDataset(images, y), _cfg(epochs=12))


def test_progress_callback_time_budget_and_cancel() -> None:
    images, _ = _blobs(64)
    calls: list[dict] = []
    model = ConvAutoencoder(BANDS, image_size=16, widths=(8, 16))
    result = fit(model, ArrayDataset(images), _cfg(epochs=3), progress=calls.append)
    keys = {"phase", "epoch", "step", "total_steps", "loss", "eta_seconds", "lr"}
    assert keys <= set(calls[0]) and calls[0]["total_steps"] == 6
    assert [c["phase"] for c in calls].count("train") == 6 and calls[-1]["phase"] == "done"
    assert result.epochs == 3 and len(result.history) == 3
    assert json.dumps(result.to_dict())

    stop_after_two = lambda info: info["step"] < 2  # noqa: E731
    result = fit(model, ArrayDataset(images), _cfg(epochs=50), progress=stop_after_two)
    assert result.stopped == "cancelled" and result.steps == 2

    result = fit(model, ArrayDataset(images), _cfg(epochs=10_000, max_seconds=0.5))
    assert result.stopped == "time_budget" and result.seconds < 5


def test_early_stopping_restores_the_best_weights() -> None:
    images, _ = _blobs(96)
    data = ArrayDataset(images)
    train, val = data.split(0.25, block_size=8)
    model = ConvAutoencoder(BANDS, image_size=16, widths=(8, 16),
                            normalization=fit_normalization(images, BANDS))  # fmt: skip
    result = fit(model, train, _cfg(epochs=40, lr=0.3, patience=2), val=val)
    assert result.stopped in ("early_stopping", "completed")
    assert result.best_val_loss == min(h["val_loss"] for h in result.history)
    assert evaluate(model, val, device="cpu") == pytest.approx(result.best_val_loss, rel=1e-5)


def test_checkpoint_round_trip_and_resume(tmp_path: Path) -> None:
    images, _ = _blobs(64)
    path = tmp_path / "ckpt" / "encoder.pt"
    model = SimCLREncoder(BANDS, backbone=TINY, normalization=fit_normalization(images, BANDS))
    fit(model, ArrayDataset(images), _cfg(epochs=2, checkpoint_path=str(path)))
    assert path.exists() and [p.name for p in path.parent.iterdir()] == ["encoder.pt"]
    payload = load_checkpoint(path)
    assert payload["extra"]["epoch"] == 2 and payload["config"] == model.config
    loaded = load_model(path)
    x = torch.from_numpy(images[:8])
    with torch.no_grad():
        assert torch.equal(loaded.embed(x), model.eval().embed(x))
    resumed = fit(loaded, ArrayDataset(images),
                  _cfg(epochs=3, checkpoint_path=str(path), resume=True))  # fmt: skip
    assert resumed.epochs == 3 and resumed.steps == 6 and len(resumed.history) == 3
    save_checkpoint(tmp_path / "plain.pt", model)
    assert load_model(tmp_path / "plain.pt").config == model.config
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(Exception):  # noqa: B017 - torch raises its own unpickling errors
        load_checkpoint(tmp_path / "bad.pt")


def test_same_seed_same_training() -> None:
    images, _ = _blobs(64)

    def train_once() -> torch.Tensor:
        seed_everything(5)  # weights are initialised when the model is built
        model = SimCLREncoder(BANDS, backbone=TINY, augment=AugmentConfig.contrastive())
        fit(model, ArrayDataset(images), _cfg(epochs=1, seed=5))
        with torch.no_grad():
            return model.embed(torch.from_numpy(images[:4]))

    assert torch.equal(train_once(), train_once())


def test_device_selection() -> None:
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            pick_device("cuda")


def test_step_budget_runs_exactly_that_many_steps_whatever_the_epochs() -> None:
    images, _ = _blobs(64)  # 2 batches of 32 per epoch
    model = ConvAutoencoder(BANDS, image_size=16, widths=(8, 16))
    calls: list[dict] = []
    result = fit(model, ArrayDataset(images), _cfg(epochs=1, max_steps=5), progress=calls.append)
    assert result.steps == 5 and result.planned_steps == 5 and result.stopped == "completed"
    assert result.epochs == 3  # ceil(5 / 2)
    assert calls[0]["total_steps"] == 5


def test_learning_rate_follows_steps_not_time() -> None:
    from models.training import learning_rate

    capped = TrainConfig(lr=1.0, max_seconds=0.001, warmup_fraction=0.0)
    plain = TrainConfig(lr=1.0, warmup_fraction=0.0)
    assert [learning_rate(capped, s, 100) for s in (0, 50, 99)] == [
        learning_rate(plain, s, 100) for s in (0, 50, 99)
    ]
    assert learning_rate(plain, 0, 100) == pytest.approx(1.0)
    assert learning_rate(plain, 50, 100) == pytest.approx(0.505, abs=1e-3)


def test_step_checkpoints_resume_mid_epoch_to_the_same_weights(tmp_path: Path) -> None:
    images, _ = _blobs(96)  # 3 batches of 32 per epoch
    data = ArrayDataset(images)

    def model() -> ConvAutoencoder:
        seed_everything(0)
        return ConvAutoencoder(BANDS, image_size=16, widths=(8, 16))

    straight = model()
    fit(straight, data, _cfg(max_steps=7, seed=3))
    ckpt = tmp_path / "ckpt.pt"
    first = model()
    stop_at_4 = lambda info: info["step"] < 4  # noqa: E731
    cfg = dict(max_steps=7, seed=3, checkpoint_path=str(ckpt), checkpoint_every_steps=1)
    result = fit(first, data, _cfg(**cfg), progress=stop_at_4)
    assert result.stopped == "cancelled" and result.steps == 4
    resumed = model()
    result = fit(resumed, data, _cfg(**cfg, resume=True))
    assert result.steps == 7
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-5)
