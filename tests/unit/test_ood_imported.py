"""An imported encoder's OOD reference (its training data is unknown): built at import from a
stratified sample of the survey it is imported for, or of ``--reference-survey``, stored with
the model and recorded in its metadata; and an encoder whose reference cannot be had gets no
``ood`` product, with one line saying why, while the other products are made."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.cli import main
from backend.latent import ood
from backend.latent.ood_product import NO_REFERENCE, read_ood, reference_path, stratified_rows
from backend.registry import ModelRegistry
from backend.survey import Survey, SurveyWriter
from tests.conftest import make_blobs
from tests.unit.test_import_models import assert_refused, import_args, script_file, tiny_conv
from tests.unit.test_pipeline_app_cache import add_encoder


def other_survey(n: int = 60) -> Survey:
    """A second g, r, i survey of 16x16 cutouts, brighter and noisier than 'tiny'."""
    rng = np.random.default_rng(5)
    images = make_blobs(n, seed=5) * 4 + rng.normal(0, 0.5, (n, 3, 16, 16)).astype(np.float32)
    catalog = pd.DataFrame({
        "object_id": [f"other-{i:03d}" for i in range(n)],
        "ra": np.linspace(10.0, 10.2, n), "dec": np.linspace(-5.0, -4.8, n),
    })  # fmt: skip
    with SurveyWriter("other", ["g", "r", "i"], (16, 16), "test", pixel_scale=0.2) as writer:
        writer.append(images, catalog)
    return Survey.open("other")


def scripted_encoder(tmp_path: Path) -> Path:
    return script_file(tiny_conv(3), tmp_path / "scripted.pt", (2, 3, 16, 16))


def test_stratified_rows_cover_the_catalog_in_order() -> None:
    rows = stratified_rows(10_000, 2000, seed=3)
    assert len(rows) == 2000 and len(np.unique(rows)) == 2000 and rows.max() < 10_000
    counts = np.bincount(rows // 1000, minlength=10)  # every tenth of the catalog in proportion
    assert np.all(counts == 200), counts
    assert list(stratified_rows(7, 2000)) == list(range(7))


def test_imported_encoder_reference_is_its_own_survey(
    tiny_survey: Survey, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(import_args(scripted_encoder(tmp_path), "torchscript", "--activate")) == 0
    printed = capsys.readouterr().out
    assert "OOD reference: tiny itself (150 of 150 objects, stratified)" in printed
    version = ModelRegistry().get("encoder", "v0001")
    record = version.meta["training"]["ood_reference"]
    assert record["survey"] == "tiny" and record["objects"] == 150
    assert "distance to that survey's bulk" in record["meaning"]
    reference = ood.load_reference(reference_path(version))
    assert "tiny itself" in reference.source and len(reference.vectors) == 150
    from app.views.models import ModelsView

    assert ("OOD reference", "tiny itself (150 objects)") in ModelsView._cards(version)

    assert main(["ood", "--survey", "tiny", "--json", str(tmp_path / "s.json")]) == 0
    printed = capsys.readouterr().out
    assert f"encoder v0001: {NO_REFERENCE}" in printed and "tiny itself" in printed
    assert "fine-tune" not in printed  # no advice to fine-tune against the survey itself
    # the stored vectors are the survey's embeddings of those objects (made by `embed` later)
    emb = np.load(home / "products" / "tiny" / "encoder-v0001" / "embeddings.npy")
    np.testing.assert_allclose(
        reference.vectors.astype(np.float32), ood.unit_rows(emb[reference.rows]), atol=2e-3
    )
    # and an object is not its own neighbour: nobody scores exactly 0
    scores, summary = read_ood("tiny", "v0001")
    assert scores["ood_score"].min() > 1e-4 and summary["n"] == 150
    assert json.loads((tmp_path / "s.json").read_text())["verdict"] == NO_REFERENCE


def test_reference_survey_given_by_the_user(
    tiny_survey: Survey, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = other_survey()
    path = scripted_encoder(tmp_path)
    assert_refused(
        import_args(path, "torchscript", "--reference-survey", "nowhere"), home, capsys, "nowhere"
    )
    assert_refused(
        import_args(path, "torchscript", "--reference-size", "1"), home, capsys, "--reference-size"
    )
    argv = ["--activate", "--reference-survey", "other", "--reference-size", "40"]
    assert main(import_args(path, "torchscript", *argv)) == 0
    assert "OOD reference: other itself (40 of 60 objects" in capsys.readouterr().out
    version = ModelRegistry().get("encoder", "v0001")
    assert version.meta["training"]["ood_reference"]["role"] == "given as --reference-survey"

    assert main(["ood", "--survey", "tiny"]) == 0
    printed = capsys.readouterr().out
    _, summary = read_ood("tiny", "v0001")
    assert summary["verdict"] in ood.VERDICTS, "scored against another survey: a real verdict"
    assert "other itself" in summary["reference"] and "other itself" in printed
    # the reference survey scored against itself sits in its own bulk; 'tiny' lies further off
    from backend.latent.ood_product import make_ood

    assert main(["embed", "--survey", "other", "--model", "v0001"]) == 0
    own = make_ood("other", "v0001")
    assert own["verdict"] == NO_REFERENCE and own["median"] < summary["median"]
    assert len(other) == own["n"]


def test_ood_skipped_with_its_reason_when_no_reference_can_be_had(
    tiny_survey: Survey, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An encoder trained on 'tiny' used on 'other', with no stored reference and no
    embeddings of 'tiny': the ood step is left out with one line, the index is still made."""
    from backend.pipeline.planner import plan
    from backend.pipeline.runner import ensure

    other = other_survey()
    encoder = add_encoder(tiny_survey, 1.0)  # registered for 'tiny', with its embeddings
    ModelRegistry().set_active("other", "encoder", encoder)
    add_encoder_embeddings(other, encoder)
    for folder in (home / "products" / "tiny").glob("encoder-*"):
        for f in folder.iterdir():
            f.unlink()

    the_plan = plan("other", ["index", "ood"])
    assert [i.target.product for i in the_plan.todo] == ["embeddings", "index"]  # adopted, made
    (note,) = the_plan.notes
    assert note.startswith("no ood for survey other: ") and "\n" not in note
    assert f"embed --survey tiny --model {encoder}" in note
    ensure("other", ["index", "ood"], "sync")  # no error: the index is made, ood left out
    assert plan("other", ["index"]).todo == [] and read_ood("other", encoder) is None

    assert main(["ood", "--survey", "other"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no ood for survey other") and "\n" not in err


def add_encoder_embeddings(survey: Survey, encoder: str) -> None:
    """The pooled-cutout 'embeddings' add_encoder writes, for another survey."""
    from backend.pipeline.storage import write_embeddings

    images = survey.cutouts(np.arange(len(survey)))
    n, c, h, w = images.shape
    emb = images.reshape(n, c, 4, h // 4, 4, w // 4).mean(axis=(3, 5)).reshape(n, -1)
    write_embeddings(survey.name, "encoder", encoder, emb.shape, lambda o: o.__setitem__(..., emb))
