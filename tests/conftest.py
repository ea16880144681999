"""Shared fixtures: an isolated data root and a tiny synthetic survey."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.survey import Survey, SurveyWriter

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh LATENTSKY_HOME for one test."""
    root = tmp_path / "home"
    monkeypatch.setenv("LATENTSKY_HOME", str(root))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return root


def make_blobs(n: int, bands: int = 3, size: int = 16, seed: int = 0) -> np.ndarray:
    """(n, bands, size, size) float32 Gaussian blobs of varying width and colour plus noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    widths = rng.uniform(1.0, 4.0, n)
    colours = rng.uniform(0.5, 2.0, (n, bands))
    blob = np.exp(-(xx**2 + yy**2)[None] / (2 * widths[:, None, None] ** 2))
    images = colours[:, :, None, None] * blob[:, None] * 10.0
    return (images + rng.normal(0, 0.1, images.shape)).astype(np.float32)


@pytest.fixture
def tiny_survey(home: Path) -> Survey:
    """A 150-object, 3-band, 16x16 survey named 'tiny' in the test's data root."""
    images = make_blobs(150)
    catalog = pd.DataFrame(
        {
            "object_id": [f"tiny-{i:04d}" for i in range(150)],
            "ra": np.linspace(150.0, 150.5, 150),
            "dec": np.linspace(2.0, 2.5, 150),
            "size_class": np.where(np.arange(150) % 2, "big", "small"),
        }
    )
    with SurveyWriter("tiny", ["g", "r", "i"], (16, 16), "test", pixel_scale=0.2) as writer:
        writer.append(images[:100], catalog.iloc[:100])
        writer.append(images[100:], catalog.iloc[100:])
    return Survey.open("tiny")
