"""The S1 bench's fine-tune mode: every round really fine-tunes, continuing the last encoder."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from backend.survey import Survey


@pytest.mark.slow
def test_each_round_fine_tunes_the_previous_rounds_encoder_and_reembeds(
    tiny_survey: Survey,
) -> None:
    from backend.modelling import train
    from backend.registry import ModelRegistry
    from bench.bench_active_s1 import embed_version, run_one_finetune

    train.train_encoder("tiny", init="scratch", steps=2, batch_size=32, progress_bar=False)
    registry = ModelRegistry()
    base = registry.latest("encoder", "tiny").version
    pixels = np.asarray(tiny_survey.images[:])
    bands = list(tiny_survey.bands)
    y = (tiny_survey.catalog["size_class"] == "big").to_numpy(np.int64)
    test = np.arange(0, 150, 5)  # 30 objects never offered
    base_x = embed_version(base, pixels, bands)
    args = argparse.Namespace(
        max_labels=30, active_max_labels=20, batch=10, finetune_steps=2, class_weights="none"
    )
    curve = run_one_finetune(
        pixels, bands, y, test, "margin+diversity", 0, base, base_x, ["small", "big"], args,
        survey="tiny",
    )  # fmt: skip

    assert [p["labels"] for p in curve] == [10, 20]  # active strategies stop at 20
    parents = [registry.get("encoder", p["encoder"]).meta["parent"] for p in curve]
    assert parents == [base, curve[0]["encoder"]]  # continues, not restarted from the base
    assert all(p["steps"] == 2 and "NT-Xent" in p["recipe"] for p in curve)  # < 1,000 labels
    last = embed_version(curve[-1]["encoder"], pixels, bands)
    assert not np.allclose(last, base_x, atol=1e-4)  # the backbone moved; pool re-embedded
    tuned = registry.get("encoder", curve[-1]["encoder"]).meta["training"]
    assert tuned["n_labelled_train"] == 20  # labels so far, never the test objects
    assert sum(tuned["class_counts"].values()) == 20
