"""The domain-shift banner in a browser: a survey far from its encoder's OOD reference shows a
banner naming the survey and suggesting the fine-tuning job; a survey near its reference shows
none."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.latent import ood
from backend.pipeline.runner import ensure
from backend.registry import ModelRegistry
from backend.survey import Survey, SurveyWriter
from tests.conftest import make_blobs
from tests.ui.pages import open_tab
from tests.unit.test_pipeline_app_cache import add_encoder

pytestmark = pytest.mark.ui


def _survey(name: str, seed: int) -> Survey:
    ids = [f"{name}-{i:03d}" for i in range(80)]
    with SurveyWriter(name, ["g", "r", "i"], (16, 16), f"{name}-source") as writer:
        writer.append(make_blobs(80, seed=seed), pd.DataFrame({"object_id": ids}))
    return Survey.open(name)


def _far_reference(survey: Survey, encoder: str) -> None:
    """The encoder's reference: 'training' embeddings around the opposite direction."""
    version = ModelRegistry().get("encoder", encoder)
    emb = np.load(version.path.parents[2] / "products" / survey.name / f"encoder-{encoder}" / "embeddings.npy")  # fmt: skip
    rng = np.random.default_rng(0)
    train = (-emb.mean(axis=0) + 0.1 * rng.normal(size=(300, emb.shape[1]))).astype(np.float32)
    reference = ood.build_reference(train, source="another survey")
    ood.save_reference(reference, version.path / ood.REFERENCE_FILE)


def _warnings(page: object, name: str) -> list[str]:
    """Pick survey ``name``; the lines of its Explore view's warnings once it has loaded."""
    picker = page.locator("select").filter(has=page.locator("option", has_text="near")).first
    picker.select_option(label=name)
    page.get_by_text(f"source: {name}-source").first.wait_for(timeout=60_000)
    open_tab(page, "Explore")
    # hidden tabs keep their warnings in the page; no map was made, which is one of them
    lines = page.locator(".alert-warning li >> visible=true")
    lines.filter(has_text=f"map --survey {name}").first.wait_for(timeout=30_000)
    return lines.all_inner_texts()


def test_banner_for_a_far_survey_only(home: Path, serve_app: callable, page: object) -> None:
    near, far = _survey("near", 1), _survey("far", 2)
    add_encoder(near, 1.0)  # its reference is made from near's own embeddings
    _far_reference(far, add_encoder(far, 1.0))
    ensure("near", ["ood"], "sync")
    ensure("far", ["ood"], "sync")

    url = serve_app()
    page.goto(url + "/main", wait_until="networkidle")
    page.locator("select").filter(has=page.locator("option", has_text="near")).first.wait_for()

    (banner,) = [line for line in _warnings(page, "far") if "Domain shift" in line]
    assert "far is unlike the encoder" in banner, banner  # names the survey
    assert "Fine-tune encoder" in banner, banner  # the job it suggests, by its name in the app

    lines = _warnings(page, "near")
    assert not [line for line in lines if "Domain shift" in line], lines
    assert page.locator("text=Domain shift >> visible=true").count() == 0
    assert page.console_errors == []
