"""``python -m backend map|index|search|score`` through ``backend.cli.main``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from astropy.table import Table

from backend import cli
from backend.latent import embedder
from backend.latent.service import clear_cache
from backend.products import write_predictions
from backend.registry import ModelRegistry
from backend.survey import Survey
from tests.unit.test_latent_query import add_encoder, fake_embed


@pytest.fixture(autouse=True)
def fresh_services() -> None:
    clear_cache()


@pytest.fixture
def survey(tiny_survey: Survey) -> Survey:
    add_encoder(tiny_survey)
    return tiny_survey


def test_without_embeddings_the_error_says_run_prepare(
    tiny_survey: Survey, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["map", "--survey", "tiny"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "python -m backend prepare --survey tiny" in err


def test_map_index_search_score(
    survey: Survey, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    product = home / "products" / "tiny" / "encoder-v0001"
    assert cli.main(["map", "--survey", "tiny", "--landmarks", "60"]) == 0
    assert "map of 150 objects" in capsys.readouterr().out
    assert np.load(product / "map.npy").shape == (150, 2)

    assert cli.main(["index", "--survey", "tiny", "--kind", "hnsw"]) == 0
    assert "hnsw index of 150 objects" in capsys.readouterr().out
    assert (product / "index.faiss").is_file()

    out_file = tmp_path / "similar.vot"
    args = ["search", "--survey", "tiny", "--id", "tiny-0005", "-k", "3", "--output", str(out_file)]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "3 objects of tiny (encoder v0001) like tiny-0005" in out
    assert out.splitlines()[1].split() == ["rank", "index", "object_id", "similarity", "ra", "dec"]
    assert len(Table.read(out_file, format="votable")) == 3

    assert cli.main(["search", "--survey", "tiny", "--radec", "150.0 2.0", "-k", "2"]) == 0
    assert "like tiny-0000" in capsys.readouterr().out
    examples = ["--positive", "tiny-0001,tiny-0002", "--negative", "tiny-0003"]
    assert cli.main(["search", "--survey", "tiny", *examples, "--dedupe-arcsec", "2"]) == 0
    assert "2 positive / 1 negative" in capsys.readouterr().out

    assert cli.main(["score", "--survey", "tiny", "--lof"]) == 0  # default scorers and LOF
    out = capsys.readouterr().out
    assert "pixel scores computed: PSF sharpness" in out and "kNN distances from the saved" in out
    scores = pd.read_parquet(product / "anomaly.parquet")
    assert len(scores) == 150
    assert {"knn", "sharpness", "asymmetry", "lof", "anomaly", "rank"} <= set(scores)
    assert set(scores.attrs["pixel_scores"]) == {"q_psf", "q_limit", "psf_sigma"}
    assert cli.main(["score", "--survey", "tiny"]) == 0  # the survey's pixel scores are kept
    assert "pixel scores read from the survey product" in capsys.readouterr().out
    assert cli.main(["score", "--survey", "tiny", "--scorers", "recon,iforest,knn"]) == 0
    assert "no autoencoder for this survey" in capsys.readouterr().out
    scores = pd.read_parquet(product / "anomaly.parquet")
    assert scores.attrs["scorers"] == ["iforest", "knn"]
    assert cli.main(["score", "--survey", "tiny", "--scorers", "knn,magic"]) == 2
    assert "--scorers: unknown ['magic']" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--id", "ghost"], "unknown object id 'ghost'"),
        (["--id", "#999"], "index 999 out of range"),
        (["--radec", "400 2"], "RA 400 deg is outside"),
        (["--radec", "150.0 2.0", "--radius", "0.001", "--id", "x"], None),
        (["--radec", "151 3"], "no object within 5 arcsec"),
        (["--id", "tiny-0001", "-k", "0"], "k must be between 1 and 10,000"),
        (["--negative", "tiny-0001", "--id", "tiny-0002"], "--negative needs --positive"),
    ],
)
def test_bad_searches_are_one_error_line(
    survey: Survey, capsys: pytest.CaptureFixture[str], args: list[str], message: str | None
) -> None:
    if message is None:  # two query kinds at once: argparse refuses
        with pytest.raises(SystemExit):
            cli.main(["search", "--survey", "tiny", *args])
        return
    assert cli.main(["search", "--survey", "tiny", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_search_by_image_file(
    survey: Survey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(embedder, "encoder_embedder", lambda version, bands: fake_embed)
    good = tmp_path / "cutout.npy"
    np.save(good, survey.cutout(17))
    assert cli.main(["search", "--survey", "tiny", "--image", str(good), "-k", "1"]) == 0
    assert "tiny-0017" in capsys.readouterr().out.splitlines()[-1]
    from astropy.io import fits

    wrong = tmp_path / "wrong.fits"
    fits.PrimaryHDU(np.zeros((4, 16, 16), np.float32)).writeto(wrong)
    assert cli.main(["search", "--survey", "tiny", "--image", str(wrong)]) == 2
    assert "image has 4 band(s), survey tiny expects 3 (g, r, i)" in capsys.readouterr().err


def test_score_uses_the_autoencoder_errors(
    survey: Survey, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = ModelRegistry()
    ae = registry.save("autoencoder", {"w": torch.zeros(1)}, {}, survey="tiny")
    registry.set_active("tiny", "autoencoder", ae.version)
    errors = np.linspace(0, 1, 150).astype(np.float32)
    write_predictions("tiny", "autoencoder", ae.version, pd.DataFrame({"recon_error": errors}))
    # predictions without the recon_peak column asked for: the mean residual stands in
    assert cli.main(["score", "--survey", "tiny", "--scorers", "recon_peak,iforest,knn"]) == 0
    assert f"reconstruction errors from autoencoder {ae.version}" in capsys.readouterr().out
    scores = pd.read_parquet(home / "products" / "tiny" / "encoder-v0001" / "anomaly.parquet")
    np.testing.assert_allclose(scores["recon_raw"], errors)
    assert scores.attrs["scorers"] == ["recon", "iforest", "knn"]
