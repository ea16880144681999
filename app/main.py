"""LatentSky web app entry point: ``panel serve app/main.py``.

For now a survey overview: every survey in the data root with its description and a sample of
its galaxies rendered by the survey store. The explorer views arrive with the app issue.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import panel as pn

from app.routes import thumbnail_url
from app.surveys import get_survey
from backend.survey import list_surveys

pn.extension(sizing_mode="stretch_width")

SAMPLE_SIZE = 24


def surveys_table() -> pd.DataFrame:
    """One row per survey: name, objects, bands, stamp shape, pixel scale, source, created."""
    rows = [
        {
            "survey": m.name,
            "objects": m.count,
            "bands": ",".join(m.bands),
            "stamp": "x".join(map(str, m.image_shape[1:])),
            "pixel scale (arcsec)": m.pixel_scale,
            "source": m.source,
            "created": m.created,
        }
        for m in list_surveys()
    ]
    return pd.DataFrame(rows)


def sample_gallery(name: str, seed: int = 0) -> pn.viewable.Viewable:
    """A grid of colour thumbnails of randomly chosen objects of survey ``name``."""
    survey = get_survey(name)
    rng = np.random.default_rng(seed)
    picks = np.sort(rng.choice(len(survey), size=min(SAMPLE_SIZE, len(survey)), replace=False))
    ids = survey.catalog["object_id"].to_numpy()
    tiles = [
        pn.Column(
            pn.pane.HTML(
                f'<img src="{thumbnail_url(name, i, 96)}" width="96" height="96" '
                f'alt="{ids[i]}" loading="lazy">',
                width=96,
                height=96,
                margin=0,
            ),
            pn.pane.Str(ids[i], styles={"font-size": "10px"}),
            width=100,
            height=124,
            sizing_mode="fixed",
        )
        for i in picks
    ]
    return pn.FlexBox(*tiles)


def build() -> pn.template.BootstrapTemplate:
    table = surveys_table()
    template = pn.template.BootstrapTemplate(title="LatentSky", header_background="#0b1a33")
    if table.empty:
        template.main.append(
            pn.pane.Alert(
                "No surveys yet. Run `make run` (it prepares the demo survey) or "
                "`python -m backend simulate --survey demo`.",
                alert_type="warning",
            )
        )
        return template
    picker = pn.widgets.Select(name="Survey", options=table["survey"].tolist())
    template.sidebar.append(picker)
    template.main.append(pn.widgets.Tabulator(table, disabled=True, show_index=False))
    template.main.append(pn.bind(sample_gallery, picker))
    return template


build().servable()
