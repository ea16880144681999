"""The latent map draws the Sky view's selection (issue 13): objects selected on the sky are
marked at their places on the Explore map; a selection made on the map itself is not marked
twice (its outline shows it), and clearing removes the marks."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pytest

from app.data import SurveyData
from app.plots import ACCENT
from app.selection import ArrayRows
from tests.unit.test_tiled_explore import explore, survey_data  # noqa: F401  (fixture)


def _marked(figure: object) -> set[tuple[float, float]]:
    """(x, y) of the orange dots of a rendered map (the shared selection's glyph)."""
    from bokeh.models import GlyphRenderer, Scatter

    out = set()
    for renderer in figure.select(GlyphRenderer):
        glyph = renderer.glyph
        if isinstance(glyph, Scatter) and str(glyph.fill_color).lower() == ACCENT:
            data = renderer.data_source.data
            out |= {(float(x), float(y)) for x, y in zip(data["x"], data["y"], strict=True)}
    return out


def test_a_sky_selection_is_drawn_on_the_latent_map(
    survey_data: SurveyData,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import holoviews.plotting.bokeh  # noqa: F401

    view = explore(survey_data, monkeypatch)
    state = view.state
    plot = hv.renderer("bokeh").get_plot(view._map.object)  # what the browser shows
    assert _marked(plot.state) == set()
    rows = np.array([5, 17, 300, 4_000])
    state.share_selection(ArrayRows(rows), "sky")  # what a box on the sky does
    expected = {(float(survey_data.x[i]), float(survey_data.y[i])) for i in rows}
    assert _marked(plot.state) == expected  # the same figure, updated
    marks = view.sky_selection(state.selection)
    assert sorted(marks.dimension_values("x").tolist()) == sorted(x for x, _ in expected)

    view.selection.select(ArrayRows(np.array([1, 2])), "box")  # a box on the latent map
    assert state.selection_from == "explore"
    assert _marked(plot.state) == set()
    state.share_selection(ArrayRows(rows), "sky")
    state.share_selection(None, "sky")  # cleared
    assert _marked(plot.state) == set()
