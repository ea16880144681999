"""Train → register → embed → predict on a tiny survey, through the CLI a user runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.cli import main
from backend.products import open_embeddings, read_predictions
from backend.registry import ModelRegistry
from backend.survey import Survey, SurveyWriter
from tests.conftest import make_blobs


@pytest.fixture
def trained(tiny_survey: Survey) -> Survey:
    """The tiny survey with an encoder (1 epoch) and its embeddings."""
    assert (
        main(["train", "encoder", "--survey", "tiny", "--epochs", "1", "--batch-size", "32"]) == 0
    )
    assert main(["embed", "--survey", "tiny"]) == 0
    return tiny_survey


def test_encoder_is_registered_active_and_embeds_every_object(trained: Survey) -> None:
    registry = ModelRegistry()
    encoder = registry.active("tiny", "encoder")
    assert encoder is not None and encoder.version == "v0001"
    assert encoder.meta["training"]["survey"] == "tiny"
    assert encoder.config["bands"] == ["g", "r", "i"]
    assert encoder.config["augment"]["rotation_deg"] == 180.0
    emb = open_embeddings("tiny", "encoder", "v0001")
    assert emb.shape == (150, 128) and emb.dtype == np.float32
    assert isinstance(emb, np.memmap)
    assert np.isfinite(emb).all() and emb.std(axis=0).mean() > 0


def test_same_seed_gives_same_embeddings(trained: Survey, home: Path) -> None:
    first = np.array(open_embeddings("tiny", "encoder", "v0001"))
    assert (
        main(["train", "encoder", "--survey", "tiny", "--epochs", "1", "--batch-size", "32"]) == 0
    )
    assert main(["embed", "--survey", "tiny", "--model", "v0002"]) == 0
    np.testing.assert_allclose(open_embeddings("tiny", "encoder", "v0002"), first, atol=1e-5)


def test_classifier_and_predictions_from_catalog_labels(
    trained: Survey, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["train", "classifier", "--survey", "tiny", "--label-column", "size_class"]
    assert main([*args, "--epochs", "20"]) == 0
    classifier = ModelRegistry().active("tiny", "classifier")
    metrics = classifier.metrics
    assert 0.0 <= metrics["accuracy"] <= 1.0 and 0.0 <= metrics["ece"] <= 1.0
    assert set(metrics["recall"]) == {"big", "small"}
    assert classifier.meta["training"]["labels"]["source"] == "catalog:size_class"
    assert classifier.meta["training"]["encoder"] == "v0001"
    assert main(["predict", "--survey", "tiny", "--kinds", "classifier"]) == 0
    table = read_predictions("tiny", "classifier", classifier.version)
    assert len(table) == 150
    assert table["object_id"].iloc[3] == "tiny-0003"
    np.testing.assert_allclose(table[["p_big", "p_small"]].sum(axis=1), 1.0, atol=1e-5)
    assert (table["bald"] >= 0).all() and (table["entropy"] >= 0).all()
    assert set(table["pred_class"]) <= {"big", "small"}


def test_autoencoder_and_emulator_predictions(tiny_survey: Survey) -> None:
    catalog = tiny_survey.catalog
    assert "ra" in catalog
    assert main(["train", "autoencoder", "--survey", "tiny", "--epochs", "1"]) == 0
    assert (
        main(["train", "emulator", "--survey", "tiny", "--targets", "ra,dec", "--epochs", "1"]) == 0
    )
    assert main(["predict", "--survey", "tiny"]) == 0
    registry = ModelRegistry()
    recon = read_predictions("tiny", "autoencoder", registry.active("tiny", "autoencoder").version)
    assert (recon["recon_error"] > 0).all()
    emulated = read_predictions("tiny", "emulator", registry.active("tiny", "emulator").version)
    assert {"ra_mean", "ra_sigma", "dec_mean", "dec_sigma"} <= set(emulated.columns)
    assert (emulated["ra_sigma"] > 0).all()
    metrics = registry.active("tiny", "emulator").metrics
    assert 0.0 <= metrics["ra"]["coverage_68"] <= 1.0
    assert len(metrics["ra"]["pit_histogram"]) == 10


def test_three_band_model_refuses_four_band_survey(
    trained: Survey, capsys: pytest.CaptureFixture[str]
) -> None:
    with SurveyWriter("four", ["g", "r", "i", "z"], (16, 16), "test") as writer:
        writer.append(make_blobs(10, bands=4), pd.DataFrame({"x": range(10)}))
    capsys.readouterr()
    assert main(["embed", "--survey", "four", "--model", "v0001"]) == 2
    err = capsys.readouterr().err
    assert "error: model trained for 3 bands (g, r, i) got 4-band input (g, r, i, z)" in err


def test_missing_models_and_columns_are_explained(
    tiny_survey: Survey, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["embed", "--survey", "tiny"]) == 2
    assert "no encoder model for survey 'tiny'" in capsys.readouterr().err
    assert main(["predict", "--survey", "tiny"]) == 2
    assert "python -m backend prepare" in capsys.readouterr().err
    assert main(["train", "emulator", "--survey", "tiny", "--targets", "nope"]) == 2
    assert "no numeric column(s) ['nope']" in capsys.readouterr().err
