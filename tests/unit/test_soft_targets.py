"""Vote fractions as soft targets of a fine-tune; a person's label wins over votes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backend.active.soft_targets import vote_targets
from backend.labels import LabelStore
from backend.survey import Survey


def test_votes_give_renormalised_distributions_except_where_a_person_labelled(
    tiny_survey: Survey,
) -> None:
    store = LabelStore()
    votes = pd.DataFrame(
        {"object_id": ["tiny-0003", "tiny-0004", "tiny-0005"], "elliptical": [3, 1, 0],
         "spiral": [1, 1, 0], "merger": [0, 0, 5]}
    )  # fmt: skip
    store.import_votes("tiny", votes, source="gz")
    store.add("tiny", "tiny-0004", "spiral", user="ana")
    ids = tiny_survey.catalog["object_id"].to_numpy()
    soft, rows = vote_targets(store, "tiny", "class", ["elliptical", "spiral"], ids)
    assert rows.tolist() == [3]  # 0004: a person's label; 0005: only votes outside the classes
    assert soft[3] == pytest.approx([0.75, 0.25])
    assert soft.shape == (len(ids), 2) and soft[np.arange(len(ids)) != 3].sum() == 0


@pytest.mark.slow
def test_a_fine_tune_trains_on_votes_but_never_on_the_validation_part(
    tiny_survey: Survey,
) -> None:
    from backend.modelling import train
    from backend.modelling.finetune import finetune_encoder

    train.train_encoder("tiny", init="scratch", steps=2, batch_size=32, progress_bar=False)
    n = len(tiny_survey)
    labels = np.full(n, -1, np.int64)
    labels[:40] = np.arange(40) % 2
    train_rows, validation = np.arange(30), np.arange(30, 40)
    soft = np.zeros((n, 2), np.float32)
    soft[[5, 35, 60, 61]] = [[0.6, 0.4], [0.5, 0.5], [0.9, 0.1], [0.2, 0.8]]
    version = finetune_encoder("tiny", labels, ["small", "big"], train_rows, steps=2,
                               batch_size=16, soft_targets=soft, progress_bar=False)  # fmt: skip
    training = version.meta["training"]
    assert training["n_soft_targets"] == 3  # rows 5, 60, 61; not 35 (validation)
    assert 35 in validation
    with pytest.raises(Exception, match="soft targets of shape"):
        finetune_encoder("tiny", labels, ["small", "big"], train_rows, steps=1,
                         soft_targets=soft[:10], progress_bar=False)  # fmt: skip
