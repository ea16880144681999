"""The fine-tune step bench times the product's two task kinds on the same training rows."""

from __future__ import annotations

import numpy as np
import pytest

from backend.survey import Survey


@pytest.mark.slow
def test_the_step_bench_times_a_merged_flip_task_and_a_mirror_equivariant_one(
    tiny_survey: Survey,
) -> None:
    from backend.modelling import train
    from bench.bench_finetune_step import step_costs

    train.train_encoder("tiny", init="scratch", steps=2, batch_size=32, progress_bar=False)
    size = tiny_survey.catalog["size_class"].to_numpy().astype(str)
    names = np.where(np.arange(len(size)) % 3 == 0, "round", size)
    rows = np.arange(90)
    runs = [
        step_costs("tiny", names, rows, ("small", "big"), mirror_equivariant=m, steps=4, warmup=1)
        for m in (False, True)
    ]
    flip, mirrored = runs
    assert flip["classes"] == ["round", "small+big"] and flip["flip"] is True
    assert "mirror" not in flip["recipe"]
    assert mirrored["classes"] == ["big", "round", "small"] and mirrored["flip"] is False
    assert mirrored["recipe"].endswith("mirror-equivariant")
    for run in runs:
        assert run["steps"] == 4 and run["counted_steps"] == 3  # the warm-up step not counted
        assert run["cpu_s_per_step"] > 0 and run["wall_s_per_step"] > 0
