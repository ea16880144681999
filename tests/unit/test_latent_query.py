"""Similarity queries on a survey: by object, position, image and examples; clear errors."""

from __future__ import annotations

from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
import torch
from astropy.coordinates import SkyCoord

from backend.latent.errors import LatentError, MissingProductError
from backend.latent.query import SimilaritySearch
from backend.latent.search import SimilarityIndex
from backend.latent.service import clear_cache, latent_services
from backend.products import write_embeddings
from backend.registry import ModelRegistry
from backend.survey import Survey


def fake_embed(images: np.ndarray) -> np.ndarray:
    """A stand-in encoder: 4x4 average pooling of each band, flattened (48-d)."""
    n, c, h, w = images.shape
    pooled = images.reshape(n, c, 4, h // 4, 4, w // 4).mean(axis=(3, 5))
    return pooled.reshape(n, -1).astype(np.float32)


def add_encoder(survey: Survey, active: bool = True) -> str:
    """Register an encoder for ``survey`` and write its embeddings (``fake_embed``)."""
    registry = ModelRegistry()
    version = registry.save("encoder", {"w": torch.zeros(1)}, {"arch": "fake"}, survey=survey.name)
    if active:
        registry.set_active(survey.name, "encoder", version.version)
    emb = fake_embed(survey.cutouts(np.arange(len(survey))))

    def fill(out: np.ndarray) -> None:
        out[:] = emb

    write_embeddings(survey.name, "encoder", version.version, emb.shape, fill)
    return version.version


@pytest.fixture
def search(tiny_survey: Survey) -> SimilaritySearch:
    add_encoder(tiny_survey)
    clear_cache()
    return latent_services("tiny").search()


def test_by_object_excludes_itself_and_ranks_by_similarity(search: SimilaritySearch) -> None:
    result = search.by_object("tiny-0007", k=5)
    assert list(result.columns[:5]) == ["rank", "index", "object_id", "similarity", "distance"]
    assert {"ra", "dec", "size_class"} <= set(result.columns)
    assert result["rank"].tolist() == [1, 2, 3, 4, 5]
    assert 7 not in result["index"].tolist()
    assert (np.diff(result["similarity"]) <= 1e-6).all()
    np.testing.assert_allclose(result["distance"], 1 - result["similarity"], atol=1e-6)
    assert result.attrs["query"] == {"type": "object", "index": 7, "object_id": "tiny-0007"}
    assert search.by_object(7, k=5)["index"].tolist() == result["index"].tolist()


def test_by_position_finds_the_object_within_the_radius(search: SimilaritySearch) -> None:
    row = search.survey.catalog.iloc[42]
    near = SkyCoord(row.ra, row.dec, unit="deg").spherical_offsets_by(0 * u.arcsec, 3 * u.arcsec)
    result = search.by_position(near.to_string("hmsdms", sep=":"), k=3, radius_arcsec=5)
    assert result.attrs["query"]["object_id"] == "tiny-0042"
    assert result.attrs["query"]["separation_arcsec"] == pytest.approx(3, abs=0.05)
    with pytest.raises(LatentError, match=r"no object within 1 arcsec .* closest is tiny-0042"):
        search.by_position(near, k=3, radius_arcsec=1)
    with pytest.raises(LatentError, match="outside"):
        search.by_position("361 2", k=3)


def test_by_image_finds_the_same_galaxy(search: SimilaritySearch) -> None:
    cutout = search.survey.cutout(31)
    result = search.by_image(cutout, fake_embed, k=3)
    assert result["index"].iloc[0] == 31
    assert result["similarity"].iloc[0] == pytest.approx(1.0, abs=1e-5)


def test_bad_images_are_refused_with_expected_and_got(search: SimilaritySearch) -> None:
    cutout = search.survey.cutout(3)
    with pytest.raises(LatentError, match=r"2 band\(s\), survey tiny expects 3 \(g, r, i\)"):
        search.by_image(cutout[:2], fake_embed)
    with pytest.raises(LatentError, match="is 32x32 pixels, survey tiny expects 16x16"):
        search.by_image(np.zeros((3, 32, 32)), fake_embed)
    with pytest.raises(LatentError, match="shape"):
        search.by_image(np.zeros((16, 16)), fake_embed)
    holed = cutout.copy()
    holed[0, 2, 2] = np.nan
    with pytest.raises(LatentError, match="1 NaN/infinite pixel"):
        search.by_image(holed, fake_embed)
    filled = search.by_image(holed, fake_embed, k=1, nonfinite="fill")
    assert filled["index"].iloc[0] == 3
    with pytest.raises(LatentError, match=r"encoder returned shape \(1, 5\)"):
        search.by_image(cutout, lambda x: np.zeros((1, 5)))


def test_examples_move_the_query(search: SimilaritySearch) -> None:
    pos = search.by_examples(["tiny-0010", "tiny-0012"], k=10)
    assert not {10, 12} & set(pos["index"])
    neg = search.by_examples(["tiny-0010", "tiny-0012"], ["tiny-0011"], k=10)
    assert 11 not in neg["index"].tolist()
    with pytest.raises(LatentError, match="both a positive and a negative"):
        search.by_examples(["tiny-0010"], ["tiny-0010"])
    with pytest.raises(LatentError, match="at least one positive"):
        search.by_examples([])


def test_dedupe_drops_close_pairs_and_still_returns_k(search: SimilaritySearch) -> None:
    plain = search.by_object(50, k=20)
    deduped = search.by_object(50, k=20, dedupe_arcsec=40)
    assert len(deduped) == 20
    coords = SkyCoord(deduped["ra"], deduped["dec"], unit="deg")
    sep = coords[:, None].separation(coords[None, :]).arcsec
    assert (sep[np.triu_indices(20, 1)] > 40).all()
    assert plain["index"].iloc[0] == deduped["index"].iloc[0]


def test_bad_references_and_k(search: SimilaritySearch) -> None:
    with pytest.raises(LatentError, match="unknown object id 'nope'"):
        search.by_object("nope")
    with pytest.raises(LatentError, match=r"index 150 out of range 0\.\.149"):
        search.by_object(150)
    with pytest.raises(LatentError, match="k must be between 1 and 10,000"):
        search.by_object(1, k=0)
    assert len(search.by_object(1, k=10_000)) == 149


def test_services_need_embeddings_and_say_how(tiny_survey: Survey) -> None:
    clear_cache()
    with pytest.raises(MissingProductError, match="python -m backend prepare --survey tiny"):
        latent_services("tiny")
    add_encoder(tiny_survey, active=False)  # not active: the latest encoder is used
    services = latent_services("tiny")
    assert services.version == "v0001" and services is latent_services("tiny")
    with pytest.raises(MissingProductError, match="python -m backend map"):
        services.map()


def test_saved_index_is_used(search: SimilaritySearch, home: Path) -> None:
    services = latent_services("tiny")
    SimilarityIndex.build(services.embeddings, kind="hnsw").save(services.directory)
    clear_cache()
    assert latent_services("tiny").search().index.kind == "hnsw"


def test_concurrent_queries_agree_with_serial_ones(search: SimilaritySearch) -> None:
    from concurrent.futures import ThreadPoolExecutor

    SimilarityIndex.build(search.embeddings, kind="hnsw").save(latent_services("tiny").directory)
    clear_cache()
    shared = latent_services("tiny").search()  # one HNSW index, many threads
    serial = [shared.by_object(i, k=10)["index"].tolist() for i in range(40)]
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(lambda i: shared.by_object(i, k=10)["index"].tolist(), range(40)))
    assert parallel == serial
