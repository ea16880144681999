"""Activating a version by hand: a classifier brings the encoder it reads, in one write, and an
encoder is only shown once its map, index and anomaly scores exist."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.survey import SurveyWriter

N = 300


def _encoder_with_embeddings(registry: object, seed: int) -> str:
    from backend.products import write_embeddings

    version = registry.save("encoder", {}, {"kind": "dummy"}, survey="hand")  # type: ignore[attr-defined]
    x = np.random.default_rng(seed).normal(size=(N, 8)).astype(np.float32)
    write_embeddings("hand", "encoder", version.version, x.shape,
                     lambda out: out.__setitem__(..., x))  # fmt: skip
    return version.version


def _head_on(registry: object, encoder: str) -> str:
    config = {"kind": "embedding_classifier", "in_dim": 8, "classes": ["a", "b"],
              "embedding_source": {"kind": "encoder", "version": encoder}}  # fmt: skip
    return registry.save("classifier", {}, config, survey="hand",  # type: ignore[attr-defined]
                         training={"encoder": encoder}).version  # fmt: skip


@pytest.fixture
def two_encoders(home: Path) -> tuple[str, str, str, str]:
    """Survey "hand": encoder A active with its head; encoder B and its head registered, B with
    embeddings only (no map, index or scores)."""
    from backend.registry import ModelRegistry

    catalog = pd.DataFrame({"object_id": [f"h-{i:03d}" for i in range(N)]})
    with SurveyWriter("hand", ["g"], (8, 8), "test") as writer:
        writer.append(np.zeros((N, 1, 8, 8), np.float32), catalog)
    registry = ModelRegistry()
    enc_a, enc_b = _encoder_with_embeddings(registry, 0), _encoder_with_embeddings(registry, 1)
    head_a, head_b = _head_on(registry, enc_a), _head_on(registry, enc_b)
    registry.set_active_many("hand", {"encoder": enc_a, "classifier": head_a})
    return enc_a, head_a, enc_b, head_b


def test_a_classifier_is_activated_with_the_encoder_it_reads(two_encoders) -> None:
    from backend.active.activation import activate_job, plan_activation
    from backend.pipeline.kinds import Target
    from backend.registry import ModelRegistry

    enc_a, head_a, enc_b, head_b = two_encoders
    plan = plan_activation("hand", "classifier", head_b)
    assert plan.versions == {"classifier": head_b, "encoder": enc_b}
    assert plan.missing == ["map", "index", "scores", "ood"] and not plan.immediate
    stages: list[str] = []
    out = activate_job("hand", {"kind": "classifier", "version": head_b}, stages.append, None)
    assert ModelRegistry().active_versions("hand") == {"encoder": enc_b, "classifier": head_b}
    assert out["activated"] == {"classifier": head_b, "encoder": enc_b}
    for product in ("map", "index", "scores", "ood"):
        assert Target(product, "hand", "encoder", enc_b).exists()
    assert "activating" in stages  # a cancelled job stops before the switch

    # B's products exist now: activating it again (or a head on it) switches at once
    plan = plan_activation("hand", "encoder", enc_b)
    assert plan.immediate and plan.versions == {"encoder": enc_b}
    # back to A's head: encoder A comes with it, and A never had a map made
    plan = plan_activation("hand", "classifier", head_a)
    assert plan.versions == {"classifier": head_a, "encoder": enc_a} and not plan.immediate


def test_a_cancelled_activation_switches_nothing(two_encoders) -> None:
    from backend.active.activation import activate_job
    from backend.registry import ModelRegistry

    enc_a, head_a, _, head_b = two_encoders

    def cancelled(stage: str) -> None:
        raise RuntimeError(f"cancelled at {stage}")

    with pytest.raises(RuntimeError, match="cancelled"):
        activate_job("hand", {"kind": "classifier", "version": head_b}, cancelled, None)
    assert ModelRegistry().active_versions("hand") == {"encoder": enc_a, "classifier": head_a}


def test_an_encoder_without_embeddings_cannot_be_activated(two_encoders) -> None:
    from backend.active.activation import plan_activation
    from backend.registry import ModelRegistry, RegistryError

    registry = ModelRegistry()
    bare = registry.save("encoder", {}, {"kind": "dummy"}, survey="hand").version
    with pytest.raises(RegistryError, match=f"embed --survey hand --model {bare}"):
        plan_activation("hand", "encoder", bare)
    with pytest.raises(RegistryError, match="no embeddings"):
        plan_activation("hand", "classifier", _head_on(registry, bare))
    assert registry.active_versions("hand")["encoder"] == two_encoders[0]  # nothing recorded


def test_the_cli_activates_a_classifier_with_its_encoder(two_encoders, capsys) -> None:
    from backend.cli import main
    from backend.registry import ModelRegistry

    _, _, enc_b, head_b = two_encoders
    assert main(["models", "--survey", "hand", "--activate", f"classifier/{head_b}",
                 "--scheduler", "sync"]) == 0  # fmt: skip
    assert f"classifier {head_b} and encoder {enc_b} are now active" in capsys.readouterr().out
    assert ModelRegistry().active_versions("hand") == {"encoder": enc_b, "classifier": head_b}
    assert main(["models", "--activate", "classifier"]) == 2  # one error line, exit 2
    assert "error:" in capsys.readouterr().err
