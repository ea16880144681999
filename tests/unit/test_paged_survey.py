"""A survey above ``LATENTSKY_TILED_MAP_ABOVE`` opens in the app without reading its tables or
its map (issue 12): rows are read on demand, row group by row group, and every view works."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import holoviews.plotting.bokeh  # noqa: F401  (options of the map images)
import numpy as np
import pandas as pd
import pytest

from app import data as app_data
from app.selection import box_indices
from app.state import AppState
from backend.latent.anomaly import AnomalyRanker
from backend.latent.paging import ColumnRanking, RankedList
from backend.latent.service import clear_cache as clear_services
from backend.rowtable import RowTable, RowTableError, Source
from backend.survey import Survey
from bench.bench_scale import SURVEY, build_survey

N = 6_000
GROUP = 500  # rows per parquet row group in these tests (the pipeline writes 65,536)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """bench_scale's synthetic survey (map, scores, tiles) of N objects, built once."""
    root = tmp_path_factory.mktemp("paged") / "home"
    with pytest.MonkeyPatch.context() as mp:
        for module in (
            "backend.survey.catalog_stream",
            "backend.pipeline.storage",
            "backend.latent.anomaly",
        ):
            mp.setattr(f"{module}.ROW_GROUP", GROUP)
        mp.setenv("LATENTSKY_HOME", str(root))
        mp.delenv("DATABASE_URL", raising=False)
        version = build_survey(N, dim=8, scores=True)
    return root, version


