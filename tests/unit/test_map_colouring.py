"""The map's colouring as a new user reads it (issue 13): the colour bar names the colouring as
the user chose it, and a few labelled objects stay visible among thousands unlabelled."""

from __future__ import annotations

import holoviews as hv
import holoviews.plotting.bokeh  # options of the map images
import numpy as np
import pandas as pd
import pytest
from bokeh.models import ColorBar

from app.colouring import GREY, UNLABELLED
from app.data import SurveyData
from app.shading import categorical_rgba, hex_rgb
from tests.unit.test_tiled_explore import explore, survey_data  # noqa: F401  (fixture)

RED = "#dc2626"


def test_labelled_objects_keep_their_colour_among_many_unlabelled() -> None:
    rng = np.random.default_rng(13)
    n, n_labelled = 10_000, 67
    x, y = rng.normal(size=(2, n)).astype(np.float32)
    names = np.full(n, UNLABELLED, dtype=object)
    labelled = rng.choice(n, n_labelled, replace=False)
    names[labelled] = "ring"
    values = pd.Categorical(names, categories=["ring", UNLABELLED])
    view = ((-3.0, 3.0), (-3.0, 3.0), 60, 60)  # ~3 objects per pixel near the centre
    rgba = categorical_rgba(x, y, values, {"ring": RED, UNLABELLED: GREY}, *view, 170)
    col = np.floor((x[labelled] + 3.0) * 10).astype(int)
    row = 59 - np.floor((y[labelled] + 3.0) * 10).astype(int)
    inside = (col >= 0) & (col < 60) & (row >= 0) & (row < 60)
    shown = rgba[row[inside], col[inside]]
    assert len(shown) > 60
    red = np.array(hex_rgb(RED))
    assert np.abs(shown[:, :3].astype(int) - red).max() <= 4, "a labelled object drawn grey"
    has_label = np.zeros((60, 60), dtype=bool)
    has_label[row[inside], col[inside]] = True
    grey_only = (rgba[..., 3] > 0) & ~has_label
    assert grey_only.sum() > 1000
    assert rgba[grey_only, 3].max() <= shown[:, 3].min(), "unlabelled drawn over labelled"


def test_the_colour_bar_is_titled_with_the_colourings_name(
    survey_data: SurveyData,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    view = explore(survey_data, monkeypatch)
    titles = {}
    for key in ("density", "mag"):
        spec = next(s for s in view._specs.values() if key in (s.key, s.column))
        view.colour.value = spec.key
        bars = hv.render(view._server_map.pipe.data).select(ColorBar)
        titles[key] = (spec.label, [bar.title for bar in bars])
    assert titles["mag"][1] == [titles["mag"][0]], titles
    assert titles["density"][1] == ["objects per pixel"], titles
