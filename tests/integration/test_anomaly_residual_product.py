"""The autoencoder's predictions carry its residual scores, the scores product ranks with them
(combined as the product's default says), and predictions made before the columns existed are
outdated, so the next ensure remakes them and the scores that read them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from backend.latent.anomaly import DEFAULT_COMBINE, DEFAULT_SCORERS, AnomalyRanker
from backend.latent.scorers import rank_normalise
from backend.latent.source import ANOMALY_FILE, latent_dir
from backend.pipeline.kinds import Target
from backend.pipeline.lineage import lineage_path, read_lineage
from backend.pipeline.planner import plan
from backend.pipeline.runner import ensure
from backend.products import read_predictions
from backend.registry import ModelRegistry
from backend.survey import Survey


def test_residual_columns_reach_the_scores_and_old_predictions_are_remade(
    tiny_survey: Survey,
) -> None:
    from backend.modelling import train

    train.train_encoder("tiny", init="scratch", steps=2, batch_size=32, progress_bar=False)
    ae = train.train_autoencoder("tiny", steps=2, batch_size=32, progress_bar=False).version
    ensure("tiny", ["embeddings", "predictions:autoencoder", "index", "scores"], "sync")

    table = read_predictions("tiny", "autoencoder", ae)
    assert {"recon_error", "recon_peak", "recon_excess"} <= set(table.columns)
    assert len(table) == 150 and np.isfinite(table[["recon_peak", "recon_excess"]]).all().all()
    assert (table["recon_peak"] >= table["recon_error"]).all()

    encoder = ModelRegistry().active("tiny", "encoder").version
    scores = AnomalyRanker.load(latent_dir("tiny", encoder) / ANOMALY_FILE).scores
    assert scores.attrs["scorers"] == list(DEFAULT_SCORERS)
    assert scores.attrs["combined_with"] == DEFAULT_COMBINE
    norm = scores[scores.attrs["scorers"]].to_numpy()
    # max: the percentile of the largest normalised score; mean: their mean
    expected = rank_normalise(norm.max(axis=1)) if DEFAULT_COMBINE == "max" else norm.mean(axis=1)
    np.testing.assert_allclose(scores["anomaly"], expected, rtol=1e-6)
    record = read_lineage(Target("scores", "tiny", "encoder", encoder))
    assert record["params"] == {"scorers": list(DEFAULT_SCORERS), "combine": DEFAULT_COMBINE}
    assert not plan("tiny", ["scores"]).todo  # everything current

    # predictions made before the residual columns existed: recorded without them
    predictions = Target("predictions", "tiny", "autoencoder", ae)
    old = read_lineage(predictions)
    old["inputs"].pop("columns")
    lineage_path(predictions).write_text(json.dumps(old))
    todo = {item.key: item for item in plan("tiny", ["scores"]).todo}
    assert todo[predictions.key].status == "outdated"
    assert "columns changed" in todo[predictions.key].reason
    assert Target("scores", "tiny", "encoder", encoder).key in todo
    ensure("tiny", ["scores"], "sync")
    assert "columns" in read_lineage(predictions)["inputs"]
    assert not plan("tiny", ["scores"]).todo

    # predictions made outside the pipeline before the columns existed (no record) are remade,
    # not adopted as found
    path = predictions.directory / "predictions.parquet"
    pd.read_parquet(path)[["object_id", "recon_error"]].to_parquet(path)
    lineage_path(predictions).unlink()
    item = {i.key: i for i in plan("tiny", ["scores"]).todo}[predictions.key]
    assert (item.status, item.action) == ("outdated", "build")
    assert "recon_peak, recon_excess" in item.reason
    ensure("tiny", ["scores"], "sync")
    assert "recon_peak" in read_predictions("tiny", "autoencoder", ae).columns

    # a ranking that asks for the residual scorer reads the predictions' column
    ensure("tiny", ["scores"], "sync", params={"scores": {"scorers": ["recon_peak", "knn"]}})
    scores = AnomalyRanker.load(latent_dir("tiny", encoder) / ANOMALY_FILE).scores
    assert scores.attrs["scorers"] == ["recon_peak", "knn"]
    table = read_predictions("tiny", "autoencoder", ae)
    np.testing.assert_allclose(scores["recon_peak_raw"], table["recon_peak"], rtol=1e-6)
