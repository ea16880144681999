"""Domain shift in the app: the survey banner, the map colouring, the selection and upload
notes and the tempered confidence (in-process, no browser)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from app import ood as app_ood
from backend.latent import ood
from backend.pipeline.runner import ensure
from backend.registry import ModelRegistry
from backend.survey import Survey
from tests.unit.test_pipeline_app_cache import add_encoder

SUMMARY = {
    "survey": "<b>odd</b>", "encoder": "v0001", "verdict": "unlike",
    "fraction_beyond_p99": 0.8, "reference_p99": 0.2,
}  # fmt: skip


def test_banner_is_escaped_and_only_when_unlike() -> None:
    text = app_ood.survey_warning(SUMMARY)
    assert "&lt;b&gt;odd&lt;/b&gt;" in text and "<b>odd" not in text
    assert "Fine-tune" in text and "80%" in text
    assert app_ood.survey_warning({**SUMMARY, "verdict": "like the training data"}) is None
    assert app_ood.survey_warning(None) is None


def test_selection_and_upload_notes_and_tempered_confidence() -> None:
    assert app_ood.selection_note(np.array([0.1, 0.15, 0.3]), SUMMARY) == ""
    assert "67%" in app_ood.selection_note(np.array([0.1, 0.3, 0.4]), SUMMARY)
    note = app_ood.upload_note(np.array([0.5]), 0.2, "<script>x.png")
    assert "&lt;script&gt;x.png" in note and "<script>" not in note
    assert app_ood.upload_note(np.array([0.1]), 0.2, "a.png") == ""
    assert app_ood.tempered_confidence(0.9, 0.1, SUMMARY) == (0.9, "")
    shown, text = app_ood.tempered_confidence(0.9, 0.4, {**SUMMARY, "n_classes": 4})
    assert 0.25 < shown < 0.9 and "confidence unreliable" in text
    further, _ = app_ood.tempered_confidence(0.9, 0.8, {**SUMMARY, "n_classes": 4})
    assert further < shown, "the farther out, the closer to chance"


def test_app_shows_the_ood_product_of_a_shifted_survey(tiny_survey: Survey) -> None:
    from app import data
    from app.colouring import colour_specs
    from app.detail import detail_html

    encoder = add_encoder(tiny_survey, 1.0)
    version = ModelRegistry().get("encoder", encoder)
    emb = np.load(
        version.path.parents[2] / "products" / "tiny" / f"encoder-{encoder}" / "embeddings.npy"
    )
    # the encoder's reference: training embeddings around another direction than this survey's
    rng = np.random.default_rng(0)
    train = (-emb.mean(axis=0) + 0.1 * rng.normal(size=(300, emb.shape[1]))).astype(np.float32)
    ood.save_reference(
        ood.build_reference(train, source="elsewhere"), version.path / ood.REFERENCE_FILE
    )
    ensure("tiny", ["ood"], "sync")
    data.clear_cache()
    shown = data.survey_data("tiny")
    assert shown.ood["verdict"] == "unlike"
    assert any("Domain shift" in p and "Fine-tune" in p for p in shown.problems)
    assert app_ood.OOD in [s.key for s in colour_specs(shown.table)]
    body = detail_html(shown, 3, pd.DataFrame(columns=["user", "value"]), {})
    assert "Domain shift" in body and "beyond the training data" in body

    # a survey like the training data: no banner
    ood.save_reference(ood.build_reference(emb, source="tiny"), version.path / ood.REFERENCE_FILE)
    ensure("tiny", ["ood"], "sync")
    data.clear_cache()
    shown = data.survey_data("tiny")
    assert shown.ood["verdict"] != "unlike" and not any("Domain shift" in p for p in shown.problems)
