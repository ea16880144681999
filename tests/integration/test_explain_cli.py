"""``python -m backend explain`` on a tiny survey with trained models: a figure, the exemplars,
and one clear error line for an unknown id."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.cli import main
from backend.survey import Survey


@pytest.fixture
def modelled(tiny_survey: Survey) -> Survey:
    quick = ["--survey", "tiny", "--epochs", "1", "--batch-size", "32"]
    assert main(["train", "encoder", *quick]) == 0
    assert main(["embed", "--survey", "tiny"]) == 0
    assert main(["train", "classifier", "--survey", "tiny", "--label-column", "size_class",
                 "--epochs", "5"]) == 0  # fmt: skip
    assert main(["train", "autoencoder", *quick]) == 0
    assert main(["predict", "--survey", "tiny", "--kinds", "autoencoder"]) == 0
    assert main(["score", "--survey", "tiny"]) == 0
    return tiny_survey


def test_explain_writes_a_figure_and_names_exemplars(
    modelled: Survey, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "why.png"
    args = ["explain", "--survey", "tiny", "--id", "tiny-0003", "--neighbour", "tiny-0010"]
    assert main([*args, "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = capsys.readouterr().out
    assert "predicted" in text and "runner-up" in text
    assert "labelled big:" in text and "labelled small:" in text
    assert "similarity to tiny-0010" in text
    assert "anomaly" in text and "ordinary neighbours" in text
    from backend.explain import explain_object, load_context

    expl = explain_object(load_context("tiny"), "tiny-0003")
    catalog = modelled.catalog.set_index("object_id")
    for name, ids in expl.exemplars.items():  # exemplars carry the class they stand for
        assert ids and set(catalog.loc[ids, "size_class"]) == {name}
    assert expl.class_map.shape == (3, 16, 16) and expl.residual.shape == (3, 16, 16)


def test_unknown_id_is_one_error_line(modelled: Survey, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--survey", "tiny", "--id", "nope-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "nope-1" in err[0]
