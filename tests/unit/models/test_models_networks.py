"""Model construction, shapes, configs, band checks and determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models import (
    BackboneConfig,
    BandMismatchError,
    ConvAutoencoder,
    EmbeddingClassifier,
    Emulator,
    ImageClassifier,
    InputShapeError,
    ResidualBackbone,
    SimCLREncoder,
    TargetScaling,
    build_model,
    fold_batchnorm,
    seed_everything,
)
from models.normalize import BandNormalizer, fit_normalization

BANDS = ["g", "r", "i"]
TINY = BackboneConfig(embedding_dim=16, stem_width=8, widths=(8, 16), strides=(2, 2))


def _x(n: int = 4, c: int = 3, size: int = 16) -> torch.Tensor:
    return torch.randn(n, c, size, size, generator=torch.Generator().manual_seed(0))


def _all_models() -> list[torch.nn.Module]:
    return [
        SimCLREncoder(BANDS, backbone=TINY, projection_dim=8, projection_hidden=16),
        ConvAutoencoder(BANDS, image_size=16, latent_dim=6, widths=(8, 16)),
        EmbeddingClassifier(16, ["spiral", "elliptical"], hidden=(8,)),
        ImageClassifier(BANDS, 3, backbone=TINY, hidden=(8,)),
        Emulator(BANDS, ["redshift", "r_half"], backbone=TINY, n_components=2, head_hidden=8),
    ]


@pytest.mark.parametrize("size", [(16, 16), (64, 64), (40, 24)])
def test_backbone_takes_any_image_size(size: tuple[int, int]) -> None:
    net = ResidualBackbone(BackboneConfig(in_channels=3, embedding_dim=32)).eval()
    out = net(torch.randn(2, 3, *size))
    assert out.shape == (2, 32) and out.dtype == torch.float32


def test_default_backbone_is_small() -> None:
    net = ResidualBackbone()
    assert sum(p.numel() for p in net.parameters()) < 500_000
    assert net(torch.randn(2, 4, 64, 64)).shape == (2, 128)


def test_input_pool_downsamples_before_the_stem_and_is_recorded() -> None:
    full = ResidualBackbone(TINY).eval()
    pooled_cfg = BackboneConfig(**{**TINY.to_dict(), "input_pool": 2})
    pooled = ResidualBackbone(pooled_cfg).eval()
    pooled.load_state_dict(full.state_dict())  # pooling adds no parameters
    x = torch.randn(2, 4, 32, 32)
    with torch.no_grad():
        assert pooled.feature_map(x).shape[-2:] == (2, 2)
        assert full.feature_map(x).shape[-2:] == (4, 4)
        small = torch.nn.functional.avg_pool2d(x, 2)
        assert torch.allclose(pooled(x), full(small), atol=1e-6)
        assert pooled(torch.randn(2, 4, 15, 9)).shape == (2, 16)  # odd sizes: ceil mode
    assert pooled_cfg.to_dict()["input_pool"] == 2
    assert BackboneConfig.from_dict({"embedding_dim": 16}).input_pool == 1  # older configs
    with pytest.raises(ValueError, match="input_pool"):
        BackboneConfig(input_pool=0)


def test_folded_batchnorm_gives_the_same_output() -> None:
    net = ResidualBackbone(TINY)
    net.train()
    net(torch.randn(32, 4, 16, 16) * 3 + 1)  # move the running statistics off their defaults
    net.eval()
    x = torch.randn(5, 4, 16, 16)
    with torch.no_grad():
        assert torch.allclose(fold_batchnorm(net)(x), net(x), atol=1e-4)


def test_output_shapes_and_dtypes() -> None:
    x = _x()
    enc, ae, head, clf, emu = (m.eval() for m in _all_models())
    with torch.no_grad():
        assert enc(x).shape == (4, 16) and enc.embed(x).dtype == torch.float32
        assert torch.allclose(enc.embed(x, l2_normalize=True).norm(dim=1), torch.ones(4))
        assert ae(x).shape == x.shape
        assert ae.embed(x).shape == (4, 6)
        assert ae.reconstruction_error(x).shape == (4,)
        assert ae.reconstruction_error(x, per_band=True).shape == (4, 3)
        assert head(torch.randn(4, 16)).shape == (4, 2)
        assert torch.allclose(head.predict_proba(torch.randn(4, 16)).sum(1), torch.ones(4))
        assert clf(x).shape == (4, 3) and clf.mc_predict(x, 5).probs.shape == (4, 3)
        pred = emu.predict(x)
        assert pred["mean"].shape == (4, 2) and bool(torch.all(pred["std"] > 0))


def test_configs_are_json_and_rebuild_identical_models() -> None:
    x = _x()
    for model in _all_models():
        model.eval()
        config = json.loads(json.dumps(model.config))
        clone = build_model(config).eval()
        clone.load_state_dict(model.state_dict())
        assert clone.config == model.config
        inputs = torch.randn(4, 16) if model.kind == "embedding_classifier" else x
        with torch.no_grad():
            a, b = model(inputs), clone(inputs)
        if model.kind == "emulator":
            a, b = a.means, b.means
        assert torch.equal(a, b), model.kind


def test_three_band_model_refuses_four_band_input() -> None:
    for model in _all_models():
        if model.kind == "embedding_classifier":
            with pytest.raises(InputShapeError, match="16"):
                model(torch.randn(2, 12))
            continue
        with pytest.raises(BandMismatchError) as err:
            model.eval()(_x(c=4))
        message = str(err.value)
        assert "3 bands (g, r, i)" in message and "4-band input" in message
        assert isinstance(err.value, ValueError)


def test_named_band_mismatch() -> None:
    enc = SimCLREncoder(BANDS, backbone=TINY)
    with pytest.raises(BandMismatchError, match=r"\(g, r, z\)"):
        enc.check_input(_x(), bands=["g", "r", "z"])
    with pytest.raises(InputShapeError):
        enc(torch.randn(3, 16, 16))


def test_autoencoder_refuses_other_image_sizes() -> None:
    ae = ConvAutoencoder(BANDS, image_size=16, widths=(8, 16)).eval()
    with pytest.raises(InputShapeError, match="16x16"):
        ae(_x(size=20))
    odd = ConvAutoencoder(BANDS, image_size=(18, 14), widths=(8, 16)).eval()
    assert odd(torch.randn(2, 3, 18, 14)).shape == (2, 3, 18, 14)


def test_same_seed_gives_same_embeddings() -> None:
    x = _x()

    def embeddings(seed: int) -> torch.Tensor:
        seed_everything(seed)
        model = SimCLREncoder(BANDS, backbone=TINY).eval()
        with torch.no_grad():
            return model.embed(x)

    assert torch.equal(embeddings(7), embeddings(7))
    assert not torch.equal(embeddings(7), embeddings(8))


def test_normalization_makes_flux_units_irrelevant() -> None:
    rng = np.random.default_rng(0)
    images = (rng.normal(0, 1, (64, 3, 16, 16)) + 5).astype(np.float32)
    images[:, :, 6:10, 6:10] += 50
    a = BandNormalizer(fit_normalization(images, BANDS))(torch.from_numpy(images))
    scaled = images * 1000.0
    b = BandNormalizer(fit_normalization(scaled, BANDS))(torch.from_numpy(scaled))
    assert torch.allclose(a, b, atol=1e-3)
    flat = a.transpose(0, 1).reshape(3, -1)
    assert torch.allclose(flat.mean(1), torch.zeros(3), atol=1e-3)
    assert torch.allclose(flat.std(1), torch.ones(3), atol=1e-3)


def test_normalization_handles_noiseless_and_nonfinite_pixels() -> None:
    images = np.zeros((8, 3, 16, 16), np.float32)
    images[:, :, 8, 8] = 100.0
    norm = fit_normalization(images, BANDS)
    assert all(s > 0 for s in norm.scale)
    x = torch.from_numpy(images.copy())
    x[0, 0, 0, 0] = float("nan")
    x[0, 1, 0, 0] = float("inf")
    assert torch.isfinite(BandNormalizer(norm)(x)).all()


def test_emulator_moments_and_pit_in_original_units() -> None:
    torch.manual_seed(0)
    scaling = TargetScaling(["z", "r"], [np.log(0.5), 2.0], [0.4, 0.5], ["log", "identity"])
    emu = Emulator(BANDS, ["z", "r"], backbone=TINY, target_scaling=scaling).eval()
    x = _x(n=2)
    with torch.no_grad():
        pred = emu.predict(x)
        mix = emu(x).affine(emu.target_mean, emu.target_std)
        comp = torch.distributions.Categorical(logits=mix.logits)
        normal = torch.distributions.Normal(mix.means, mix.sigmas)
        gauss = torch.distributions.MixtureSameFamily(comp, normal)
        draws = gauss.sample((200_000,))  # (S, N, T) in f(y) units
        draws[..., 0] = draws[..., 0].exp()
        assert torch.allclose(pred["mean"], draws.mean(0), rtol=0.02)
        assert torch.allclose(pred["std"], draws.std(0), rtol=0.05)
        y = draws[:5].mean(0)
        pit = emu.pit(x, y)
        assert torch.allclose(pit, (draws <= y).float().mean(0), atol=0.01)
        logp = emu.log_prob(x, y)
        assert torch.isfinite(logp).all()


def test_target_scaling_fit_ignores_nan_and_checks_log() -> None:
    y = np.array([[1.0, 2.0], [np.nan, 4.0], [3.0, 6.0]])
    s = TargetScaling.fit(y, ["a", "b"], ["log", "identity"])
    assert np.isclose(s.mean[0], np.log(3.0) / 2) and np.isclose(s.mean[1], 4.0)
    with pytest.raises(ValueError, match="<= 0"):
        TargetScaling.fit(np.array([[0.0], [1.0]]), ["a"], ["log"])


def test_image_classifier_from_encoder_shares_weights_and_freezes() -> None:
    enc = SimCLREncoder(BANDS, backbone=TINY).eval()
    clf = ImageClassifier.from_encoder(enc, ["a", "b"], freeze_backbone=True).train()
    assert not clf.backbone.training  # frozen backbone keeps its BatchNorm statistics
    assert not any(p.requires_grad for p in clf.backbone.parameters())
    with torch.no_grad():
        assert torch.allclose(clf.eval().embed(_x()), enc.embed(_x()))
    emu = Emulator.from_encoder(enc, ["z"])
    assert emu.normalizer.config == enc.normalizer.config


def test_models_never_import_backend_or_app() -> None:
    import ast

    package = Path(__file__).parents[3] / "models"
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            bad = [n for n in names if n.split(".")[0] in ("backend", "app", "panel", "sqlalchemy")]
            assert not bad, f"{path.name} imports {bad}"
