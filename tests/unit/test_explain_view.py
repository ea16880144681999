"""The details panel's explanation section: built from backend arrays, no torch in app/."""

from __future__ import annotations

from pathlib import Path

from app.detail import explanation_html
from backend.explain.view import ExplanationView


def _view(region: float | None) -> ExplanationView:
    return ExplanationView(
        object_id="demo-<1>", png=b"\x89PNG-bytes", predicted="spiral", runner_up="merger",
        neighbour_id="demo-2", anomaly_type="cosmic_ray" if region else "",
        region_fraction=region, residual_inside=0.8 if region else None,
        attribution_inside=0.6 if region else None, seconds=0.2,
    )  # fmt: skip


def test_recorded_region_is_marked_and_described() -> None:
    text = explanation_html(_view(0.0123))
    assert "data-recorded-region='outlined'" in text
    assert "data-region-fraction='0.0123'" in text and "80% of the residual" in text
    assert "src='data:image/png;base64," in text
    assert "demo-&lt;1&gt;" in text and "demo-<1>" not in text  # escaped


def test_no_region_without_a_mask() -> None:
    text = explanation_html(_view(None))
    assert "data-recorded-region='none'" in text and "lsd-region" not in text


def test_app_detail_never_imports_torch() -> None:
    source = (Path(__file__).resolve().parents[2] / "app" / "detail.py").read_text()
    assert "import torch" not in source and "from models" not in source
