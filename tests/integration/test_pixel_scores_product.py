"""The pixel scores are a product of the survey: computed once, read by every encoder's scores
(the ranking as when they were computed in place), remade when the survey's images change."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from backend.latent import image_scores as image_scores_module
from backend.latent.anomaly import DEFAULT_COMBINE, DEFAULT_SCORERS, AnomalyRanker
from backend.latent.errors import LatentError
from backend.latent.pipeline import make_scores
from backend.latent.search import SimilarityIndex
from backend.latent.source import ANOMALY_FILE, latent_dir
from backend.pipeline.kinds import PIXEL_SCORES_FILE, Target, survey_target
from backend.pipeline.lineage import read_lineage
from backend.pipeline.planner import plan
from backend.pipeline.runner import ensure
from backend.pipeline.storage import open_embeddings
from backend.registry import ModelRegistry
from backend.survey import Survey, SurveyWriter
from tests.conftest import make_blobs

PIXELS = survey_target("pixel_scores", "tiny")


@pytest.fixture
def computed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The surveys whose pixel scores were computed (image_scores called), in order."""
    calls: list[str] = []
    real = image_scores_module.image_scores

    def spy(survey: Survey, *args: Any, **kwargs: Any) -> Any:
        calls.append(survey.name)
        return real(survey, *args, **kwargs)

    monkeypatch.setattr(image_scores_module, "image_scores", spy)
    return calls


def _ranking(encoder: str) -> pd.DataFrame:
    return AnomalyRanker.load(latent_dir("tiny", encoder) / ANOMALY_FILE).scores


def test_pixel_scores_are_made_once_and_read_by_every_encoders_scores(
    tiny_survey: Survey, computed: list[str]
) -> None:
    from backend.modelling import train

    v1 = train.train_encoder("tiny", init="scratch", steps=2, batch_size=32, progress_bar=False)
    the_plan = plan("tiny", ["scores"])
    assert PIXELS.key in the_plan.items[Target("scores", "tiny", "encoder", v1.version).key].deps
    assert the_plan.items[PIXELS.key].status == "missing"
    ensure("tiny", ["embeddings", "index", "scores"], "sync")
    assert computed == ["tiny"]
    assert (PIXELS.directory / PIXEL_SCORES_FILE).is_file()
    record = read_lineage(PIXELS)
    assert record["inputs"]["scorers"]["scorers"] == ["sharpness", "asymmetry"]
    assert not plan("tiny", ["scores"]).todo

    # the ranking is the one of the pixel scores computed in place (the code before the product)
    computed.clear()
    pixels, psf = image_scores_module.image_scores(tiny_survey)
    embeddings = open_embeddings("tiny", "encoder", v1.version)
    expected = AnomalyRanker.fit(
        embeddings, scorers=DEFAULT_SCORERS, combine_with=DEFAULT_COMBINE, pixels=pixels,
        object_ids=tiny_survey.catalog["object_id"].to_numpy(),
        index=SimilarityIndex.load(latent_dir("tiny", v1.version), embeddings),
    ).scores  # fmt: skip
    found = _ranking(v1.version)
    pd.testing.assert_frame_equal(found, expected, check_like=True)
    assert found.attrs["pixel_scores"] == psf
    computed.clear()

    # a second encoder's scores read the product: nothing is computed again
    v2 = train.train_encoder("tiny", init="scratch", steps=2, batch_size=32, progress_bar=False)
    ModelRegistry().set_active("tiny", "encoder", v2.version)
    assert plan("tiny", ["scores"]).items[PIXELS.key].status == "current"
    ensure("tiny", ["embeddings", "scores"], "sync")
    outcome = make_scores("tiny", v2.version)  # the `score` command's path
    assert computed == []
    assert any("read from the survey product" in note for note in outcome.notes)
    np.testing.assert_array_equal(
        _ranking(v2.version)["sharpness_raw"].sort_index(), found["sharpness_raw"].sort_index()
    )
    scores_record = read_lineage(Target("scores", "tiny", "encoder", v2.version))
    assert scores_record["inputs"]["pixel_scores"] == record["content_hash"]

    # a ranking without pixel scorers does not read (or wait for) them
    only_knn = plan("tiny", ["scores"], params={"scores": {"scorers": ["knn"]}})
    key = Target("scores", "tiny", "encoder", v2.version).key
    assert PIXELS.key not in only_knn.items[key].deps

    # a re-ingest (new images) makes them outdated, and the next scores remake them once
    images = make_blobs(150, seed=1)
    images[7, :, 8, 8] += 500.0  # a cosmic ray the old images did not have
    with SurveyWriter("tiny", ["g", "r", "i"], (16, 16), "test", overwrite=True) as writer:
        writer.append(images, tiny_survey.catalog)
    item = plan("tiny", ["pixel_scores"]).items[PIXELS.key]
    assert (item.status, item.action) == ("outdated", "build")
    assert "images changed" in item.reason
    ensure("tiny", ["scores"], "sync")
    assert computed == ["tiny"]
    pixels = _ranking(v2.version).sort_index()["sharpness_raw"].to_numpy()
    assert int(np.argmax(pixels)) == 7


def test_changed_scorers_remake_the_pixel_scores(
    tiny_survey: Survey, computed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    image_scores_module.survey_pixel_scores(tiny_survey)
    image_scores_module.survey_pixel_scores(tiny_survey)
    assert computed == ["tiny"]
    monkeypatch.setattr(image_scores_module, "FORMAT", image_scores_module.FORMAT + 1)
    item = plan("tiny", ["pixel_scores"]).items[PIXELS.key]
    assert "scorers changed" in item.reason
    image_scores_module.survey_pixel_scores(tiny_survey)
    assert computed == ["tiny", "tiny"]


def test_a_damaged_pixel_scores_file_is_one_clear_error(tiny_survey: Survey) -> None:
    image_scores_module.survey_pixel_scores(tiny_survey)
    path = PIXELS.directory / PIXEL_SCORES_FILE
    pd.DataFrame({"sharpness": np.zeros(3, np.float32)}).to_parquet(path)
    with pytest.raises(LatentError, match=r"pixel_scores\.parquet: 3 rows"):
        image_scores_module.read_pixel_scores(tiny_survey)
