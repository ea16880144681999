"""One colour per class across the Explore map's categorical colourings: predictions and the
catalog column they were trained on agree (on sdss_gz1 "elliptical" was red as a prediction
and orange in the gz1_label column), the label schema's colours first, then the active
classifier's other classes in its order; unrelated categories take other colours."""

from __future__ import annotations

import numpy as np
import pytest

from app.data import SurveyData
from app.state import AppState
from tests.unit.test_tiled_explore import KINDS, survey_data  # noqa: F401  (fixture)

CLASSES = ["merger", "disc", "bulge", "spiral_cw"]  # the classifier's order, not the columns'
MERGER = "#ff9da6"


class _Schema:
    """A label schema that colours one of the classes."""

    def colour_key(self) -> dict[str, str]:
        return {"merger": MERGER}


def test_a_class_has_one_colour_in_predictions_and_catalog_columns(
    survey_data: SurveyData,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = survey_data.table
    rng = np.random.default_rng(0)
    table["pred_class"] = rng.choice(["spiral_cw", "bulge", "disc", "merger"], len(table))
    table["field"] = rng.choice(["north", "south"], len(table))  # no class names
    monkeypatch.setattr("app.views.explore.classifier_classes", lambda name: CLASSES, raising=False)
    from app.views.explore import ExploreView

    monkeypatch.setattr("app.views.explore.schema_for", lambda name: _Schema())
    view = ExploreView(data=survey_data, state=AppState(survey=survey_data.name))
    predicted = view.colouring_for("pred_class").colour_key
    catalog = view.colouring_for("catalog:kind").colour_key  # tiled: from its aggregates
    shared = [c for c in KINDS if c]
    assert shared and all(predicted[c] == catalog[c] for c in shared), (predicted, catalog)
    assert predicted["merger"] == catalog["merger"] == MERGER  # the label schema's colour
    field = view.colouring_for("catalog:field").colour_key
    assert not set(field.values()) & {predicted[c] for c in CLASSES}, (field, predicted)
