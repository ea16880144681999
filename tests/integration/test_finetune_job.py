"""Labels fine-tune the encoder: a new encoder version, its products, one atomic switch."""

from __future__ import annotations

import pytest

from backend.survey import Survey


@pytest.mark.slow
def test_finetune_job_registers_an_encoder_and_switches_everything_together(
    tiny_survey: Survey,
) -> None:
    from backend.jobs.kinds import HANDLERS
    from backend.latent.source import ANOMALY_FILE, INDEX_FILE, MAP_FILE, latent_dir
    from backend.modelling import infer, train
    from backend.products import product_dir
    from backend.registry import ModelRegistry

    start = train.train_encoder("tiny", init="scratch", steps=3, batch_size=32, progress_bar=False)
    infer.embed_survey("tiny", progress_bar=False)
    progress: list[dict] = []
    result = HANDLERS["finetune"](
        "tiny", {"label_column": "size_class", "steps": 12, "epochs": 10}, progress.append
    )
    registry = ModelRegistry()
    encoder = registry.get("encoder", result["encoder"])
    assert encoder.meta["parent"] == start.version
    assert encoder.meta["training"]["init"] == "finetune"
    assert encoder.meta["training"]["budget"]["steps"] == 12
    assert result["activated"] and encoder.gate["activate"]
    assert registry.active_versions("tiny") == {
        "encoder": encoder.version, "classifier": result["version"]
    }  # fmt: skip
    assert (product_dir("tiny", "encoder", encoder.version) / "embeddings.npy").is_file()
    for name in (MAP_FILE, INDEX_FILE, ANOMALY_FILE):
        assert (latent_dir("tiny", encoder.version) / name).is_file()
    assert any(p.get("step") == 12 for p in progress)


def test_a_mirror_asymmetric_task_fine_tunes_without_flips(tiny_survey: Survey) -> None:
    from backend.labels.schema import make_schema, save_schema
    from backend.modelling import infer, train

    train.train_encoder("tiny", init="scratch", steps=2, batch_size=32, progress_bar=False)
    infer.embed_survey("tiny", progress_bar=False)
    schema = make_schema(["big", "small"])
    from dataclasses import replace

    save_schema("tiny", replace(schema, mirror_symmetric=False))
    from backend.active.loop import finetune_and_maybe_activate
    from backend.registry import ModelRegistry

    result = finetune_and_maybe_activate("tiny", {"label_column": "size_class", "steps": 4})
    assert result["flip"] is False
    encoder = ModelRegistry().get("encoder", result["encoder"])
    assert encoder.meta["training"]["flip"] is False
    assert encoder.config["augment"]["flip"] is False


def test_a_task_whose_mirror_swaps_classes_gets_mirror_equivariant_models(
    tiny_survey: Survey,
) -> None:
    """Schema ``symmetries: {mirror: {big: small}}`` (as for spiral_cw / spiral_acw): the
    fine-tune and the classifier head are mirror-equivariant, and the head's predictions read
    the embeddings of the mirror images, kept beside the survey's embeddings."""
    from dataclasses import replace

    import numpy as np

    from backend.active.loop import finetune_and_maybe_activate
    from backend.labels.schema import make_schema, save_schema
    from backend.modelling import infer, train
    from backend.products import product_dir, read_predictions
    from backend.registry import ModelRegistry

    train.train_encoder("tiny", init="scratch", steps=2, batch_size=32, progress_bar=False)
    infer.embed_survey("tiny", progress_bar=False)
    schema = make_schema(["big", "small"])
    save_schema("tiny", replace(schema, mirror_symmetric=False, mirror_pairs=(("big", "small"),)))

    result = finetune_and_maybe_activate("tiny", {"label_column": "size_class", "steps": 4})
    assert result["mirror_pairs"] == [("big", "small")] and result["flip"] is False
    registry = ModelRegistry()
    encoder = registry.get("encoder", result["encoder"])
    assert encoder.meta["training"]["mirror_pairs"] == [["big", "small"]]
    classifier = registry.get("classifier", result["version"])
    assert classifier.config["mirror_permutation"] == [1, 0]
    folder = product_dir("tiny", "encoder", encoder.version)
    embeddings = np.load(folder / "embeddings.npy")
    mirrored = np.load(folder / "embeddings_mirror.npy")
    assert mirrored.shape == embeddings.shape and not np.allclose(mirrored, embeddings)
    table = read_predictions("tiny", "classifier", classifier.version)
    assert len(table) == len(tiny_survey) and set(table["pred_class"]) <= {"big", "small"}


def test_the_job_takes_its_recipe_from_the_params(tiny_survey: Survey) -> None:
    from backend.active.loop import finetune_and_maybe_activate
    from backend.modelling import infer, train
    from backend.modelling.finetune import RECIPES
    from backend.registry import ModelRegistry
    from backend.survey import SurveyError

    train.train_encoder("tiny", init="scratch", steps=2, batch_size=32, progress_bar=False)
    infer.embed_survey("tiny", progress_bar=False)
    params = {"label_column": "size_class", "steps": 3, "recipe": "supervised"}
    result = finetune_and_maybe_activate("tiny", params)
    training = ModelRegistry().get("encoder", result["encoder"]).meta["training"]
    assert training["recipe"] == RECIPES["supervised"]
    assert training["budget"]["steps"] == 3 and training["ssl_weight"] == 0.0
    with pytest.raises(SurveyError, match="unknown fine-tune recipe 'fancy'"):
        finetune_and_maybe_activate("tiny", {**params, "recipe": "fancy"})