@pytest.fixture
def big(built: tuple[Path, str], home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A copy of the built survey in this test's data root, above the tiled-map threshold."""
    shutil.copytree(built[0], home)
    monkeypatch.setenv("LATENTSKY_TILED_MAP_ABOVE", str(N // 2))
    app_data.clear_cache()
    clear_services()
    yield built[1]
    app_data.clear_cache()
    clear_services()


def _no_whole_reads(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """Reading the whole catalog or a whole scores file fails the test while ``guard["on"]``."""
    guard = {"on": True}
    whole = Survey.catalog.func  # type: ignore[attr-defined]

    def refuse(self: Survey) -> pd.DataFrame:
        assert not guard["on"], "the whole catalog was read"
        return whole(self)

    monkeypatch.setattr(Survey, "catalog", property(refuse))
    read_parquet = pd.read_parquet

    def refuse_parquet(*args: object, **kwargs: object) -> pd.DataFrame:
        assert not guard["on"], f"a whole parquet file was read: {args}"
        return read_parquet(*args, **kwargs)

    monkeypatch.setattr("backend.latent.anomaly.pd.read_parquet", refuse_parquet)
    return guard


def test_a_big_survey_opens_without_reading_its_tables_or_map(
    big: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = Survey.open(SURVEY).catalog.copy()  # the truth, read before the spies
    xy = np.load(Path(app_data.get_settings().home) / f"products/{SURVEY}/encoder-{big}/map.npy")
    _no_whole_reads(monkeypatch)
    data = app_data.survey_data(SURVEY)
    assert data.paged and len(data) == N and not data.problems
    assert data.table.reads == {"groups": 0, "rows": 0, "full_columns": 0}
    assert isinstance(data.x, np.memmap)  # the map is mapped, not loaded
    assert {"true_class", "mag", "anomaly_score", "anomaly_rank", "score_knn"} <= set(data.table)
    rows = [4_321, 7, 2_500, 7]
    got = data.table.iloc[rows]
    pd.testing.assert_frame_equal(
        got[catalog.columns].reset_index(drop=True), catalog.iloc[rows].reset_index(drop=True)
    )
    assert data.object_id(4_321) == catalog["object_id"].iat[4_321]
    assert data.table.reads["groups"] <= 3 * len(data.table.columns)  # groups of 3 rows only
    assert data.table.reads["full_columns"] == 0
    np.testing.assert_array_equal(data.x[rows], xy[rows, 0])


def test_every_view_works_on_a_paged_survey(big: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.shell import _view_builders
    from app.views.explore import ExploreView

    xy = np.load(Path(app_data.get_settings().home) / f"products/{SURVEY}/encoder-{big}/map.npy")
    guard = _no_whole_reads(monkeypatch)
    monkeypatch.setattr("app.views.explore.schema_for", lambda name: _NoSchema())
    data = app_data.survey_data(SURVEY)
    views = {}
    bounded = ("explore", "similar", "anomalies", "label", "models", "collections", "sky")
    for name, make in sorted(_view_builders().items(), key=lambda kv: kv[0] not in bounded):
        guard["on"] = name in bounded
        views[name] = make(data, AppState(survey=SURVEY))
        views[name].__panel__()
        if name in bounded:
            assert data.table.reads["full_columns"] == 0, name
    guard["on"] = True
    explore: ExploreView = views["explore"]
    assert explore._tiled is not None  # drawn and selected on from the tiles
    bounds = (-4.0, -4.0, 3.0, 2.0)
    expected = box_indices(xy[:, 0], xy[:, 1], bounds)
    explore._on_box(bounds)
    _wait(lambda: explore.selection._count == len(expected) > 48)
    shown = [item["index"] for item in explore.selection._gallery.items]
    assert len(shown) == 48 and set(shown) <= set(expected.tolist())
    ids = {item["id"] for item in explore.selection._gallery.items}
    assert ids == {data.object_id(i) for i in shown}
    whole = data.table.reads["full_columns"]  # the label queue's and the sky's
    explore.colour.value = "anomaly_score"  # tiled sums: values read per object, range sampled
    assert "mean per pixel" in explore._legend.object
    assert data.table.reads["full_columns"] == whole
    i = int(expected[0])
    assert explore._value_text(i).endswith(f"{data.table['anomaly_score'].iat[i]:.3g}")


def test_a_file_with_other_rows_is_a_problem_not_a_crash(
    big: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backend.latent.source import ANOMALY_FILE, latent_dir

    path = latent_dir(SURVEY, big) / ANOMALY_FILE
    pd.read_parquet(path).iloc[:100].to_parquet(path)
    data = app_data.survey_data(SURVEY)
    assert data.problems == ["the anomaly scores do not match the survey rows; rerun score"]
    assert "anomaly_score" not in data.table
    with pytest.raises(RowTableError, match=r"anomaly\.parquet: 100 rows for 6,000 objects"):
        RowTable([Source(path, {"anomaly": "anomaly"})], N)


# -- the anomaly list --------------------------------------------------------------------------
def test_a_ranking_from_the_file_equals_a_full_sort(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    score = rng.integers(0, 50, 5_000).astype(np.float32)  # many ties
    score[rng.choice(5_000, 300, replace=False)] = np.nan
    table = pd.DataFrame({"index": np.arange(5_000), "score": score})
    path = tmp_path / "scores.parquet"
    table.to_parquet(path, row_group_size=700)
    rows = RowTable([Source(path, {c: c for c in table})], len(table))
    paged = ColumnRanking(rows, "score")
    full = RankedList(table, "score")
    for start, stop in ((0, 48), (48, 96), (4_900, 5_000)):
        pd.testing.assert_frame_equal(paged.page(start, stop), full.page(start, stop))
    for row in (0, 17, int(np.flatnonzero(np.isnan(score))[3])):
        assert paged.position_of(row) == full.position_of(row)
    mask = np.zeros(5_000, bool)
    mask[[10, 2_000, 4_444]] = True
    assert paged.first_where(mask) == full.first_where(mask)
    ascending = ColumnRanking(rows, "score", descending=False).page(0, 20)
    pd.testing.assert_frame_equal(
        ascending, RankedList(table, "score", descending=False).page(0, 20)
    )


def test_the_anomaly_list_reads_one_column_and_its_first_page(
    big: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.views.anomalies import GALLERY_SIZE, TABLE_ROWS, AnomaliesView
    from backend.latent.source import ANOMALY_FILE, latent_dir

    truth = pd.read_parquet(latent_dir(SURVEY, big) / ANOMALY_FILE)
    best = truth.sort_values("rank").head(GALLERY_SIZE)
    _no_whole_reads(monkeypatch)
    made: list[ColumnRanking] = []
    original = AnomalyRanker.plain_listing

    def spy(self: AnomalyRanker, by: str = "final") -> object:
        made.append(original(self, by))
        return made[-1]

    monkeypatch.setattr(AnomalyRanker, "plain_listing", spy)
    view = AnomaliesView(data=app_data.survey_data(SURVEY), state=AppState(survey=SURVEY))
    assert [item["id"] for item in view._gallery.items] == best["object_id"].tolist()
    assert view.current() == int(best["index"].iat[0])
    assert view._table.value["rank"].tolist()[:5] == [1, 2, 3, 4, 5]
    listing = made[-1]
    assert isinstance(listing, ColumnRanking)
    reads = dict(listing.table.reads)
    assert reads["full_columns"] == 0
    # values read: those of the pages shown (each column of the table's and the gallery's
    # first page, the current candidate and the next two), not the survey's
    assert reads["rows"] <= (TABLE_ROWS + GALLERY_SIZE + 5) * len(listing.table.columns) < 2 * N
    again = AnomaliesView(data=app_data.survey_data(SURVEY), state=AppState(survey=SURVEY))
    assert made[-1] is listing and listing.table.reads == reads  # shared: nothing read again
    assert [item["id"] for item in again._gallery.items] == best["object_id"].tolist()
    view.scorer.value = "knn"  # another scorer: its own column, its own first page
    assert (
        view._table.value["object_id"].iat[0]
        == truth.sort_values(["knn", "index"], ascending=[False, True])["object_id"].iat[0]
    )


class _NoSchema:
    def colour_key(self) -> dict[str, str]:
        return {}


def _wait(ok: object, timeout: float = 60.0) -> None:
    import time

    end = time.monotonic() + timeout
    while not ok():  # type: ignore[operator]
        if time.monotonic() > end:
            raise AssertionError("timed out")
        time.sleep(0.05)


# -- id look-ups: the label queue without the catalog ------------------------------------------
def test_id_lookups_match_the_catalog_without_holding_it(
    big: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backend.survey import ids as survey_ids

    catalog = Survey.open(SURVEY).catalog
    path = Survey.open(SURVEY).path / "catalog.parquet"
    lookup = survey_ids.IdLookup(path)
    rows = np.array([5_999, 0, 1_234, 501])
    wanted = catalog["object_id"].to_numpy()[rows]
    np.testing.assert_array_equal(lookup.ids_of(rows), wanted)
    np.testing.assert_array_equal(lookup.rows_of([*wanted, "nope"]), [*rows, -1])
    # ids whose hashes are shared (a coarse hash here) are told apart by reading their rows
    monkeypatch.setattr(survey_ids, "hash_ids", lambda ids: np.asarray(
        [hash(str(i)) % 7 for i in ids], dtype=np.uint64))  # fmt: skip
    coarse = survey_ids.IdLookup(path)
    np.testing.assert_array_equal(coarse.rows_of([*wanted, "nope"]), [*rows, -1])


def test_the_written_look_up_is_mapped_not_built(big: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The survey writer stores the id look-up beside the catalog; a process memory-maps it
    (the ids column is not read to build it) and it answers as the built one does."""
    from backend.survey import ids as survey_ids

    folder = Survey.open(SURVEY).path
    catalog = pd.read_parquet(folder / "catalog.parquet")
    assert (folder / survey_ids.LOOKUP_FILE).is_file()

    def refuse(*args: object) -> np.ndarray:
        raise AssertionError("the look-up was built from the catalog")

    with monkeypatch.context() as mp:
        mp.setattr(survey_ids.IdLookup, "_read_hashes", staticmethod(refuse))
        mapped = survey_ids.IdLookup(folder / "catalog.parquet")
    assert mapped.stored and isinstance(mapped._hash, np.memmap)
    rows = np.array([5_999, 0, 1_234, 501, 3_000])
    wanted = catalog["object_id"].to_numpy()[rows]
    np.testing.assert_array_equal(mapped.rows_of([*wanted, "nope"]), [*rows, -1])
    np.testing.assert_array_equal(mapped.ids_of(rows), wanted)
    (folder / survey_ids.LOOKUP_FILE).unlink()  # a survey written before the file: built
    built = survey_ids.IdLookup(folder / "catalog.parquet")
    assert not built.stored
    np.testing.assert_array_equal(built.rows_of(wanted), rows)


def test_a_catalog_replaced_without_its_look_up_is_not_misread(big: str) -> None:
    """A stored look-up that is not the catalog's (the catalog rewritten in another row order
    by hand) is noticed and the look-up built from the catalog instead."""
    from backend.survey import ids as survey_ids

    path = Survey.open(SURVEY).path / "catalog.parquet"
    catalog = pd.read_parquet(path)
    shuffled = catalog.iloc[::-1].reset_index(drop=True)
    shuffled.to_parquet(path, index=False, row_group_size=GROUP)
    stored = path.with_name(survey_ids.LOOKUP_FILE)
    os.utime(stored, ns=(path.stat().st_mtime_ns + 10**9,) * 2)  # newer: the rows tell
    lookup = survey_ids.IdLookup(path)
    assert not lookup.stored
    rows = np.array([0, 17, 5_999])
    np.testing.assert_array_equal(lookup.rows_of(shuffled["object_id"].to_numpy()[rows]), rows)


def test_the_label_queue_never_reads_the_catalog(big: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from backend.active.queue import LabelQueue
    from backend.survey import SurveyError

    catalog = Survey.open(SURVEY).catalog.copy()
    _no_whole_reads(monkeypatch)
    queue = LabelQueue(SURVEY, "ada", batch_size=8)
    first = queue.next(3)
    assert len(first) == 3 and set(first) <= set(catalog["object_id"])
    queue.skip(first[0])
    queue.mark_labelled(first[1])
    assert not {first[0], first[1]} & set(queue.next(8))
    with pytest.raises(SurveyError, match="unknown object id 'nope'"):
        queue.skip("nope")


def test_catalog_rows_and_ids_of_a_big_survey_come_from_their_row_groups(
    big: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backend.latent.service import latent_services
    from backend.survey import SurveyError

    catalog = Survey.open(SURVEY).catalog.copy()
    _no_whole_reads(monkeypatch)
    survey = Survey.open(SURVEY)
    assert survey.paged
    got = survey.catalog_rows([4_000, 3])
    pd.testing.assert_frame_equal(
        got.drop(columns="index"), catalog.iloc[[4_000, 3]].reset_index(drop=True)
    )
    assert got["index"].tolist() == [4_000, 3]
    assert survey.index_of(catalog["object_id"].iat[5_432]) == 5_432
    with pytest.raises(SurveyError, match="unknown object id 'nope'"):
        survey.index_of("nope")
    similar = latent_services(SURVEY).search().by_object(17, k=5)  # the Similar view's query
    assert len(similar) == 5 and similar.attrs["query"]["object_id"] == catalog["object_id"].iat[17]


# -- the anomaly list's first pages from the top stored with the scores ------------------------
def _scores_table(n: int = 5_000) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    anomaly = rng.integers(0, 40, n).astype(np.float32)  # many ties
    anomaly[rng.choice(n, 200, replace=False)] = np.nan
    return pd.DataFrame({
        "index": np.arange(n), "object_id": [f"o{i:05d}" for i in range(n)],
        "anomaly": anomaly, "knn": rng.random(n, dtype=np.float32),
    })  # fmt: skip


def test_the_first_pages_come_from_the_top_stored_with_the_scores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backend.latent import paging

    monkeypatch.setattr("backend.latent.anomaly.ROW_GROUP", 600)
    monkeypatch.setattr(paging, "TOP_ROWS", 1_000)
    table = _scores_table()
    path = tmp_path / "anomaly.parquet"
    AnomalyRanker(table).save(path)
    full = RankedList(table.assign(final=table["anomaly"], interest=np.float32(np.nan)), "anomaly")
    listing = AnomalyRanker.load(path).plain_listing()
    assert isinstance(listing, ColumnRanking)

    def refuse(*_: object) -> None:
        raise AssertionError("the ranked column was read")

    monkeypatch.setattr(RowTable, "iter_column", refuse)
    for start, stop in ((0, 48), (48, 96), (200, 300), (900, 1_000)):
        pd.testing.assert_frame_equal(listing.page(start, stop), full.page(start, stop))
    assert listing.table.reads["full_columns"] == 0
    fresh = AnomalyRanker.load(path).plain_listing()
    fresh.page(0, 48)
    assert fresh.table.reads == {"groups": 0, "rows": 0, "full_columns": 0}  # nothing read
    knn = AnomalyRanker.load(path).plain_listing("knn").page(0, 48)
    assert knn["index"].tolist() == table.sort_values("knn", ascending=False)["index"][:48].tolist()
    monkeypatch.undo()
    # beyond the stored top, and for a file written without one: the pass over the column
    pd.testing.assert_frame_equal(listing.page(1_000, 1_048), full.page(1_000, 1_048))
    table.to_parquet(path, row_group_size=600)
    old = AnomalyRanker.load(path).plain_listing()
    assert paging.read_top(path, "anomaly") is None
    pd.testing.assert_frame_equal(old.page(0, 48), full.page(0, 48))
    assert old.table.reads["groups"] >= 9  # the column's row groups


def test_a_scores_file_keeps_its_attrs_and_table_with_the_stored_top(tmp_path: Path) -> None:
    table = _scores_table(300)
    table.attrs["encoder"] = "v0007"
    path = tmp_path / "anomaly.parquet"
    AnomalyRanker(table).save(path)
    back = pd.read_parquet(path)
    pd.testing.assert_frame_equal(back, table)
    assert back.attrs["encoder"] == "v0007"


def test_an_imported_encoder_gets_one_line_instead_of_an_explanation(
    big: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.detail import DetailPanel

    data = app_data.survey_data(SURVEY)
    state = AppState(survey=SURVEY)
    panel = DetailPanel(data=data, state=state)
    state.picked = 42
    note = panel._why.object
    assert "lsd-explain-note" in note and "Traceback" not in note
    assert "explanations need a LatentSky encoder" in note and "imported" in note
    assert not panel._alert.object  # no error shown


def test_the_human_labels_colouring_reads_no_ids(big: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.colouring import UNLABELLED, categorical
    from app.labelling import consensus_column, label_store
    from app.views.explore import ExploreView

    catalog = Survey.open(SURVEY).catalog.copy()
    ids = catalog["object_id"]
    for row, value in ((10, "spiral"), (4_000, "merger"), (5_999, "spiral")):
        label_store().add(SURVEY, ids.iat[row], value, user="ada")
    expected, expected_key = categorical(
        consensus_column(SURVEY, ids, UNLABELLED), {}, missing=UNLABELLED
    )
    _no_whole_reads(monkeypatch)
    monkeypatch.setattr("app.views.explore.schema_for", lambda name: _NoSchema())
    data = app_data.survey_data(SURVEY)
    values, key = data.label_categories({}, UNLABELLED)
    assert list(values.categories) == list(expected.categories) and key == expected_key
    np.testing.assert_array_equal(np.asarray(values.codes), np.asarray(expected.codes))
    assert np.asarray(values.codes).itemsize == 1  # one byte an object
    explore = ExploreView(data=data, state=AppState(survey=SURVEY))
    explore.colour.value = "labels"
    assert "spiral" in explore._legend.object
    assert data.table.reads["full_columns"] == 0


def test_the_sky_of_a_paged_survey_draws_and_selects_every_object(
    big: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The HEALPix counts written with the catalog draw every object (no sample, no column
    read); a box on the sky selects every object inside it, and a click finds the nearest."""
    import holoviews as hv
    from holoviews.operation import datashader as hd

    from app.views import sky

    catalog = Survey.open(SURVEY).catalog.copy()
    ra, dec = catalog["ra"].to_numpy(), catalog["dec"].to_numpy()
    _no_whole_reads(monkeypatch)
    data = app_data.survey_data(SURVEY)
    state = AppState(survey=SURVEY)
    view = sky.SkyView(data=data, state=state)
    panel = view.__panel__()
    assert view.counts is not None and view.counts.total == N and not view.sampled
    assert "every object is drawn" in str(panel.objects[1].object)
    objects = hd.rasterize(view.base(sky.OBJECTS), aggregator="sum", dynamic=False)
    assert float(np.nansum(objects.dimension_values(2))) == N  # every object counted
    for layer in (sky.OBJECTS, sky.DENSITY):  # the page's pipeline: summed, then regridded
        view.layer = layer
        hv.render(view.plot)
    assert data.table.reads["full_columns"] == 0
    bounds = (0.2, -1.0, 0.5, 1.0)
    expected = box_indices(ra, dec, bounds)
    assert 0 < len(expected) < N
    view._on_box(bounds)
    _wait(lambda: state.selection is not None and state.selection_from == "sky")
    np.testing.assert_array_equal(state.selection.all_rows(), expected)
    assert len(view.highlighted(state.selection)) == len(expected)  # every one drawn
    assert "not drawn" not in view.count_text(state.selection)
    row = view.nearest(float(ra[1234]), 0.0, 1e-4)
    assert row is not None and abs(ra[row] - ra[1234]) < 1e-9  # a cone search, not a sample
    assert data.table.reads["full_columns"] == 0


def test_the_sky_of_an_older_paged_survey_reads_a_bounded_sample(
    big: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.selection import ArrayRows
    from app.views import sky
    from backend.survey.skycounts import SKY_COUNTS_FILE

    (Survey.open(SURVEY).path / SKY_COUNTS_FILE).unlink()  # written before the counts were
    catalog = Survey.open(SURVEY).catalog.copy()
    _no_whole_reads(monkeypatch)
    monkeypatch.setattr(sky, "SAMPLE_GROUPS", 3)
    data = app_data.survey_data(SURVEY)
    state = AppState(survey=SURVEY)
    view = sky.SkyView(data=data, state=state)
    view.__panel__()
    pos = view.positions
    assert len(pos) == 3 * GROUP and data.table.reads["full_columns"] == 0
    np.testing.assert_array_equal(pos.dec, catalog["dec"].to_numpy()[pos.rows])
    assert pos.rows[0] == 0 and pos.rows[-1] == N - 1  # groups spread: first and last
    outside = int(np.setdiff1d(np.arange(N), pos.rows)[7])
    assert f"RA {catalog['ra'].iat[outside]:.5f}" in view.card(outside)  # read by row
    state.share_selection(ArrayRows(np.array([pos.rows[5], outside])), "explore")
    assert "1 not drawn: outside the sky's sample" in view.count_text(state.selection)
    np.testing.assert_array_equal(view.selected_positions(state.selection), [5])
    density = view.base(sky.DENSITY)  # counts of the sample scaled to the survey
    assert data.table.reads["full_columns"] == 0 and density is not None


def test_a_cone_search_over_row_groups_equals_the_sky_tree(tmp_path: Path) -> None:
    from astropy.coordinates import SkyCoord

    from backend.latent.sky import PagedSkyIndex, SkyIndex

    rng = np.random.default_rng(3)
    n = 8_000
    ra = rng.uniform(355.0, 365.0, n) % 360.0  # across RA 0
    dec = np.sort(rng.uniform(-5.0, 5.0, n))  # sorted: row groups hold Dec bands
    ra[17] = np.nan
    path = tmp_path / "catalog.parquet"
    pd.DataFrame({"ra": ra, "dec": dec}).to_parquet(path, row_group_size=500)
    tree, paged = SkyIndex(ra, dec), PagedSkyIndex(path)
    for k in range(30):
        at = SkyCoord(float(rng.uniform(354, 366) % 360), float(rng.uniform(-5.5, 5.5)), unit="deg")
        radius = 60.0 if k % 2 else 600.0
        got, want = paged.nearest(at, radius), tree.nearest(at, radius)
        assert (got is None) == (want is None)
        if got is not None:
            assert got[0] == want[0] and got[1] == pytest.approx(want[1], abs=1e-6)
        assert paged.nearest_any(at)[0] == tree.nearest_any(at)[0]
    paged.reads = 0
    paged.nearest(SkyCoord(0.0, 0.0, unit="deg"), 60.0)
    assert 1 <= paged.reads <= 2  # of 16 row groups: those of the cone's Dec band


def test_a_search_by_sky_position_reads_no_catalog(
    big: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backend.latent.service import latent_services
    from backend.latent.sky import PagedSkyIndex

    catalog = Survey.open(SURVEY).catalog.copy()
    _no_whole_reads(monkeypatch)
    query = latent_services(SURVEY).search()
    row = 4_321
    where = f"{catalog['ra'].iat[row]} {catalog['dec'].iat[row]}"
    found = query.by_position(where, k=5, radius_arcsec=1.0)
    assert isinstance(query.sky, PagedSkyIndex)
    assert found.attrs["query"]["separation_arcsec"] < 1e-6
    hit = found.attrs["query"]["index"]
    assert (catalog["ra"].iat[hit], catalog["dec"].iat[hit]) == (
        catalog["ra"].iat[row], catalog["dec"].iat[row])  # fmt: skip
