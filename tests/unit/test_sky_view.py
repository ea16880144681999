"""The Sky view built in-process on the tiny survey: its plot builders, the selection linked
both ways with the Explore view through the shared state, the sky viewer links (escaped,
correct for a few positions) and the message of a survey without coordinates."""

from __future__ import annotations

import html
from urllib.parse import parse_qs, urlsplit

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import pytest

from app import sky_plots
from app.data import SurveyData, load_survey_data
from app.detail import sky_html
from app.selection import ArrayRows
from app.selectionpanel import SelectionPanel
from app.skylinks import links_html, sky_links
from app.state import AppState
from app.views.explore import ExploreView
from app.views.sky import DENSITY, NO_SKY, SkyView
from backend.survey import Survey, SurveyWriter
from tests.conftest import make_blobs


@pytest.fixture
def data(tiny_survey: Survey) -> SurveyData:
    return load_survey_data("tiny")


# -- builders ------------------------------------------------------------------------------------
def test_ra_across_zero_is_one_piece_and_elsewhere_unchanged() -> None:
    assert sky_plots.unwrap_ra(np.array([350.0, 355.0, 0.0, 5.0])).tolist() == [-10, -5, 0, 5]
    assert sky_plots.unwrap_ra(np.array([100.0, 150.0, 120.0])).tolist() == [100, 150, 120]
    assert sky_plots.unwrap_ra(np.array([-20.0, 370.0])).tolist() == [-20, 10]


def test_positions_skip_missing_coordinates_and_none_without_any() -> None:
    table = pd.DataFrame({"ra": [10.0, np.nan, 12.0, 11.0], "dec": [1.0, 2.0, np.nan, 3.0]})
    pos = sky_plots.sky_positions(table)
    assert pos is not None and pos.rows.tolist() == [0, 3] and pos.dec.tolist() == [1.0, 3.0]
    assert sky_plots.sky_positions(table.drop(columns="dec")) is None
    assert sky_plots.sky_positions(pd.DataFrame({"ra": [np.nan], "dec": [np.nan]})) is None


def test_healpix_density_counts_objects_per_square_degree() -> None:
    rng = np.random.default_rng(0)
    ra, dec = rng.uniform(150, 152, 20_000), rng.uniform(1, 3, 20_000)  # ~5,000 per deg²
    order = sky_plots.healpix_order(ra, dec)
    assert 8 <= order <= 11  # pixels of a few arcmin on a 2° survey
    image = sky_plots.healpix_density(ra, dec, order)
    assert isinstance(image, hv.Image) and image.vdims[0].name == "objects per deg²"
    values = image.data[np.isfinite(image.data)]
    assert np.median(values) == pytest.approx(20_000 / (2 * 2 * np.cos(np.deg2rad(2))), rel=0.15)
    x0, y0, x1, y1 = image.bounds.lbrt()
    assert x0 < 150 and x1 > 152 and y0 < 1 and y1 > 3


def test_the_view_draws_objects_or_density_with_the_selection_on_top(data: SurveyData) -> None:
    state = AppState(survey="tiny")
    view = SkyView(data=data, state=state)
    assert isinstance(view.base(view.layer), hv.Points) and len(view.base(view.layer)) == 150
    view.layer = DENSITY
    assert isinstance(view.base(view.layer), hv.Image)
    assert len(view.highlighted(state.selection)) == 0
    state.share_selection(ArrayRows(np.array([3, 4, 5])), "explore")
    marks = view.highlighted(state.selection)
    assert marks.dimension_values("ra").tolist() == pytest.approx(
        data.table["ra"].iloc[[3, 4, 5]].tolist()
    )
    for layer in ("objects", DENSITY):  # the whole pipeline renders, options included
        view.layer = layer
        figure = hv.render(view.plot, backend="bokeh")
        assert figure.x_range.start > figure.x_range.end  # RA increases to the left
        assert figure.xaxis[0].axis_label == "RA (deg)"


# -- linking through the state -------------------------------------------------------------------
def test_a_sky_selection_shows_in_explore_and_a_map_selection_on_the_sky(
    data: SurveyData,
) -> None:
    state = AppState(survey="tiny")
    explore = ExploreView(data=data, state=state)  # no map: lists every object first
    sky = SkyView(data=data, state=state)
    pos = sky.positions
    box = (pos.ra[9] - 1e-4, pos.dec[9] - 1e-4, pos.ra[20] + 1e-4, pos.dec[20] + 1e-4)
    sky._on_box(box)  # what a box drawn on the sky does
    assert state.selection_from == "sky"
    assert state.selection.all_rows().tolist() == list(range(9, 21))
    assert explore.selection.indices.tolist() == list(range(9, 21))
    assert "**12 objects selected** on the sky" in explore.selection._text.object
    assert "12 objects selected** on the sky" in sky.count_text(state.selection)
    assert len(sky.outline(sky.shape, state.selection).data) == 1  # the box is drawn

    explore.selection.select(np.array([40, 41]), "lasso")  # a lasso on the latent map
    assert state.selection_from == "explore"
    assert len(sky.highlighted(state.selection)) == 2
    assert "2 objects selected** on the latent map" in sky.count_text(state.selection)
    assert len(sky.outline(sky.shape, state.selection).data) == 0  # the sky's box is gone
    explore.selection._cleared()
    assert len(sky.highlighted(state.selection)) == 0


