"""The pixel scorers of a whole survey (:mod:`backend.latent.morphology`), per partition.

The survey's PSF sharpness (hence the sharpness limit and the PSF's sigma, the asymmetry's
smoothing) is measured once on an even sample of its cutouts; each partition
(a task, run where the scheduler says) then reads its rows batch by batch and scores them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from backend.latent.anomaly import PIXEL_SCORERS
from backend.latent.morphology import (
    SAMPLE,
    pixel_scores,
    psf_sharpness,
    psf_sigma,
    sharpness_limit,
)
from backend.pipeline.execution import executor, partitions
from backend.survey import Survey

IMAGE_SCORERS = PIXEL_SCORERS  # what pixel_scores returns
PARTITION_ROWS = 65536  # ~1 ms a 64x64x4 cutout: a 10k survey runs in this process, no cluster
BATCH = 256  # cutouts per numpy pass (a 64x64x4 batch is ~17 MB per temporary)


@dataclass(frozen=True)
class PixelPartition:
    """The pixel scores of rows ``[lo, hi)`` of a survey (a task)."""

    survey: str
    q_limit: float
    smooth: float
    batch: int = BATCH

    def __call__(self, rows: tuple[int, int]) -> dict[str, np.ndarray]:
        survey = Survey.open(self.survey)
        found: dict[str, list[np.ndarray]] = {name: [] for name in IMAGE_SCORERS}
        for _, images in survey.iter_batches(self.batch, rows[0], rows[1]):
            for name, values in pixel_scores(images, self.q_limit, self.smooth).items():
                found[name].append(values)
        return {name: np.concatenate(parts) for name, parts in found.items()}


def survey_psf_sharpness(survey: Survey) -> float:
    """``q_psf`` of the survey, from at most :data:`SAMPLE` cutouts spread over it."""
    n = len(survey)
    rows = np.unique(np.linspace(0, n - 1, min(n, SAMPLE)).astype(np.int64))
    return psf_sharpness(survey.cutouts(rows))


def image_scores(
    survey: Survey, scheduler: Any = None, progress: bool = False
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """(raw ``sharpness`` and ``asymmetry`` of every object, {"q_psf", "q_limit",
    "psf_sigma"})."""
    q_psf = survey_psf_sharpness(survey)
    task = PixelPartition(survey.name, sharpness_limit(q_psf), psf_sigma(q_psf))
    parts = partitions(len(survey), PARTITION_ROWS)
    with executor(scheduler) as ex:
        found = ex.map(task, parts, desc="pixel scores" if progress and len(parts) > 1 else None)
    scores = {name: np.concatenate([f[name] for f in found]) for name in IMAGE_SCORERS}
    psf = {"q_psf": q_psf, "q_limit": task.q_limit, "psf_sigma": task.smooth}
    return scores, {k: round(v, 4) for k, v in psf.items()}
