"""A compact read-only Tabulator for result tables."""

from __future__ import annotations

from typing import Any

import pandas as pd
import panel as pn

TABLE_CSS = """
.tabulator, .tabulator-row, .tabulator-cell, .tabulator-col-title {
  font-size: 12.5px !important;
}
.tabulator .tabulator-cell { padding: 3px 6px !important; }
.tabulator .tabulator-col .tabulator-col-content { padding: 4px 6px !important; }
"""


def data_table(df: pd.DataFrame, **kw: Any) -> pn.widgets.Tabulator:
    """Read-only, no index, small font, stretching to the width available."""
    opts: dict[str, Any] = {
        "disabled": True, "show_index": False, "theme": "simple", "layout": "fit_data_table",
        "sizing_mode": "stretch_width", "stylesheets": [TABLE_CSS],
    }  # fmt: skip
    opts.update(kw)
    return pn.widgets.Tabulator(df, **opts)
