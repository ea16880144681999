"""The PNG cache of thumbnails is bounded in bytes (LRU), shared by the surveys of a process."""

from __future__ import annotations

import pytest

from backend.survey import Survey, store


def test_the_thumbnail_cache_never_holds_more_bytes_than_configured(
    tiny_survey: Survey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LATENTSKY_THUMB_CACHE_MB", "0.01")  # ~10 KiB: a handful of PNGs
    renders = []
    real = Survey._render_png
    monkeypatch.setattr(Survey, "_render_png", lambda self, *a: renders.append(a) or real(self, *a))
    store.clear_thumbnail_cache()
    sizes = [len(tiny_survey.thumbnail_png(i, 64)) for i in range(150)]
    cache = store.thumbnail_cache()
    assert cache.limit == int(0.01 * 2**20)
    assert 0 < cache.nbytes <= cache.limit and len(cache) < 150
    assert cache.nbytes == sum(sizes[-len(cache) :])  # the latest ones are kept
    assert len(renders) == 150
    tiny_survey.thumbnail_png(149, 64)
    assert len(renders) == 150  # a hit
    tiny_survey.thumbnail_png(0, 64)
    assert len(renders) == 151  # evicted long ago: rendered again
    tiny_survey.band_png(3, "g", 64)
    assert cache.nbytes <= cache.limit


def test_the_default_bound_and_bad_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LATENTSKY_THUMB_CACHE_MB", raising=False)
    assert store.thumbnail_cache_bytes() == 256 * 2**20
    monkeypatch.setenv("LATENTSKY_THUMB_CACHE_MB", "-1")
    with pytest.raises(ValueError, match="LATENTSKY_THUMB_CACHE_MB"):
        store.thumbnail_cache_bytes()
