"""Batch inference over a whole survey into versioned products (embeddings, predictions)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from backend.modelling.common import Progress, check_bands, device, load_model, resolve_version
from backend.products import open_embeddings, write_embeddings, write_predictions
from backend.registry import ModelRegistry, ModelVersion
from backend.survey import Survey, SurveyError

MC_SAMPLES = 30


def embed_survey(
    survey_name: str,
    version: str | None = None,
    *,
    batch_size: int = 512,
    progress: Progress | None = None,
    progress_bar: bool = True,
    mirror: bool = False,
) -> tuple[ModelVersion, str]:
    """(N, D) float32 embeddings of every object with an encoder; returns (version, path).
    ``mirror``: of the cutouts' mirror images instead (``embeddings_mirror.npy``), read by the
    classifiers of tasks whose mirror image swaps classes (:mod:`models.mirror`)."""
    from models import embed

    survey = Survey.open(survey_name)
    encoder_version = resolve_version(ModelRegistry(), survey.name, "encoder", version)
    if encoder_version.config.get("kind") == "imported_embeddings":  # written at import
        if mirror:
            raise SurveyError(
                f"encoder {encoder_version.version} holds imported embeddings: there are no "
                "embeddings of mirror images to read, so a mirror-equivariant task needs one "
                "of LatentSky's own encoders"
            )
        from backend.modelling.imported import imported_product

        return encoder_version, str(imported_product(survey.name, encoder_version))
    encoder = load_model(encoder_version)
    check_bands(encoder.bands, survey)
    shape = (len(survey), int(encoder.embedding_dim))

    def fill(out: np.ndarray) -> None:
        embed(
            encoder, survey.images, bands=survey.bands, out=out, batch_size=batch_size,
            device=device(), progress=progress, progress_bar=progress_bar, mirror=mirror,
        )  # fmt: skip

    path = write_embeddings(
        survey.name, "encoder", encoder_version.version, shape, fill, mirror=mirror
    )
    return encoder_version, str(path)


def classifier_inputs(survey: str, encoder_version: str, mirrored: bool) -> np.ndarray:
    """What a classifier head reads: the encoder's embeddings (memory-mapped), or for a
    mirror-equivariant head each row followed by its mirror image's embedding (computed once,
    kept beside the embeddings)."""
    from backend.products import has_embeddings

    embeddings = open_embeddings(survey, "encoder", encoder_version)
    if not mirrored:
        return embeddings
    if not has_embeddings(survey, "encoder", encoder_version, mirror=True):
        embed_survey(survey, encoder_version, mirror=True, progress_bar=False)
    mirror = open_embeddings(survey, "encoder", encoder_version, mirror=True)
    return np.concatenate([np.asarray(embeddings), np.asarray(mirror)], axis=1)


def predict_classifier(survey: Survey, version: ModelVersion, **kw: Any) -> pd.DataFrame:
    """Calibrated MC-dropout probabilities, predicted class, entropy and BALD per object."""
    from models import predict_classes

    model = load_model(version)
    source = version.config.get("embedding_source", {})
    mirrored = version.config.get("mirror_permutation") is not None
    embeddings = classifier_inputs(survey.name, source.get("version", ""), mirrored)
    out = predict_classes(model, embeddings, mc_samples=MC_SAMPLES, device="cpu", **kw)
    classes = list(version.config["classes"])
    probs = out["probs"]
    table = pd.DataFrame({f"p_{c}": probs[:, i] for i, c in enumerate(classes)})
    table.insert(0, "pred_class", np.asarray(classes, dtype=object)[probs.argmax(axis=1)])
    table["pred_confidence"] = probs.max(axis=1)
    table["entropy"] = out["entropy"]
    table["bald"] = out["bald"]
    return table


def predict_emulator(survey: Survey, version: ModelVersion, **kw: Any) -> pd.DataFrame:
    """Posterior mean and sigma of every emulated property."""
    from models import predict_targets

    model = load_model(version)
    check_bands(model.bands, survey)
    out = predict_targets(model, survey.images, bands=survey.bands, device=device(), **kw)
    table = {}
    for j, name in enumerate(model.targets):
        table[f"{name}_mean"] = out["mean"][:, j]
        table[f"{name}_sigma"] = out["std"][:, j]
    return pd.DataFrame(table)


def predict_autoencoder(survey: Survey, version: ModelVersion, **kw: Any) -> pd.DataFrame:
    """Reconstruction error per object (an anomaly score)."""
    from models import reconstruction_errors

    model = load_model(version)
    check_bands(model.bands, survey)
    errors = reconstruction_errors(model, survey.images, bands=survey.bands, device=device(), **kw)
    return pd.DataFrame({"recon_error": errors})


PREDICTORS = {
    "classifier": predict_classifier,
    "emulator": predict_emulator,
    "autoencoder": predict_autoencoder,
}


def predict_survey(
    survey_name: str,
    kinds: tuple[str, ...] = ("classifier", "emulator", "autoencoder"),
    *,
    progress_bar: bool = True,
) -> dict[str, str]:
    """Predictions of the survey's active (else latest) model of each kind, one parquet per
    version; kinds with no model are skipped. Returns {kind: path}."""
    survey = Survey.open(survey_name)
    registry = ModelRegistry()
    written = {}
    for kind in kinds:
        version = registry.active(survey.name, kind) or registry.latest(kind, survey.name)
        if version is None:
            continue
        table = PREDICTORS[kind](survey, version, progress_bar=progress_bar)
        table.insert(0, "object_id", survey.catalog["object_id"].to_numpy())
        written[kind] = str(write_predictions(survey.name, kind, version.version, table))
    return written


def predict_version(survey: str, kind: str, version: str) -> str:
    """Predictions of one (not necessarily active) version, written before it is activated."""
    s = Survey.open(survey)
    table = PREDICTORS[kind](s, ModelRegistry().get(kind, version), progress_bar=False)
    table.insert(0, "object_id", s.catalog["object_id"].to_numpy())
    return str(write_predictions(s.name, kind, version, table))
