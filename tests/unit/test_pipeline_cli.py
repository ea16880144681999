"""``python -m backend products``: the listing a user reads, and --ensure."""

from __future__ import annotations

import pytest

from backend.cli import main
from backend.survey import Survey
from tests.unit.test_pipeline_app_cache import add_encoder


def test_products_lists_status_and_reason_and_ensure_makes_them(
    tiny_survey: Survey, capsys: pytest.CaptureFixture[str]
) -> None:
    encoder = add_encoder(tiny_survey, 1.0)
    assert main(["products", "--survey", "tiny", "--products", "index,scores"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["product", "model", "status", "content"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert (
        "unrecorded" in rows["embeddings"] and "made without a lineage record" in rows["embeddings"]
    )
    assert f"encoder {encoder}" in rows["index"] and "missing" in rows["index"]

    args = ["products", "--survey", "tiny", "--products", "index,scores", "--ensure"]
    assert main([*args, "--scheduler", "sync"]) == 0
    out = capsys.readouterr().out
    assert "ensure: 4 product(s) made" in out  # embeddings recorded, index, pixel scores, scores
    listing = [line for line in out.splitlines() if line.startswith(("index", "scores"))]
    assert len(listing) == 2 and all("current" in line and "up to date" in line for line in listing)


def test_an_unknown_product_is_one_clear_error(
    tiny_survey: Survey, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["products", "--survey", "tiny", "--products", "maps"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown product 'maps'") and "embeddings" in err
