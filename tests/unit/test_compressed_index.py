"""The compressed similarity index (IVF-PQ, lists on disk, exact re-ranking): recall against
exact search, a build in blocks equal to one in a single block, save/load, and the pipeline,
the ``search`` CLI and the Similar view using it when the survey is above the threshold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from backend import cli
from backend.latent import compressed
from backend.latent.errors import LatentError, MissingProductError
from backend.latent.search import SimilarityIndex, _exact_neighbours, recall_at_k
from backend.latent.service import clear_cache, latent_services
from backend.latent.synthetic import clustered_embeddings
from backend.latent.vectors import normalize
from backend.survey import Survey
from tests.unit.test_latent_query import add_encoder

N, DIM = 12_000, 64


@pytest.fixture(scope="module")
def vectors(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """Clustered embeddings, memory-mapped from an ``embeddings.npy`` as a product's are."""
    x, _ = clustered_embeddings(N, dim=DIM, n_clusters=40, seed=3)
    path = tmp_path_factory.mktemp("emb") / "embeddings.npy"
    np.save(path, x)
    return np.load(path, mmap_mode="r")


@pytest.fixture(scope="module")
def built(vectors: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> SimilarityIndex:
    workdir = Path(vectors.filename).parent
    return SimilarityIndex.build(vectors, kind="ivfpq", target_recall=0.95, workdir=workdir)


def test_recall_at_10_against_exact_search(built: SimilarityIndex, vectors: np.ndarray) -> None:
    assert built.kind == "ivfpq" and len(built) == N
    assert built.info["pq_m"] == DIM // 4 and built.info["rerank_depth"] in compressed.DEPTHS
    assert built.info["tuned_recall_at_10"] >= 0.95
    held_out = np.arange(N - 400, N, 2)  # other rows than the tuning drew, mostly
    exact = _exact_neighbours(normalize(vectors[held_out]), vectors, 10)
    sims, ids = built.search(vectors[held_out], 10)
    assert recall_at_k(ids, exact) >= 0.9
    assert (ids[:, 0] == held_out).mean() > 0.99  # each row finds itself first
    assert np.all(np.diff(sims, axis=1) <= 1e-6)
    rows = normalize(vectors[ids[0]]) @ normalize(vectors[held_out[:1]])[0]
    np.testing.assert_allclose(sims[0], rows, rtol=1e-5)  # similarities are exact, not PQ


def test_lists_live_on_disk_and_the_data_file_holds_every_code(built: SimilarityIndex) -> None:
    invlists = built.index.invlists
    assert "OnDisk" in type(faiss_downcast(invlists)).__name__
    sizes = sum(invlists.list_size(i) for i in range(invlists.nlist))
    assert sizes == N
    assert built.data_path is not None and built.data_path.stat().st_size >= N * built.info["pq_m"]


def faiss_downcast(invlists: object) -> object:
    import faiss

    return faiss.downcast_InvertedLists(invlists)


def test_a_build_in_blocks_equals_one_in_a_single_block(
    vectors: np.ndarray, tmp_path: Path
) -> None:
    rows = vectors[:6000]
    params = compressed.PQParams(nlist=24, m=8)
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    one = compressed.build_ivfpq(rows, tmp_path / "a", params=params)
    blocks = compressed.build_ivfpq(rows, tmp_path / "b", params=params, block_rows=1000)
    assert blocks.ntotal == one.ntotal == len(rows)
    queries = normalize(rows[:50])
    a = compressed.search_reranked(one, rows, queries, 10, nprobe=8, depth=10)
    b = compressed.search_reranked(blocks, rows, queries, 10, nprobe=8, depth=10)
    np.testing.assert_array_equal(a[1], b[1])
    assert not list((tmp_path / "b").glob(".ivfpq-*"))  # the scratch blocks are gone


def test_save_load_round_trip(built: SimilarityIndex, vectors: np.ndarray, tmp_path: Path) -> None:
    built.save(tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["index.faiss", "index.ivfdata", "index.json"]
    assert json.loads((tmp_path / "index.json").read_text())["kind"] == "ivfpq"
    loaded = SimilarityIndex.load(tmp_path, vectors)
    assert loaded.info == built.info
    np.testing.assert_array_equal(
        loaded.search(vectors[:30], 7)[1], built.search(vectors[:30], 7)[1]
    )
    with pytest.raises(LatentError, match=r"embeddings\.npy"):
        SimilarityIndex.load(tmp_path)  # no embeddings given, none beside it
    np.save(tmp_path / "embeddings.npy", np.asarray(vectors[:10]))
    with pytest.raises(LatentError, match=r"shape \(10, 64\)"):
        SimilarityIndex.load(tmp_path)
    (tmp_path / "index.ivfdata").unlink()
    with pytest.raises(MissingProductError, match=r"index\.ivfdata is missing"):
        SimilarityIndex.load(tmp_path, vectors)


def test_auto_picks_it_above_the_configured_threshold(
    vectors: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = np.asarray(vectors[:2000])
    monkeypatch.setenv("LATENTSKY_COMPRESSED_INDEX_ABOVE", "1999")
    assert SimilarityIndex.build(small, workdir=tmp_path).kind == "ivfpq"
    monkeypatch.setenv("LATENTSKY_COMPRESSED_INDEX_ABOVE", "2000")
    assert SimilarityIndex.build(small).kind == "flat"
    monkeypatch.setenv("LATENTSKY_COMPRESSED_INDEX_ABOVE", "many")
    with pytest.raises(ValueError, match="LATENTSKY_COMPRESSED_INDEX_ABOVE='many'"):
        SimilarityIndex.build(small)


@pytest.fixture
def compressed_survey(tiny_survey: Survey, monkeypatch: pytest.MonkeyPatch) -> Survey:
    """The tiny survey (150 objects) above a threshold of 100: its index is compressed."""
    monkeypatch.setenv("LATENTSKY_COMPRESSED_INDEX_ABOVE", "100")
    add_encoder(tiny_survey)
    clear_cache()
    return tiny_survey


def test_pipeline_cli_search_and_scores_use_it(
    compressed_survey: Survey, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from backend.pipeline.kinds import Target
    from backend.pipeline.lineage import read_lineage, verify

    product = home / "products" / "tiny" / "encoder-v0001"
    assert cli.main(["index", "--survey", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "ivfpq index of 150 objects" in out and "rerank_depth=" in out
    assert {"index.faiss", "index.json", "index.ivfdata"} <= {p.name for p in product.iterdir()}
    assert not [p for p in product.iterdir() if p.name.startswith(".staging-")]
    target = Target("index", "tiny", "encoder", "v0001")
    assert set(read_lineage(target)["files"]) == {"index.faiss", "index.json", "index.ivfdata"}
    assert verify(target)

    assert cli.main(["search", "--survey", "tiny", "--id", "tiny-0005", "-k", "3"]) == 0
    out = capsys.readouterr().out
    assert "3 objects of tiny (encoder v0001) like tiny-0005" in out
    assert "resizing" not in out and "ondisk" not in out  # FAISS's printf kept off stdout
    exact = latent_services("tiny").search()
    assert exact.index.kind == "ivfpq"
    found = exact.by_object("tiny-0005", k=3)["index"].tolist()
    unit = normalize(np.asarray(exact.embeddings))
    sims = unit @ unit[5]
    sims[5] = -np.inf
    assert found == np.argsort(-sims, kind="stable")[:3].tolist()  # 150 rows: re-ranking is exact

    assert cli.main(["score", "--survey", "tiny"]) == 0
    assert "kNN distances from the saved ivfpq index" in capsys.readouterr().out

    assert cli.main(["index", "--survey", "tiny", "--kind", "flat"]) == 0
    assert not (product / "index.ivfdata").exists()  # the old lists file went with its index
    assert set(read_lineage(target)["files"]) == {"index.faiss", "index.json"}


def test_the_similar_view_searches_with_it(compressed_survey: Survey) -> None:
    from app.data import load_survey_data
    from app.state import AppState
    from app.views.similar import MODES, SimilarView

    assert cli.main(["index", "--survey", "tiny"]) == 0
    view = SimilarView(data=load_survey_data("tiny"), state=AppState(survey="tiny", user="ana"))
    view.mode.value = MODES[1]
    view.object_id.value = "tiny-0007"
    view.search()
    assert latent_services("tiny").search().index.kind == "ivfpq"
    results = view._results
    assert results is not None and len(results) == int(view.k.value)
    assert 7 not in results["index"].tolist()
    assert (np.diff(results["similarity"]) <= 1e-6).all()


def test_a_knn_task_with_it_pickles_for_a_dask_worker(
    built: SimilarityIndex, vectors: np.ndarray, tmp_path: Path
) -> None:
    """kNN scores run per partition on workers: the task carries the lists file's path and the
    memory-mapped embeddings it re-ranks with, not their contents."""
    import pickle

    from backend.latent.partitioned import KnnPartition, RowSource

    built.save(tmp_path)
    task = KnnPartition(SimilarityIndex.load(tmp_path, vectors), RowSource(vectors), 5, None)
    payload = pickle.dumps(task)
    assert len(payload) < 2**20  # not the 12,000 x 64 floats nor the codes
    np.testing.assert_array_equal(pickle.loads(payload)((100, 140))[1], task((100, 140))[1])


def test_lists_assigned_by_two_local_dask_workers_equal_in_process(
    vectors: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows are assigned to lists per partition on the executor (workers map the embeddings
    file themselves) and encoded here in row order: the same index as in one process."""
    from backend.latent import search
    from backend.pipeline.execution import executor

    rows = vectors[:3000]
    monkeypatch.setattr(search, "CHUNK", 512)  # 6 partitions
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    kw = {"kind": "ivfpq", "target_recall": 0.9}
    sync = SimilarityIndex.build(rows, scheduler="sync", workdir=tmp_path / "a", **kw)
    with executor("local:2") as ex:
        dask = SimilarityIndex.build(rows, scheduler=ex, workdir=tmp_path / "b", **kw)
    assert dask.info["nprobe"] == sync.info["nprobe"]
    np.testing.assert_array_equal(dask.search(rows[:40], 10)[1], sync.search(rows[:40], 10)[1])


def test_rerank_reads_a_mapped_files_rows_concurrently_and_gets_the_same_rows(
    built: SimilarityIndex, vectors: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 10^8 the rows are mostly not in the page cache: they are read with ``os.pread`` by
    many threads (one page fault after another is 100x slower there); same rows, same
    neighbours. A slice of a mapped file or an array in memory is indexed as before."""
    import os

    reads: list[int] = []
    preadv = os.preadv

    def counting(fd: int, buffers: list, offset: int) -> int:
        reads.append(offset)
        return preadv(fd, buffers, offset)

    monkeypatch.setattr(compressed.os, "preadv", counting)
    rows = np.sort(np.random.default_rng(8).choice(N, 500, replace=False))
    np.testing.assert_array_equal(compressed.read_rows(vectors, rows), np.asarray(vectors)[rows])
    assert len(reads) == 500
    reads.clear()
    tail = vectors[100:]
    np.testing.assert_array_equal(compressed.read_rows(tail, rows[:-10]), tail[rows[:-10]])
    assert reads == []  # not a whole file: indexed
    queries = normalize(vectors[:40])
    mapped = built.search_unit(queries, 10)
    assert len(reads) > 0
    in_memory = SimilarityIndex(built.index, built.info, np.asarray(vectors)).search_unit(
        queries, 10
    )
    np.testing.assert_array_equal(mapped[1], in_memory[1])
    np.testing.assert_allclose(mapped[0], in_memory[0], rtol=1e-6)
