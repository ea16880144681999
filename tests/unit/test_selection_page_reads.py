"""A selection's page of thumbnails on a paged survey (issue 12): its ids come from one look-up
and each row group of a column is decoded once, not once per object shown."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app import data as app_data
from app.selectionpanel import PAGE, SelectionPanel
from app.state import AppState
from backend.rowtable import RowTable, Source
from backend.survey import SurveyWriter
from tests.unit.test_tiled_explore import explore, survey_data  # noqa: F401  (fixture)

N = 2_000
GROUP = 250  # rows per parquet row group here (the pipeline writes 65,536)


def _ids(n: int) -> list[str]:
    return [f"obj-{i:05d}" for i in range(n)]


def _count_decoded(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Values converted by ``pd.Series.to_numpy`` while the test runs (a decoded row group)."""
    seen = {"values": 0}
    to_numpy = pd.Series.to_numpy

    def counted(self: pd.Series, *args: object, **kwargs: object) -> np.ndarray:
        seen["values"] += len(self)
        return to_numpy(self, *args, **kwargs)

    monkeypatch.setattr(pd.Series, "to_numpy", counted)
    return seen


def test_looking_up_rows_one_by_one_decodes_their_row_group_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "t.parquet"
    pd.DataFrame({"object_id": _ids(N), "mag": np.arange(N, dtype=np.float32)}).to_parquet(
        path, row_group_size=GROUP
    )
    table = RowTable([Source(path, {"object_id": "object_id", "mag": "mag"})], N)
    decoded = _count_decoded(monkeypatch)
    rows = [3, 17, 101, 249, 0, 42, 200, 7]  # all in the first row group
    got = [table["object_id"].iat[i] for i in rows]
    assert got == [f"obj-{i:05d}" for i in rows]
    assert table.reads["groups"] == 1
    assert decoded["values"] <= GROUP + len(rows)  # the group once (and the answers)
    assert list(table.values("mag", [260, 5, 1999])) == [260.0, 5.0, 1999.0]
    ids = table["object_id"][np.array([1999, 3, 600])]
    assert list(ids) == ["obj-01999", "obj-00003", "obj-00600"]


