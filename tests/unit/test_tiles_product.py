"""The map tiles as a pipeline product: made by ``ensure``, recorded, outdated by a new map, and
used by the app only when current and the survey is big enough."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.latent.source import MAP_FILE, MAP_LANDMARKS_FILE, MAP_META_FILE, latent_dir
from backend.latent.tiles_product import open_tiles
from backend.pipeline.build import record
from backend.pipeline.kinds import Target
from backend.pipeline.planner import plan
from backend.pipeline.runner import ensure
from backend.pipeline.storage import write_embeddings
from backend.registry import ModelRegistry
from backend.survey import SurveyWriter

N = 800
KEY = "tiles/encoder-v0001"


def write_map(xy: np.ndarray) -> None:
    """Map files as the map step leaves them (coordinates; the other files' content is not read
    by the tiles), recorded as the pipeline records a new map."""
    directory = latent_dir("big", "v0001")
    np.save(directory / MAP_FILE, xy)
    (directory / MAP_META_FILE).write_text("{}")
    (directory / MAP_LANDMARKS_FILE).write_bytes(b"landmarks")
    record(Target("map", "big", "encoder", "v0001"), None, None, adopted=True)


@pytest.fixture
def big(home: Path) -> np.ndarray:
    rng = np.random.default_rng(0)
    catalog = pd.DataFrame({
        "object_id": [f"b{i:04d}" for i in range(N)], "ra": np.zeros(N), "dec": np.zeros(N),
        "kind": np.where(rng.random(N) < 0.3, "bar", "disc"),
    })  # fmt: skip
    with SurveyWriter("big", ["g"], (4, 4), "test") as writer:
        writer.append(np.zeros((N, 1, 4, 4), dtype=np.float32), catalog)
    registry = ModelRegistry()
    version = registry.save("encoder", {}, {"kind": "imported", "bands": ["g"]}, survey="big")
    write_embeddings("big", "encoder", version.version, (N, 8),
                     lambda out: out.__setitem__(slice(None), rng.random((N, 8))))  # fmt: skip
    registry.set_active("big", "encoder", version.version)
    xy = rng.normal(0, 1, (N, 2)).astype(np.float32)
    write_map(xy)
    return xy


def test_ensure_makes_current_tiles_and_a_new_map_outdates_them(big: np.ndarray) -> None:
    assert plan("big", ["tiles"]).items[KEY].status == "missing"
    ensure("big", ["tiles"], "sync")
    item = plan("big", ["tiles"]).items[KEY]
    assert item.status == "current"
    tiles = open_tiles("big", "v0001")
    assert tiles.points == N and tiles.layers["kind"].categories == ("bar", "disc")
    assert tiles.extent.x0 == pytest.approx(float(big[:, 0].min()))
    write_map(big * 3)  # the map is remade
    item = plan("big", ["tiles"]).items[KEY]
    assert item.status == "outdated" and "map" in item.reason
    ensure("big", ["tiles"], "sync")
    assert plan("big", ["tiles"]).items[KEY].status == "current"
    assert open_tiles("big", "v0001").extent.x0 == pytest.approx(float(3 * big[:, 0].min()))


def test_the_app_uses_tiles_only_when_current_and_big_enough(
    big: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.data import SurveyData
    from app.mapview import tiled_map
    from backend.survey import Survey

    survey = Survey.open("big")
    data = SurveyData(survey, "v0001", {}, survey.catalog, big[:, 0].copy(), big[:, 1].copy())
    monkeypatch.setenv("LATENTSKY_TILED_MAP_ABOVE", "0")
    assert tiled_map(data) is None  # not made yet: every point is drawn
    ensure("big", ["tiles"], "sync")
    assert tiled_map(data) is not None
    monkeypatch.setenv("LATENTSKY_TILED_MAP_ABOVE", str(N + 1))
    assert tiled_map(data) is None  # a small survey draws every point
    monkeypatch.setenv("LATENTSKY_TILED_MAP_ABOVE", "0")
    write_map(big[::-1].copy())
    assert tiled_map(data) is None  # outdated tiles are never shown


def test_tiles_are_made_without_reading_the_catalog_whole(
    big: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The catalog's colourings are read one column at a time (at 10^8 objects the whole
    catalog as pandas, its ids as Python strings, held ~15 GB while the tiles were built)."""
    from backend.survey import Survey

    def whole(self: Survey) -> pd.DataFrame:
        raise AssertionError("the whole catalog was read")

    monkeypatch.setattr(Survey, "catalog", property(whole))
    ensure("big", ["tiles"], "sync")
    assert open_tiles("big", "v0001").layers["kind"].categories == ("bar", "disc")
