"""Embeddings stored as float16 (issue 12: 10^8 x 128 is 25.6 GB instead of 51 GB).

``import embeddings --dtype float16`` (or ``auto`` above a size) writes half the bytes; every
product that reads them (map, similarity index with its re-ranking, anomaly and OOD scores,
the label queue, linear probes) takes float16 rows as it takes float32 ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend.cli import main
from backend.latent.synthetic import clustered_embeddings
from backend.survey import Survey


def stored(home: Path, version: str = "v0001") -> np.ndarray:
    return np.load(home / "products" / "tiny" / f"encoder-{version}" / "embeddings.npy")


def vectors(survey: Survey) -> np.ndarray:
    x, _ = clustered_embeddings(len(survey), 16, n_clusters=3, separation=1.0, seed=4)
    return x


def test_float16_import_halves_the_file_and_every_product_reads_it(
    tiny_survey: Survey,
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from backend.latent.service import clear_cache, latent_services
    from backend.pipeline.runner import lineage

    vec = vectors(tiny_survey)
    np.save(tmp_path / "v.npy", vec)
    argv = ["import", "embeddings", str(tmp_path / "v.npy"), "--survey", "tiny", "--activate"]
    assert main([*argv, "--dtype", "float16"]) == 0
    assert "(stored as float16)" in capsys.readouterr().out
    half = stored(home)
    assert half.dtype == np.float16 and half.shape == vec.shape
    np.testing.assert_allclose(half.astype(np.float32), vec, rtol=1e-3, atol=1e-3)
    assert lineage("tiny", "embeddings")["files"]  # hashed like a float32 product

    monkeypatch.setenv("LATENTSKY_COMPRESSED_INDEX_ABOVE", "100")  # IVF-PQ re-ranking float16
    products = ["--products", "map,index,scores,ood", "--scheduler", "sync"]
    assert main(["products", "--survey", "tiny", "--ensure", *products]) == 0
    clear_cache()
    services = latent_services("tiny")
    assert services.embeddings.dtype == np.float16
    search = services.search()
    assert search.index.kind == "ivfpq"
    unit = vec / np.linalg.norm(vec, axis=1, keepdims=True)
    sims, rows = search.index.search(vec[:20], 5)
    exact = np.argsort(-(unit[:20] @ unit.T), axis=1, kind="stable")[:, :5]
    assert np.mean([len(set(a) & set(b)) / 5 for a, b in zip(rows, exact, strict=True)]) >= 0.9
    np.testing.assert_allclose(sims[:, 0], 1.0, atol=2e-3)  # each row finds itself
    coords = np.asarray(services.map().coords)
    assert coords.shape == (150, 2) and np.isfinite(coords).all()
    ranker = services.anomalies()
    assert np.isfinite(ranker.scores["anomaly"].to_numpy()).all()


def test_auto_stores_float16_above_the_threshold_only(
    tiny_survey: Survey, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    np.save(tmp_path / "v.npy", vectors(tiny_survey))
    argv = ["import", "embeddings", str(tmp_path / "v.npy"), "--survey", "tiny"]
    monkeypatch.setenv("LATENTSKY_FLOAT16_EMBEDDINGS_ABOVE", "1000")
    assert main(argv) == 0
    assert stored(home, "v0001").dtype == np.float32
    monkeypatch.setenv("LATENTSKY_FLOAT16_EMBEDDINGS_ABOVE", "149")
    assert main(argv) == 0
    assert stored(home, "v0002").dtype == np.float16
    assert main([*argv, "--dtype", "float32"]) == 0
    assert stored(home, "v0003").dtype == np.float32


def test_float16_refuses_values_beyond_its_range(
    tiny_survey: Survey, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vec = vectors(tiny_survey)
    vec[7, 2] = 1e6
    path = tmp_path / "big.npy"
    np.save(path, vec)
    argv = ["import", "embeddings", str(path), "--survey", "tiny", "--dtype", "float16"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "beyond float16's range" in err and "tiny-0007" in err
    assert not (home / "products" / "tiny" / "encoder-v0001" / "embeddings.npy").exists()
    assert main([*argv[:-1], "float32"]) == 0  # float32 keeps them


def test_label_queue_and_probes_read_float16(
    tiny_survey: Survey, home: Path, tmp_path: Path
) -> None:
    from backend.active.acquisition import next_batch
    from backend.active.loop import cross_validated_metrics
    from backend.evaluation.metrics import linear_probe
    from backend.products import open_embeddings

    np.save(tmp_path / "v.npy", vectors(tiny_survey))
    argv = ["import", "embeddings", str(tmp_path / "v.npy"), "--survey", "tiny", "--activate"]
    assert main([*argv, "--dtype", "float16"]) == 0
    emb = open_embeddings("tiny", "encoder", "v0001")
    assert emb.dtype == np.float16
    labels = (np.asarray(tiny_survey.catalog["size_class"]) == "big").astype(np.int64)
    metrics = cross_validated_metrics(emb, labels, ["small", "big"], steps=20)
    assert 0.0 <= metrics["accuracy"] <= 1.0
    rows = np.arange(150)
    probe = linear_probe(emb, labels, rows[rows % 3 > 0], rows[rows % 3 == 0])
    assert all(np.isfinite(v) for v in probe.values())
    batch = next_batch(emb, None, np.zeros(150, bool), size=10)
    assert len(batch) == 10 and len(set(batch.tolist())) == 10


def test_a_classifier_trains_and_predicts_on_float16(
    tiny_survey: Survey, home: Path, tmp_path: Path
) -> None:
    from backend.modelling.train import train_classifier
    from backend.pipeline.runner import ensure
    from backend.products import read_predictions

    np.save(tmp_path / "v.npy", vectors(tiny_survey))
    argv = ["import", "embeddings", str(tmp_path / "v.npy"), "--survey", "tiny", "--activate"]
    assert main([*argv, "--dtype", "float16"]) == 0
    version = train_classifier("tiny", label_column="size_class", epochs=2, progress_bar=False)
    ensure("tiny", ["predictions:classifier"], "sync")
    table = read_predictions("tiny", "classifier", version.version)
    probs = table[[c for c in table.columns if c.startswith("p_")]].to_numpy()
    assert probs.shape == (150, 2) and np.allclose(probs.sum(axis=1), 1, atol=1e-4)


def test_knn_scores_by_cells_read_float16(
    tiny_survey: Survey, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The big-survey scores path (k-means leaves over memory-mapped rows) on float16 rows
    ranks objects as it does on the same vectors in float32."""
    from scipy.stats import spearmanr

    from backend.latent import cellknn, scorers
    from backend.latent.anomaly import AnomalyRanker
    from backend.latent.pipeline import make_scores
    from backend.latent.source import ANOMALY_FILE, latent_dir

    np.save(tmp_path / "v.npy", vectors(tiny_survey))
    argv = ["import", "embeddings", str(tmp_path / "v.npy"), "--survey", "tiny"]
    assert main([*argv, "--dtype", "float32"]) == 0
    assert main([*argv, "--dtype", "float16"]) == 0
    monkeypatch.setattr(scorers, "CELL_KNN_ABOVE", 50)  # 150 objects count as a big survey
    monkeypatch.setattr(cellknn, "CELL_SIZE", 16)
    raw = {}
    for version in ("v0001", "v0002"):
        outcome = make_scores("tiny", version, scorers=("knn",), scheduler="sync")
        assert any(n.startswith("kNN by cells: ") for n in outcome.notes)
        saved = AnomalyRanker.load(latent_dir("tiny", version) / ANOMALY_FILE).scores
        raw[version] = saved["knn_raw"].to_numpy()
    assert stored(home, "v0002").dtype == np.float16 and np.isfinite(raw["v0002"]).all()
    assert spearmanr(raw["v0001"], raw["v0002"]).statistic > 0.98
