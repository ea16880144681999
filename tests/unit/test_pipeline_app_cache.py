"""The app's per-process caches are keyed by the products' lineage: a product remade in place or
a new active encoder gives fresh data, and the survey's old entry is dropped."""

from __future__ import annotations

import numpy as np
import torch

from backend.pipeline.planner import plan
from backend.pipeline.runner import ensure, lineage
from backend.pipeline.storage import write_embeddings
from backend.registry import ModelRegistry
from backend.survey import Survey


def add_encoder(survey: Survey, scale: float) -> str:
    """An active encoder whose 'embeddings' are the cutouts pooled 4x4, times ``scale``."""
    registry = ModelRegistry()
    version = registry.save("encoder", {"w": torch.zeros(1)}, {"arch": "fake"}, survey=survey.name)
    registry.set_active(survey.name, "encoder", version.version)
    images = survey.cutouts(np.arange(len(survey)))
    n, c, h, w = images.shape
    emb = images.reshape(n, c, 4, h // 4, 4, w // 4).mean(axis=(3, 5)).reshape(n, -1) * scale
    write_embeddings(survey.name, "encoder", version.version, emb.shape, lambda out: out.__setitem__(..., emb))  # fmt: skip
    return version.version


def test_app_data_follows_lineage_and_evicts_old_versions(tiny_survey: Survey) -> None:
    from app import data
    from backend.latent.service import cached_keys, clear_cache, latent_services

    data.clear_cache()
    clear_cache()  # entries of earlier tests' data roots (keys start with the root) would stay
    first_encoder = add_encoder(tiny_survey, 1.0)
    ensure("tiny", ["scores"], "sync")
    assert lineage("tiny", "embeddings")["adopted"], "embeddings made outside are recorded"
    first = data.survey_data("tiny")
    assert first.encoder == first_encoder and "anomaly_score" in first.table
    assert data.survey_data("tiny") is first, "unchanged products: the cached data"

    # the scores remade in place with other parameters: new lineage, new data, old one gone
    before = lineage("tiny", "scores")["content_hash"]
    outdated = plan("tiny", ["scores"], params={"scores": {"scorers": ["iforest"]}}).todo
    assert [i.reason for i in outdated] == ["made with other parameters"]
    ensure("tiny", ["scores"], "sync", params={"scores": {"scorers": ["iforest"]}})
    assert lineage("tiny", "scores")["content_hash"] != before
    second = data.survey_data("tiny")
    assert second is not first and "score_knn" not in second.table
    assert len(data._cache) == 1

    # a new active encoder: its data replaces the old version's in both caches
    new_encoder = add_encoder(tiny_survey, 2.0)
    ensure("tiny", ["scores"], "sync")
    third = data.survey_data("tiny")
    assert third.encoder == new_encoder != first_encoder
    assert len(data._cache) == 1 and latent_services("tiny").version == new_encoder
    assert [key[2] for key in cached_keys()] == [new_encoder]
