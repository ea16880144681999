"""LatentSky web app entry point: ``panel serve app/main.py --plugins app.routes``.

Explore the latent map of a survey, search similar objects, rank anomalies, label galaxies and
follow model versions. Imports the backend, never torch.
"""

from __future__ import annotations

import holoviews as hv
import panel as pn

from app.compat import keep_stylesheets_local
from app.shell import build

keep_stylesheets_local()
pn.extension("tabulator", sizing_mode="stretch_width", notifications=False)
hv.extension("bokeh", logo=False)

build().servable()
