"""Losses and uncertainty maths against reference implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from models.calibration import (
    balanced_decision_weights,
    decide,
    expected_calibration_error,
    fit_temperature,
    fit_temperature_and_bias,
    reliability_diagram,
)
from models.classifier import EmbeddingClassifier
from models.contrastive import nt_xent_loss, supervised_contrastive_loss
from models.mdn import Mixture
from models.uncertainty import entropy, mc_dropout_predict, mutual_information


def _naive_nt_xent(z1: torch.Tensor, z2: torch.Tensor, t: float) -> float:
    z = torch.cat([z1, z2]).double()
    z = z / z.norm(dim=1, keepdim=True)
    n2 = len(z)
    half = n2 // 2
    total = 0.0
    for i in range(n2):
        j = (i + half) % n2
        sims = [math.exp(float(z[i] @ z[k]) / t) for k in range(n2) if k != i]
        total += -math.log(math.exp(float(z[i] @ z[j]) / t) / sum(sims))
    return total / n2


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_nt_xent_matches_naive_reference(temperature: float) -> None:
    g = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    got = float(nt_xent_loss(z1, z2, temperature))
    assert math.isclose(got, _naive_nt_xent(z1, z2, temperature), rel_tol=1e-5)


def test_nt_xent_is_low_for_matching_views() -> None:
    z = torch.randn(8, 16)
    assert nt_xent_loss(z, z, 0.1) < nt_xent_loss(z, torch.randn(8, 16), 0.1)


def _naive_supcon(z: torch.Tensor, y: list[int], t: float, w: list[float]) -> float:
    z = (z / z.norm(dim=1, keepdim=True)).double()
    total = weight = 0.0
    for i in range(len(z)):
        pos = [p for p in range(len(z)) if p != i and y[p] == y[i]]
        if not pos:
            continue
        denom = sum(math.exp(float(z[i] @ z[k]) / t) for k in range(len(z)) if k != i)
        loss = -sum(float(z[i] @ z[p]) / t - math.log(denom) for p in pos) / len(pos)
        total += w[y[i]] * loss
        weight += w[y[i]]
    return total / weight


def test_supervised_contrastive_matches_naive_reference() -> None:
    g = torch.Generator().manual_seed(5)
    z, y = torch.randn(7, 4, generator=g), [0, 1, 0, 2, 1, 0, 1]  # class 2 has no positive
    got = float(supervised_contrastive_loss(z, torch.tensor(y), 0.2, torch.tensor([1.0, 3.0, 9.0])))
    assert math.isclose(got, _naive_supcon(z, y, 0.2, [1.0, 3.0, 9.0]), rel_tol=1e-5)


def test_supervised_contrastive_rewards_class_clusters() -> None:
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    centres = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    clustered = centres[y] + 0.05 * torch.randn(6, 2)
    assert supervised_contrastive_loss(clustered, y) < supervised_contrastive_loss(
        clustered[torch.tensor([0, 3, 1, 4, 2, 5])], y
    )
    assert float(supervised_contrastive_loss(torch.randn(3, 2), torch.tensor([0, 1, 2]))) == 0.0


def test_mdn_log_likelihood_equals_scipy() -> None:
    weights = np.array([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])
    means = np.array([[-1.0, 0.5, 2.0], [0.0, 3.0, -2.0]])
    sigmas = np.array([[0.5, 1.0, 0.3], [2.0, 0.7, 0.1]])
    y = np.array([0.3, -1.2])
    mix = Mixture(
        torch.tensor(np.log(weights))[:, None].float(),  # (N, T=1, K)
        torch.tensor(means)[:, None].float(),
        torch.tensor(sigmas)[:, None].float(),
    )
    got = mix.log_prob(torch.tensor(y)[:, None].float())[:, 0].double().numpy()
    ref = np.log((weights * stats.norm.pdf(y[:, None], means, sigmas)).sum(axis=1))
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    cdf = mix.cdf(torch.tensor(y)[:, None].float())[:, 0].double().numpy()
    np.testing.assert_allclose(
        cdf, (weights * stats.norm.cdf(y[:, None], means, sigmas)).sum(1), rtol=1e-5
    )
    mean = (weights * means).sum(1)
    var = (weights * (sigmas**2 + means**2)).sum(1) - mean**2
    np.testing.assert_allclose(mix.mean()[:, 0].numpy(), mean, rtol=1e-5)
    np.testing.assert_allclose(mix.std()[:, 0].numpy(), np.sqrt(var), rtol=1e-5)


def test_mutual_information_is_zero_for_identical_samples_and_positive_otherwise() -> None:
    p = torch.softmax(torch.randn(4, 3), dim=-1)
    same = p.expand(10, 4, 3)
    assert torch.all(mutual_information(same) == 0)
    diverse = torch.softmax(torch.randn(10, 4, 3) * 3, dim=-1)
    bald = mutual_information(diverse)
    assert torch.all(bald > 0)
    assert torch.all(bald <= entropy(diverse.mean(0)) + 1e-9)  # I <= H[mean]
    # H[mean] - mean H equals the KL form used for numerical safety
    alt = entropy(diverse.mean(0)) - entropy(diverse).mean(0)
    assert torch.allclose(bald, alt, atol=1e-9)


def test_mutual_information_with_hard_zeros_is_finite() -> None:
    samples = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    assert math.isclose(float(mutual_information(samples)[0]), math.log(2), rel_tol=1e-9)


def test_mc_dropout_samples_differ_and_bald_is_zero_without_dropout() -> None:
    torch.manual_seed(0)
    model = EmbeddingClassifier(8, 3, hidden=(32,), dropout=0.5).eval()
    x = torch.randn(20, 8)
    pred = model.mc_predict(x, n_samples=20, keep_samples=True)
    assert pred.samples is not None and pred.samples.shape == (20, 20, 3)
    assert not torch.allclose(pred.samples[0], pred.samples[1])
    assert torch.all(pred.bald >= 0) and pred.bald.max() > 0
    assert torch.allclose(pred.probs.sum(1), torch.ones(20), atol=1e-5)
    assert not model.training  # modes restored
    deterministic = model.mc_predict(x, n_samples=0)
    assert torch.all(deterministic.bald == 0)
    no_dropout = EmbeddingClassifier(8, 3, hidden=(32,), dropout=0.0)
    assert torch.all(no_dropout.mc_predict(x, n_samples=10).bald < 1e-7)


def test_mc_dropout_predict_restores_training_mode() -> None:
    model = EmbeddingClassifier(4, 2, dropout=0.3).train()
    mc_dropout_predict(model, model, torch.randn(3, 4), n_samples=3)
    assert model.training


def test_ece_is_near_zero_for_calibrated_predictions() -> None:
    rng = np.random.default_rng(0)
    n = 200_000
    conf = rng.uniform(0.5, 1.0, n)
    correct = rng.uniform(size=n) < conf
    labels = np.where(correct, 0, 1)
    probs = np.stack([conf, 1 - conf], axis=1)
    assert expected_calibration_error(probs, labels) < 0.01
    wrong = np.where(rng.uniform(size=n) < 0.5, 0, 1)  # 50% accurate, confident
    assert expected_calibration_error(probs, wrong) > 0.2


def test_reliability_diagram_bins() -> None:
    probs = np.array([[0.95, 0.05], [0.55, 0.45], [0.05, 0.95]])
    labels = np.array([0, 1, 1])
    d = reliability_diagram(probs, labels, n_bins=10)
    assert d["count"].sum() == 3 and d["count"][9] == 2 and d["count"][5] == 1
    assert d["accuracy"][9] == 1.0 and d["accuracy"][5] == 0.0
    assert np.isnan(d["accuracy"][0])


def test_temperature_scaling_reduces_ece_of_overconfident_logits() -> None:
    rng = np.random.default_rng(1)
    n, k = 20_000, 4
    true_logits = rng.normal(0, 1.5, (n, k))
    p = np.exp(true_logits) / np.exp(true_logits).sum(1, keepdims=True)
    labels = (rng.uniform(size=(n, 1)) > p.cumsum(axis=1)).sum(axis=1)  # one draw per row
    overconfident = 3.0 * true_logits
    probs = lambda z: torch.softmax(torch.tensor(z), 1).numpy()  # noqa: E731
    before = expected_calibration_error(probs(overconfident), labels)
    t = fit_temperature(overconfident, labels)
    after = expected_calibration_error(probs(overconfident / t), labels)
    assert math.isclose(t, 3.0, rel_tol=0.1)
    assert after < 0.02 < before


def _balanced_head_logits(
    n: int, prior: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn with ``prior`` and the logits of a head that learnt them with balanced
    class weights: the true log-likelihoods, i.e. the posterior's logits minus log prior."""
    rng = np.random.default_rng(seed)
    y = rng.choice(len(prior), size=n, p=prior)
    means = 1.0 * np.eye(len(prior))  # overlapping classes: the prior matters
    x = means[y] + rng.normal(size=(n, len(prior)))
    loglik = -0.5 * ((x[:, None, :] - means[None]) ** 2).sum(axis=2)
    return loglik, y


