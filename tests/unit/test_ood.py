"""Domain shift: the OOD score (backend/latent/ood.py), the encoder's stored reference and the
``ood`` product made through the pipeline, and the ``ood`` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from backend.cli import main
from backend.errors import UserError
from backend.latent import ood
from backend.survey import Survey
from tests.unit.test_pipeline_app_cache import add_encoder


def clusters(n: int, centre: np.ndarray, spread: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (centre + spread * rng.normal(size=(n, len(centre)))).astype(np.float32)


def test_a_shifted_set_scores_higher_and_is_called_unlike() -> None:
    rng = np.random.default_rng(0)
    centre = rng.normal(size=32)
    train = clusters(2000, centre, 0.5, 1)
    same = clusters(500, centre, 0.5, 2)
    shifted = clusters(500, centre + 1.5 * rng.normal(size=32), 0.5, 3)
    ref = ood.build_reference(train, source="synthetic", k=10)
    s_same, s_shift = ood.score(ref, same), ood.score(ref, shifted)
    assert ood.auroc(s_same, s_shift) > 0.99
    assert ood.summarise(s_same, ref)["verdict"] == "like the training data"
    assert ood.summarise(s_shift, ref)["verdict"] == "unlike"
    # about 1% of new in-distribution objects lie beyond the reference's 99th percentile
    assert ood.summarise(s_same, ref)["fraction_beyond_p99"] < 0.05
    # half and half: partly unlike
    mixed = np.concatenate([s_same, s_shift[:100]])
    assert ood.summarise(mixed, ref)["verdict"] == "partly unlike"


def test_leave_one_out_ignores_the_row_itself() -> None:
    x = ood.unit_rows(np.eye(4, dtype=np.float32) + 0.01)
    loo = ood.knn_distance(x, x, 1, leave_one_out=True)
    assert np.all(loo > 0.5), "a row would be its own nearest neighbour at distance 0"
    assert np.allclose(ood.knn_distance(x, x, 1), 0.0, atol=1e-5)


def test_reference_round_trip_and_sample_size(tmp_path: Path) -> None:
    x = clusters(6000, np.ones(8), 1.0, 0)
    ref = ood.build_reference(x, source="demo embeddings, encoder v0001")
    assert ref.vectors.shape == (ood.MAX_ROWS, 8) and ref.vectors.dtype == np.float16
    path = tmp_path / ood.REFERENCE_FILE
    ood.save_reference(ref, path)
    back = ood.load_reference(path)
    assert back.source == ref.source and back.k == ref.k and back.quantiles == ref.quantiles
    np.testing.assert_array_equal(back.vectors, ref.vectors)
    np.testing.assert_allclose(ood.score(back, x[:50]), ood.score(ref, x[:50]))


def test_bad_input_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"not an npz")
    with pytest.raises(UserError, match=r"broken\.npz"):
        ood.load_reference(bad)
    ref = ood.build_reference(clusters(50, np.ones(4), 1.0, 0), source="s")
    with pytest.raises(UserError, match="4"):
        ood.score(ref, np.ones((3, 5), np.float32))
    with pytest.raises(UserError, match="NaN"):
        ood.score(ref, np.full((3, 4), np.nan, np.float32))


def test_ood_product_via_ensure_and_the_command(
    tiny_survey: Survey, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from backend.latent.ood_product import read_ood, reference_path
    from backend.pipeline.planner import plan
    from backend.pipeline.runner import ensure, lineage
    from backend.registry import ModelRegistry

    encoder = add_encoder(tiny_survey, 1.0)
    ensure("tiny", ["ood"], "sync")
    version = ModelRegistry().get("encoder", encoder)
    assert reference_path(version).is_file(), "the reference is stored with the model"
    scores, summary = read_ood("tiny", encoder)
    assert len(scores) == len(tiny_survey) and scores["ood_score"].notna().all()
    assert summary["verdict"] == "like the training data"  # scored against itself
    rec = lineage("tiny", "ood")
    assert rec["inputs"]["encoder"] == encoder and rec["inputs"]["reference"]
    assert plan("tiny", ["ood"]).todo == [], "made once, then current"

    out = tmp_path / "ood.json"
    assert main(["ood", "--survey", "tiny", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"encoder {encoder}: like the training data" in printed
    assert json.loads(out.read_text())["n"] == len(tiny_survey)


def test_training_objects_are_not_their_own_neighbours() -> None:
    x = clusters(300, np.zeros(16), 1.0, 0)
    ref = ood.build_reference(x, source="s", k=5, max_rows=100)
    plain, own = ood.score(ref, x), ood.score(ref, x, training=True)
    sampled = np.zeros(len(x), bool)
    sampled[ref.rows] = True
    assert np.all(plain[sampled] < own[sampled]), "without care a sampled object finds itself"
    np.testing.assert_allclose(own[~sampled], plain[~sampled])
    # scored against the others, a sampled object looks like any unsampled one
    assert abs(np.median(own[sampled]) - np.median(own[~sampled])) < 0.1 * np.median(own)


def test_reference_made_when_the_training_survey_is_embedded_and_general_as_shipped(
    tiny_survey: Survey, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from backend.latent import ood_product
    from backend.registry import ModelRegistry

    encoder = add_encoder(tiny_survey, 1.0)
    version = ModelRegistry().get("encoder", encoder)
    ood_product.reference_after_embedding("tiny", encoder)
    ref = ood.load_reference(ood_product.reference_path(version))
    assert "tiny embeddings" in ref.source and len(ref.vectors) == len(tiny_survey)

    # the general encoder as shipped (no steps on the survey) learnt from its corpus: its
    # reference is the general encoder's, not the survey's
    registry = ModelRegistry()
    import torch

    shipped = registry.save(
        "encoder", {"w": torch.zeros(1)}, {"arch": "fake"}, survey="tiny",
        training={"survey": "tiny", "budget": {"steps": 0}}, parent="general:general-test",
    )  # fmt: skip
    general_dir = tmp_path / "general-test"
    corpus_ref = ood.build_reference(clusters(40, np.ones(48), 1.0, 5), source="corpus sample")
    ood.save_reference(corpus_ref, general_dir / ood.REFERENCE_FILE)
    monkeypatch.setattr(
        "backend.modelling.general.general_encoder_dir", lambda name="general-v1": general_dir
    )
    ood_product.reference_after_embedding("tiny", shipped.version)
    assert not ood_product.reference_path(shipped).is_file(), "not from the survey"
    assert ood_product.reference_for(shipped).source == "corpus sample"
    assert ood_product.reference_path(shipped).is_file(), "kept with the version"


def test_corpus_sample_keeps_the_cards_mix_of_presets() -> None:
    import pandas as pd

    from backend.latent.ood_product import corpus_sample

    catalog = pd.DataFrame({"preset": ["sdss"] * 400 + ["hsc"] * 400 + ["sdss_gz1"] * 2000})
    card = {"corpus": {"by_source": [
        {"preset": "sdss", "n": 3000}, {"preset": "hsc", "n": 3000},
        {"preset": "sdss_gz1", "n": 6000},
    ]}}  # fmt: skip
    rows = corpus_sample(catalog, card, 5000)
    counts = catalog.iloc[rows]["preset"].value_counts()
    assert counts["sdss"] == counts["hsc"] == 400 and counts["sdss_gz1"] == 800
