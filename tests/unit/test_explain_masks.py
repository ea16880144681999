"""The simulator records where each injected anomaly is (masks for checking explanations)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backend.simulate.config import ANOMALY_KINDS
from backend.simulate.masks import read_masks
from backend.simulate.survey import (
    DEFAULT_CONFIG,
    iter_simulated,
    render_object,
    render_object_with_mask,
    simulate_survey,
)
from backend.survey import Survey

EDIT_KINDS = ("satellite_track", "cosmic_ray", "detector_artifact")


@pytest.mark.parametrize("kind", ANOMALY_KINDS)
def test_every_kind_has_a_mask_and_the_image_is_unchanged(kind: str) -> None:
    image, row, mask = render_object_with_mask(5, seed=4, anomaly=kind)
    plain, plain_row = render_object(5, seed=4, anomaly=kind)
    assert np.array_equal(image, plain), "recording the mask must not change the pixels"
    assert row["anomaly_type"] == kind == plain_row["anomaly_type"]
    assert mask is not None and mask.shape == image.shape[1:] and mask.dtype == bool
    assert 0 < mask.mean() < 0.9


def test_normal_objects_have_no_mask() -> None:
    _, _, mask = render_object_with_mask(5, seed=4, anomaly="")
    assert mask is None


@pytest.mark.parametrize("kind", EDIT_KINDS)
def test_edit_masks_are_exactly_the_edited_pixels(kind: str) -> None:
    """An anomaly draws from its own random stream, so the same object rendered as a normal
    one is the image before the edits: they differ by over a sky sigma exactly on the mask."""
    sigma = np.asarray(DEFAULT_CONFIG.sky_sigma)[:, None, None]
    for index in range(4):
        image, _, mask = render_object_with_mask(index, seed=8, anomaly=kind)
        plain, _ = render_object(index, seed=8, anomaly="")
        changed = (np.abs(image.astype(np.float64) - plain) > sigma).any(axis=0)
        assert np.array_equal(changed, mask)


@pytest.mark.parametrize("kind", ["supernova", "blended_pair", "bright_star"])
def test_light_masks_hold_the_added_light(kind: str) -> None:
    for index in range(3):
        image, _, mask = render_object_with_mask(index, seed=8, anomaly=kind)
        plain, _ = render_object(index, seed=8, anomaly="")
        excess = np.abs(image.astype(np.float64) - plain).sum(axis=0)
        assert excess[mask].sum() / excess.sum() > 0.8  # faint wings stay outside
        assert mask.mean() < 0.6


def test_masks_are_the_same_whatever_workers() -> None:
    def run(workers: int, chunk: int) -> tuple[np.ndarray, np.ndarray]:
        parts = list(
            iter_simulated(
                40, seed=3, workers=workers, chunk=chunk, anomaly_fraction=0.3, masks=True
            )
        )
        rows = np.concatenate([p[2][0] for p in parts])
        masks = np.concatenate([p[2][1] for p in parts])
        return rows, masks

    rows1, masks1 = run(1, 16)
    rows2, masks2 = run(2, 7)
    assert len(rows1) >= 5
    assert np.array_equal(rows1, rows2) and np.array_equal(masks1, masks2)
    parts = list(  # the partitions a --scheduler runs (RenderPartition), here in-process
        iter_simulated(40, seed=3, chunk=9, anomaly_fraction=0.3, masks=True, scheduler="sync")
    )
    assert np.array_equal(np.concatenate([p[2][0] for p in parts]), rows1)
    assert np.array_equal(np.concatenate([p[2][1] for p in parts]), masks1)


def test_survey_stores_masks_of_its_anomalous_rows(tmp_path) -> None:
    path = simulate_survey("masked", n=30, seed=3, workers=1, progress=False, root=tmp_path,
                           anomaly_fraction=0.3)  # fmt: skip
    survey = Survey(path)
    masks = read_masks(path)
    catalog: pd.DataFrame = survey.catalog
    anomalous = np.flatnonzero(catalog["anomaly_type"].to_numpy() != "")
    assert masks is not None and np.array_equal(masks.rows, anomalous)
    for row in range(len(survey)):
        expect = render_object_with_mask(row, seed=3, anomaly_fraction=0.3, id_prefix="masked")[2]
        got = masks.get(row)
        assert (got is None) == (expect is None)
        if got is not None:
            assert np.array_equal(got, expect)
    assert survey.meta.extra["anomaly_masks"] == "anomaly_masks.npz"