def test_class_bias_restores_the_prior_a_balanced_head_forgot() -> None:
    prior = np.array([0.7, 0.2, 0.1])
    logits, y = _balanced_head_logits(6000, prior)
    t_only, b0 = fit_temperature_and_bias(logits[:3000], y[:3000], bias=False)
    t, b = fit_temperature_and_bias(logits[:3000], y[:3000])
    assert np.allclose(b0, 0.0)
    np.testing.assert_allclose(b - b.mean(), np.log(prior) - np.log(prior).mean(), atol=0.15)
    assert 0.8 < t < 1.25  # the likelihoods were already sharp enough
    test_x, test_y = logits[3000:], y[3000:]
    plain = torch.softmax(torch.tensor(test_x / t_only), dim=1).numpy()
    biased = torch.softmax(torch.tensor(test_x / t + b), dim=1).numpy()

    def nll(p: np.ndarray) -> float:
        return float(-np.log(p[np.arange(len(test_y)), test_y]).mean())

    assert nll(biased) < nll(plain) - 0.05
    assert expected_calibration_error(biased, test_y) < expected_calibration_error(plain, test_y)
    assert expected_calibration_error(biased, test_y) < 0.03
    # the balanced decision on calibrated probabilities is the balanced head's own argmax
    weights = balanced_decision_weights(y[:3000], 3)
    agree = np.mean(decide(biased, weights) == test_x.argmax(axis=1))
    assert agree > 0.97


