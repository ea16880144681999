"""docs/notebooks/explore_demo.ipynb runs top to bottom in a Jupyter kernel (nbclient) on a
small survey with an encoder's products: the Explore view renders inline, the search finds
look-alikes, the labels it gives come back in pandas and its collection is stored."""

from __future__ import annotations

from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from nbclient import NotebookClient

from backend import collections
from backend.labels import LabelStore
from backend.pipeline.runner import ensure
from backend.pipeline.storage import write_embeddings
from backend.registry import ModelRegistry
from backend.survey import Survey
from tests.conftest import REPO_ROOT

NOTEBOOK = REPO_ROOT / "docs" / "notebooks" / "explore_demo.ipynb"


def _products(survey: Survey) -> None:
    """An active encoder (cutouts pooled 4x4) and its map, index and anomaly scores."""
    registry = ModelRegistry()
    version = registry.save("encoder", {"w": torch.zeros(1)}, {"arch": "fake"}, survey=survey.name)
    registry.set_active(survey.name, "encoder", version.version)
    images = survey.cutouts(np.arange(len(survey)))
    n, c, h, w = images.shape
    emb = images.reshape(n, c, 4, h // 4, 4, w // 4).mean(axis=(3, 5)).reshape(n, -1)
    write_embeddings(survey.name, "encoder", version.version, emb.shape, lambda out: out.__setitem__(..., emb))  # fmt: skip
    ensure(survey.name, ["scores"], "sync")


@pytest.mark.slow
def test_example_notebook_runs_on_a_small_survey(tiny_survey: Survey, tmp_path: Path) -> None:
    _products(tiny_survey)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params.source = 'SURVEY = "tiny"\nUSER = "nb-test"'
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    explore = next(c for c in nb.cells if "ExploreView(" in c.source)
    shown = [o.get("data", {}) for o in explore.outputs if "data" in o]
    assert any("application/vnd.holoviews_exec.v0+json" in b for b in shown), explore.outputs
    labels = LabelStore().current("tiny")
    assert len(labels) == 3 and set(labels["user"]) == {"nb-test"}
    assert set(labels["value"]) == {"spiral"}
    saved = collections.list_collections("tiny")
    assert [c.name for c in saved] == ["look-alikes of tiny-0000"]
    assert saved[0].size == 10 and saved[0].kind == "search" and saved[0].owner == "nb-test"
    assert set(labels["object_id"]) <= set(saved[0].object_ids)
