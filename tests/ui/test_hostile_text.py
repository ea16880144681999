"""Hostile user text (names, labels, class names, survey descriptions) stays text wherever the
app renders it: fast checks of the renderers, and a browser that must never open a dialog."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd
import panel as pn
import pytest

from app.safe import explain
from app.views.models import agreement_markdown
from backend.labels import LabelError
from backend.labels.agreement import agreement_report
from backend.labels.schema import SchemaError, read_schema
from backend.survey import SurveyWriter
from tests.conftest import make_blobs

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(2)>"
SVG = "<svg/onload=alert(3)>"
LINK = "[click](javascript:alert(4))"
HOSTILE = [SCRIPT, IMG, SVG, LINK, "**bold** | cell", "`tick`"]
TAGS = ("<script", "<img", "<svg", "<a ", "href=", "<strong>bold", "<code")


def rendered_html(pane: pn.pane.Markdown) -> str:
    """The HTML the browser gets from a Markdown pane (Panel escapes it once for transport)."""
    return html.unescape(pane._transform_object(pane.object)["object"])


def assert_inert(out: str) -> None:
    lowered = out.lower()
    assert not [t for t in TAGS if t in lowered], out


def test_agreement_table_keeps_labeller_names_as_text() -> None:
    rng = np.random.default_rng(0)
    ids = [f"o{i}" for i in range(20)]
    answers = pd.concat([
        pd.DataFrame({"object_id": ids, "user": name, "value": rng.choice(["a", "b"], 20)})
        for name in HOSTILE
    ])  # fmt: skip
    text = agreement_markdown(agreement_report(answers))
    out = rendered_html(pn.pane.Markdown(text))
    assert_inert(out)
    assert out.count("<tr>") == 1 + len(HOSTILE) * (len(HOSTILE) - 1) // 2  # one row per pair
    assert html.escape(SCRIPT, quote=False) in out


def test_error_messages_naming_user_text_are_escaped() -> None:
    for bad in HOSTILE:
        out = rendered_html(pn.pane.Markdown(explain(LabelError(f"unknown class {bad!r}"))))
        assert_inert(out)
    out = rendered_html(pn.pane.Markdown(explain(RuntimeError(IMG))))
    assert_inert(out)


def test_survey_description_is_shown_escaped(home: Path) -> None:
    from app.data import survey_data
    from app.shell import survey_summary

    with SurveyWriter("evil", ["g", "r", "i"], (16, 16), IMG, description=SCRIPT + IMG) as w:
        w.append(make_blobs(4), pd.DataFrame({"object_id": [f"e{i}" for i in range(4)]}))
    out = survey_summary(survey_data("evil"))
    assert_inert(out)
    assert html.escape(SCRIPT) in out and html.escape(IMG) in out


@pytest.mark.parametrize("colour", ["red'><img src=x onerror=alert(5)>", "red;}</style>", "url(x)"])
def test_schema_colours_must_be_colours(tmp_path: Path, colour: str) -> None:
    path = tmp_path / "s.yaml"
    classes = [{"name": "a", "colour": colour}, {"name": "b", "colour": "#4c78a8"}]
    path.write_text(json.dumps({"classes": classes}))
    with pytest.raises(SchemaError, match="colour"):
        read_schema(path)