def _survey(monkeypatch: pytest.MonkeyPatch, paged: bool) -> app_data.SurveyData:
    """A survey of N objects in row groups of GROUP, opened paged (above the threshold) or in
    memory."""
    monkeypatch.setattr("backend.survey.catalog_stream.ROW_GROUP", GROUP)
    rng = np.random.default_rng(0)
    with SurveyWriter("pg", ["g"], (8, 8), "test") as writer:
        catalog = pd.DataFrame({"object_id": _ids(N), "ra": rng.uniform(0, 1, N),
                                "dec": rng.uniform(0, 1, N)})  # fmt: skip
        writer.append(rng.normal(size=(N, 1, 8, 8)).astype(np.float32), catalog)
    monkeypatch.setenv("LATENTSKY_TILED_MAP_ABOVE", str(N // 2 if paged else N * 2))
    app_data.clear_cache()
    data = app_data.survey_data("pg")
    assert data.paged == paged
    return data


@pytest.fixture
def paged(home: Path, monkeypatch: pytest.MonkeyPatch) -> app_data.SurveyData:
    yield _survey(monkeypatch, paged=True)
    app_data.clear_cache()


def test_a_page_of_ids_from_a_survey_in_memory_converts_only_its_rows(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _survey(monkeypatch, paged=False)
    rows = np.array([1999, 3, 600, 3])
    decoded = _count_decoded(monkeypatch)
    assert data.object_ids(rows) == ["obj-01999", "obj-00003", "obj-00600", "obj-00003"]
    assert decoded["values"] <= len(rows)  # not the whole column for a page of 48
    app_data.clear_cache()


def test_a_selection_page_reads_its_ids_in_one_look_up(
    paged: app_data.SurveyData, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    values = RowTable.values

    def spied(self: RowTable, column: str, rows: object) -> pd.Series:
        if column == "object_id":
            calls.append(len(np.asarray(rows).reshape(-1)))
        return values(self, column, rows)

    monkeypatch.setattr(RowTable, "values", spied)
    panel = SelectionPanel(lambda i: ("", None), lambda: None, data=paged,
                           state=AppState(survey="pg"))  # fmt: skip
    selected = np.arange(5, N, 37)[::-1].copy()  # spread over every row group, not in order
    panel.select(selected, "box")
    items = panel._gallery.items
    assert [it["index"] for it in items] == selected[:PAGE].tolist()
    assert [it["id"] for it in items] == [f"obj-{i:05d}" for i in selected[:PAGE]]
    assert all(it["url"].startswith(f"/thumb/pg/{it['index']}.png") for it in items)
    assert calls == [PAGE]  # one look-up for the page, not one per object
    assert paged.object_ids([]) == []


@pytest.mark.parametrize("tool", ["box", "lasso"])
def test_a_map_selection_sends_its_gallery_before_the_maps_outline(
    survey_data: app_data.SurveyData,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    tool: str,
) -> None:
    """The browser handles the server's messages in order, and redrawing the map for the
    outline takes it a few hundred ms: the gallery goes first, so its pictures load meanwhile."""
    view = explore(survey_data, monkeypatch)
    sent: list[str] = []
    select = view.selection.select
    monkeypatch.setattr(view.selection, "select", lambda *a: (sent.append("gallery"), select(*a)))
    monkeypatch.setattr(view._shape_pipe, "send", lambda data: sent.append("outline"))
    if tool == "box":
        view._on_box((-20.0, -20.0, 20.0, 20.0))
    else:
        view._on_lasso(np.array([(-20.0, -20.0), (20.0, -20.0), (20.0, 20.0), (-20.0, 20.0)]))
    assert sent == ["gallery", "outline"]
    assert view.selection._count > PAGE and len(view.selection._gallery.items) == PAGE


def _deflate_level(png: bytes) -> int:
    """zlib's FLEVEL of a PNG's first IDAT stream (0: fastest, 1: fast, 2: default, 3: max)."""
    at = png.index(b"IDAT") + 4
    return png[at + 1] >> 6


def test_thumbnails_are_encoded_fast_and_losslessly() -> None:
    from io import BytesIO

    from PIL import Image

    from backend.survey.render import png_bytes

    rng = np.random.default_rng(1)
    picture = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    png = png_bytes(picture)
    assert _deflate_level(png) == 0  # zlib's fastest: encoding is most of a thumbnail's cost
    assert np.array_equal(np.asarray(Image.open(BytesIO(png))), picture)
    big = Image.open(BytesIO(png_bytes(picture, 88)))
    assert big.size == (88, 88) and big.mode == "RGB"
    assert _deflate_level(png_bytes(picture[..., 0], 88)) == 0  # one band, greyscale


def test_a_selection_made_here_does_not_redraw_the_sky_views_marks(
    survey_data: app_data.SurveyData,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each redraw of a map layer makes the browser redraw the whole map before it handles
    the gallery: a box on the latent map leaves the (empty) marks of a sky selection alone."""
    import holoviews as hv
    import holoviews.plotting.bokeh

    from app.selection import ArrayRows
    from app.views.explore import ExploreView
    from tests.unit.test_explore_sky_selection import _marked

    calls: list[object] = []
    drawn = ExploreView.sky_selection

    def spied(self: ExploreView, rows: object) -> object:
        calls.append(rows)
        return drawn(self, rows)

    monkeypatch.setattr(ExploreView, "sky_selection", spied)
    view = explore(survey_data, monkeypatch)
    plot = hv.renderer("bokeh").get_plot(view._map.object)  # what the browser shows
    calls.clear()  # the first drawing
    view.selection.select(ArrayRows(np.array([1, 2])), "box")
    assert calls == []
    rows = np.array([5, 17, 300])
    view.state.share_selection(ArrayRows(rows), "sky")  # a box on the sky: marked here
    assert len(calls) == 1 and len(_marked(plot.state)) == 3
    view.selection.select(ArrayRows(np.array([1, 2])), "box")  # the marks are cleared once
    assert len(calls) == 2 and _marked(plot.state) == set()
    view.selection.select(ArrayRows(np.array([3, 4])), "box")
    assert len(calls) == 2


def test_the_catalog_stores_ids_for_reading_a_row_group_fast(
    paged: app_data.SurveyData,
) -> None:
    """A page's ids are read row group by row group: ``object_id`` is written plain and
    uncompressed (decoding is most of such a read), the other columns as before."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(paged.survey.path / "catalog.parquet").metadata
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    group = meta.row_group(0)
    chunks = {name: group.column(i) for i, name in enumerate(names)}
    assert chunks["object_id"].compression == "UNCOMPRESSED"
    assert not chunks["object_id"].has_dictionary_page
    assert chunks["ra"].compression == "SNAPPY"
    assert paged.object_ids([0, 1999, 250]) == ["obj-00000", "obj-01999", "obj-00250"]
