"""The pixel scorers of a survey on two local Dask workers equal the in-process result (each
partition opens the survey by name on its worker)."""

from __future__ import annotations

import numpy as np
import pytest

from backend.latent import image_scores as image_scores_module
from backend.latent.image_scores import IMAGE_SCORERS, image_scores
from backend.pipeline.execution import executor
from backend.survey import Survey


def test_pixel_scores_on_two_local_workers_equal_sync(
    tiny_survey: Survey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(image_scores_module, "PARTITION_ROWS", 40)  # 4 partitions of 150
    sync, psf = image_scores(tiny_survey, "sync")
    with executor("local:2") as ex:
        local, local_psf = image_scores(tiny_survey, ex)
        assert ex.client is not None, "the partitions ran on the cluster"
    assert local_psf == psf
    for name in IMAGE_SCORERS:
        assert sync[name].shape == (150,) and np.isfinite(sync[name]).all()
        np.testing.assert_array_equal(local[name], sync[name])