def test_tied_class_bias_stays_mirror_invariant() -> None:
    prior = np.array([0.5, 0.3, 0.2])  # classes 1 and 2 are each other's mirror image
    logits, y = _balanced_head_logits(3000, prior, seed=1)
    _, b = fit_temperature_and_bias(logits, y, tied=[0, 2, 1])
    assert b[1] == pytest.approx(b[2])
    assert b[0] > b[1]


def test_classifier_keeps_its_calibration_in_its_config() -> None:
    model = EmbeddingClassifier(4, ["a", "b", "c"], class_bias=[0.5, 0.0, -0.5],
                                decision_weights=[0.5, 1.0, 1.5])  # fmt: skip
    model.eval()
    x = torch.randn(5, 4)
    again = EmbeddingClassifier.from_config(model.config)
    again.load_state_dict(model.state_dict())
    again.eval()
    torch.testing.assert_close(again.predict_proba(x), model.predict_proba(x))
    expected = (model(x) / model.temperature + torch.tensor([0.5, 0.0, -0.5])).softmax(-1)
    torch.testing.assert_close(model.predict_proba(x), expected)
    torch.testing.assert_close(model.mc_predict(x, n_samples=0).probs, expected)
    probs = np.array([[0.45, 0.35, 0.2], [0.4, 0.2, 0.4]])
    assert model.decide(probs).tolist() == [1, 2]
    with pytest.raises(ValueError, match="2 class biases for 3 classes"):
        EmbeddingClassifier(4, ["a", "b", "c"], class_bias=[0.0, 1.0])
