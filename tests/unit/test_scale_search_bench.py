"""``bench/scale_search.py``'s functions, which ``bench/bench_scale.py`` calls, run on a survey
made through the pipeline (a compressed index forced by a small threshold)."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.latent.pipeline import make_index, make_scores
from backend.latent.service import clear_cache
from backend.survey import Survey
from bench.scale_search import measure_lists, measure_search
from tests.unit.test_latent_query import add_encoder


def test_measure_search_and_lists_on_a_pipeline_survey(
    tiny_survey: Survey, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LATENTSKY_COMPRESSED_INDEX_ABOVE", "100")
    add_encoder(tiny_survey)
    assert make_index("tiny").info["kind"] == "ivfpq"
    make_scores("tiny")
    clear_cache()
    search = measure_search(home, "tiny", n_queries=30, k=5)
    assert search["kind"] == "ivfpq" and search["n"] == 150 and search["n_queries"] == 30
    assert search["recall_at_10"] >= 0.9  # 150 rows: re-ranking sees nearly every candidate
    assert 0 < search["p50_ms"] <= search["p95_ms"] and search["peak_rss_mb"] > 0
    assert search["params"]["rerank_depth"] >= 10 and search["pipeline_index_s"] > 0
    lists = measure_lists(home, "tiny", n=12)
    assert lists["label_queue_rows"] == 12
    assert lists["anomaly_first_page_s"] >= 0 and lists["label_queue_first_page_s"] > 0
    (home / "products" / "tiny" / "encoder-v0001" / "anomaly.parquet").unlink()
    clear_cache()
    lists = measure_lists(home, "tiny", n=12)
    assert "no anomaly scores" in lists["anomaly_skipped"] and lists["label_queue_rows"] == 12
