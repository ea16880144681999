"""The learning curve of *Models & jobs* ticks whole retraining rounds: with two rounds Bokeh
ticked 0, 0.2, 0.4, ... 1 (sdss_gz1's classifier v0002), as if there were rounds between."""

from __future__ import annotations

import holoviews as hv
import pandas as pd
import pytest

from app import plots


def _ticks(df: pd.DataFrame) -> list[float]:
    import holoviews.plotting.bokeh  # noqa: F401

    figure = hv.renderer("bokeh").get_plot(plots.learning_curve(df, "accuracy")).state
    ticker = figure.xaxis[0].ticker  # Bokeh's BasicTicker (no fixed ticks) picks fractions
    return list(getattr(ticker, "ticks", []))


@pytest.mark.parametrize("n", [2, 5, 31])
def test_rounds_are_ticked_whole(n: int) -> None:
    df = pd.DataFrame(
        {"round": range(n), "accuracy": [0.67 + 0.001 * i for i in range(n)],
         "version": [f"v{i:04d}" for i in range(n)]}
    )  # fmt: skip
    ticks = _ticks(df)
    assert ticks and all(float(t).is_integer() and 0 <= t < n for t in ticks), ticks
    assert ticks[0] == 0 and len(ticks) <= 10


def test_a_tiny_change_is_not_drawn_as_a_cliff() -> None:
    """sdss_gz1's two rounds, 0.6736 then 0.6707: the y axis spanned 0.003, so a 0.3% change
    filled the plot. It now spans at least a tenth of the accuracy scale, with both points in."""
    import holoviews.plotting.bokeh  # noqa: F401

    df = pd.DataFrame({"round": [0, 1], "accuracy": [0.6736, 0.6707], "version": ["a", "b"]})
    plot = hv.renderer("bokeh").get_plot(plots.learning_curve(df, "accuracy"))
    y = plot.state.y_range
    assert y.end - y.start >= 0.1 - 1e-9
    assert y.start <= 0.6707 and y.end >= 0.6736 and y.start >= 0 and y.end <= 1
    wide = pd.DataFrame({"round": [0, 1], "accuracy": [0.4, 0.9], "version": ["a", "b"]})
    y = hv.renderer("bokeh").get_plot(plots.learning_curve(wide, "accuracy")).state.y_range
    assert y.start <= 0.4 and y.end >= 0.9 and y.end - y.start < 0.7  # left to Bokeh