def test_a_sky_selection_made_before_explore_opens_is_shown_there(data: SurveyData) -> None:
    state = AppState(survey="tiny")
    sky = SkyView(data=data, state=state)
    sky.select_positions(np.array([0, 1, 2]), [])
    cleared: list[bool] = []
    panel = SelectionPanel(  # Explore's selection panel, built when its tab first opens
        describe=lambda i: ("", None), on_clear=lambda: cleared.append(True),
        data=data, state=state,
    )  # fmt: skip
    assert panel.indices.tolist() == [0, 1, 2] and "on the sky" in panel._text.object
    assert cleared == [True]  # the latent map's own outline is cleared


def test_a_click_on_the_sky_picks_the_nearest_object_and_its_card_links(
    data: SurveyData, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = AppState(survey="tiny")
    sky = SkyView(data=data, state=state)
    ra, dec = data.table["ra"].iat[77], data.table["dec"].iat[77]
    assert sky.nearest(ra + 1e-4, dec, 0.01) == 77
    assert sky.nearest(ra + 0.2, dec - 0.2, 0.01) is None
    sky._on_tap(ra, dec)
    assert state.picked == 77
    monkeypatch.setattr(SurveyData, "has_real_sky", property(lambda self: True))
    card = sky.card(state.picked)
    assert "tiny-0077" in card and "simbad.cds.unistra.fr" in card and "sky.esa.int" in card


# -- links ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("ra", "dec"), [(150.1, 2.2), (0.0, -89.5), (359.999999, 45.25)])
def test_links_name_the_position(ra: float, dec: float) -> None:
    links = sky_links(ra, dec)
    assert set(links) == {"Legacy Survey viewer", "ESASky", "SIMBAD"}
    legacy = parse_qs(urlsplit(links["Legacy Survey viewer"]).query)
    assert float(legacy["ra"][0]) == pytest.approx(ra % 360, abs=1e-6)
    assert float(legacy["dec"][0]) == pytest.approx(dec, abs=1e-6)
    target = parse_qs(urlsplit(links["ESASky"]).query)["target"][0].split()
    assert [float(v) for v in target] == pytest.approx([ra % 360, dec], abs=1e-6)
    simbad = urlsplit(links["SIMBAD"])
    assert simbad.netloc == "simbad.cds.unistra.fr" and simbad.path == "/simbad/sim-coo"
    coord = parse_qs(simbad.query)["Coord"][0].split()
    assert [float(v) for v in coord] == pytest.approx([ra % 360, dec], abs=1e-6)


def test_links_are_escaped_new_tab_anchors_and_none_for_bad_positions() -> None:
    text = links_html(150.1, -2.2)
    assert text.count('rel="noopener noreferrer"') == 3 and text.count('target="_blank"') == 3
    assert "&amp;" in text and "&dec" not in text  # the query's & are escaped in the attribute
    hrefs = [part.split('"')[0] for part in text.split('href="')[1:]]
    assert [urlsplit(html.unescape(h)).scheme for h in hrefs] == ["https"] * 3
    assert sky_links(float("nan"), 2.0) == {} and sky_links(10.0, 95.0) == {}
    assert links_html(float("inf"), 0.0) == ""


def test_the_detail_panel_links_real_positions(data: SurveyData, monkeypatch) -> None:
    row = data.table.iloc[5]
    assert "simulated" not in sky_html(data, row) or not data.has_real_sky
    monkeypatch.setattr(SurveyData, "has_real_sky", property(lambda self: True))
    text = sky_html(data, row)
    assert "legacysurvey.org/viewer" in text and "ESASky" in text and "SIMBAD" in text


# -- no coordinates ------------------------------------------------------------------------------
def test_a_survey_without_coordinates_says_so(home: object) -> None:
    catalog = pd.DataFrame({"object_id": [f"n-{i}" for i in range(6)], "ra": np.nan, "dec": np.nan})
    with SurveyWriter("nosky", ["g", "r", "i"], (16, 16), "test") as writer:
        writer.append(make_blobs(6), catalog)
    view = SkyView(data=load_survey_data("nosky"), state=AppState(survey="nosky"))
    assert view.positions is None and view.plot is None
    layout = view.__panel__()
    assert isinstance(layout, pn.pane.Alert) and layout.object == NO_SKY
