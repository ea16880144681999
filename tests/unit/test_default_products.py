"""What a survey is prepared with depends on the survey: the OOD scores always, the map tiles
when it has at least ``LATENTSKY_TILED_MAP_ABOVE`` objects; the jobs remake what reads the
product they make, a hand activation waits for them, and an imported encoder's own survey is
not called "like the training data"."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.cli import main
from backend.pipeline.kinds import Target, default_products, encoder_products, with_derived
from backend.survey import Survey
from tests.unit.test_tiles_product import N, big  # noqa: F401  (fixture)

ABOVE = "LATENTSKY_TILED_MAP_ABOVE"


def test_the_default_products_follow_the_survey_size(
    big: np.ndarray,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(ABOVE, str(N + 1))
    assert "tiles" not in default_products("big") and "ood" in default_products("big")
    assert "tiles" not in encoder_products("big") and "ood" in encoder_products("big")
    assert main(["products", "--survey", "big"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert "ood" in listed and "tiles" not in listed

    monkeypatch.setenv(ABOVE, str(N))  # at the threshold: tiled
    assert default_products("big")[-2:] == ("ood", "tiles")
    assert {"ood", "tiles", "predictions:classifier"} <= set(encoder_products("big"))
    assert with_derived("big", ["map"]) == ["map", "tiles"]
    assert with_derived("big", ["embeddings"]) == ["embeddings", "ood"]
    assert with_derived("big", ["index"]) == ["index"]
    assert main(["products", "--survey", "big", "--ensure"]) == 0
    for product in ("index", "scores", "ood", "tiles"):
        assert Target(product, "big", "encoder", "v0001").exists(), product
    out = capsys.readouterr().out
    assert "tiles" in out and "missing" not in out.split("ensure:")[-1]


def test_product_jobs_remake_what_reads_their_product(
    big: np.ndarray,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from backend.jobs.kinds import HANDLERS

    monkeypatch.setenv(ABOVE, "0")
    result = HANDLERS["embed"]("big", {}, lambda _: None)
    assert "ood/encoder-v0001" in result["made"], result
    result = HANDLERS["map"]("big", {}, lambda _: None)
    assert "tiles/encoder-v0001" in result["made"], result  # the map job's Explore is tiled
    monkeypatch.setenv(ABOVE, str(10 * N))
    result = HANDLERS["map"]("big", {}, lambda _: None)
    assert not any(key.startswith("tiles/") for key in [*result["made"], *result["present"]])


def test_a_hand_activation_waits_for_the_ood_scores(
    big: np.ndarray,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from backend.active.activation import activate_job, plan_activation

    monkeypatch.setenv(ABOVE, str(10 * N))
    main(["products", "--survey", "big", "--products", "index,scores", "--ensure"])
    plan = plan_activation("big", "encoder", "v0001")
    assert plan.missing == ["ood"] and not plan.immediate
    activate_job("big", {"kind": "encoder", "version": "v0001"}, lambda _: None, None)
    assert Target("ood", "big", "encoder", "v0001").exists()
    assert plan_activation("big", "encoder", "v0001").immediate


def test_an_imported_encoders_own_survey_is_scored_against_itself(
    tiny_survey: Survey, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.ood import survey_warning
    from backend.latent.ood_product import NO_REFERENCE, read_ood

    vectors = np.random.default_rng(0).normal(size=(len(tiny_survey), 5)).astype(np.float32)
    path = tmp_path / "vectors.parquet"
    ids = tiny_survey.catalog["object_id"].tolist()
    pd.DataFrame({"object_id": ids, "emb": list(vectors)}).to_parquet(path)
    argv = ["import", "embeddings", str(path), "--survey", "tiny", "--activate"]
    assert main(argv) == 0
    assert "ood" in capsys.readouterr().out.splitlines()[-1]  # the next step makes it
    assert main(["ood", "--survey", "tiny"]) == 0
    printed = capsys.readouterr().out
    assert f"v0001: {NO_REFERENCE}" in printed and "fine-tune" not in printed
    _, summary = read_ood("tiny", "v0001")
    assert summary["verdict"] == NO_REFERENCE and "imported" in summary["note"]
    assert survey_warning(summary) is None  # no domain-shift banner claimed either way
