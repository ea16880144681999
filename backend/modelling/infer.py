"""Batch inference over a whole survey into versioned products (embeddings, predictions).

The survey is cut into partitions of rows (:func:`backend.pipeline.execution.partitions`, a
multiple of the batch size, so every batch holds the same rows whatever runs it). Each
partition is one task (:class:`ImagePartition`, :class:`ClassifierPartition`): the worker opens
the survey and the model itself (models are kept per worker process) and returns its block;
the client puts the blocks in order into the product, which is written atomically, so no
partial product is ever visible. ``scheduler`` (``sync``, ``local[:N]``, ``tcp://HOST:PORT`` or
an open executor) says where the tasks run; the results are the same everywhere.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from backend.modelling.common import Progress, check_bands, device, load_model, resolve_version
from backend.pipeline.execution import (
    Executor,
    SchedulerSpec,
    even_partitions,
    executor,
    model_resources,
)
from backend.products import open_embeddings, write_embeddings, write_predictions
from backend.registry import ModelRegistry, ModelVersion
from backend.survey import Survey, SurveyError

MC_SAMPLES = 30
RESIDUAL_COLUMNS = ("recon_error", "recon_peak", "recon_excess")  # autoencoder predictions
#: Rows per task of image models (rounded up to a multiple of the batch size).
PARTITION_ROWS = 8192
#: Rows per task of classifiers reading embeddings (a multiple of their 8192-row batches).
CLASSIFIER_PARTITION_ROWS = 65536
CLASSIFIER_BATCH = 8192
_MODELS_KEPT = 2

Scheduler = SchedulerSpec | str | Executor | None
_models: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
_models_lock = threading.Lock()


def cached_model(version: ModelVersion) -> Any:
    """``load_model(version)``, kept for the next partitions of this process (the last two)."""
    try:  # a version folder made again under the same path is another model
        stamp = version.weights_path.stat().st_mtime_ns
    except OSError:
        stamp = 0
    key = (version.kind, version.version, f"{version.path}@{stamp}")
    with _models_lock:
        if key in _models:
            _models.move_to_end(key)
            return _models[key]
    model = load_model(version)
    with _models_lock:
        _models[key] = model
        while len(_models) > _MODELS_KEPT:
            _models.popitem(last=False)
    return model


def _on_dask_worker() -> bool:
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return False
    return True


def _worker_setup() -> None:
    """In a Dask worker process (a batch process), keep freed memory for reuse
    (:func:`models.device.tune_cpu_allocator`): the nanny starts workers with
    ``MALLOC_TRIM_THRESHOLD_`` set low, and with it every batch's activations come from fresh
    pages (embedding measured 1.7x slower). The command's own process is left as it is."""
    if _on_dask_worker():
        from models.device import tune_cpu_allocator

        tune_cpu_allocator()


def partition_rows(rows: int | None, batch_size: int) -> int:
    """Rows per partition: ``rows`` (default :data:`PARTITION_ROWS`) rounded up to whole
    batches."""
    rows = rows or PARTITION_ROWS
    return max(batch_size, -(-rows // batch_size) * batch_size)


def image_partitions(n: int, rows: int | None, batch_size: int) -> list[tuple[int, int]]:
    """The row ranges an image model runs over: as many as partitions of
    :func:`partition_rows` rows need, of equal sizes, so workers finish together."""
    return even_partitions(n, partition_rows(rows, batch_size))


@dataclass(frozen=True)
class ImagePartition:
    """Inference of an image model over rows ``[lo, hi)`` of a survey's cutouts (a task)."""

    survey: str
    model: ModelVersion
    op: Literal["embed", "embed_mirror", "emulate", "reconstruct"]
    batch_size: int = 512

    def __call__(self, rows: tuple[int, int]) -> np.ndarray | dict[str, np.ndarray]:
        from models import embed, predict_targets, reconstruction_scores

        _worker_setup()
        survey = Survey.open(self.survey)
        model = cached_model(self.model)
        kw: dict[str, Any] = {
            "bands": survey.bands,
            "start": rows[0],
            "stop": rows[1],
            "batch_size": self.batch_size,
            "device": device(),
        }
        if self.op == "emulate":
            return predict_targets(model, survey.images, **kw)
        if self.op == "reconstruct":
            return reconstruction_scores(model, survey.images, **kw)
        return embed(model, survey.images, mirror=self.op == "embed_mirror", **kw)


@dataclass(frozen=True)
class ClassifierPartition:
    """MC-dropout class probabilities of rows ``[lo, hi)`` from the stored embeddings (a task)."""

    survey: str
    model: ModelVersion
    encoder_version: str
    mirrored: bool

    def __call__(self, rows: tuple[int, int]) -> dict[str, np.ndarray]:
        from models import predict_classes

        _worker_setup()
        lo, hi = rows
        x = np.array(open_embeddings(self.survey, "encoder", self.encoder_version)[lo:hi])
        if self.mirrored:
            m = open_embeddings(self.survey, "encoder", self.encoder_version, mirror=True)
            x = np.concatenate([x, np.asarray(m[lo:hi])], axis=1)
        return predict_classes(
            cached_model(self.model),
            x,
            mc_samples=MC_SAMPLES,
            device="cpu",
            batch_size=CLASSIFIER_BATCH,
        )


def _reported(
    blocks: Iterable[Any], parts: list[tuple[int, int]], progress: Progress | None
) -> Iterable[tuple[tuple[int, int], Any]]:
    """``(rows, block)`` pairs, telling ``progress`` after each (False cancels)."""
    from models.inference import report_progress

    t0, total, done = time.perf_counter(), (parts[-1][1] if parts else 0), 0
    for rows, block in zip(parts, blocks, strict=True):
        yield rows, block
        done = rows[1]
        if progress is not None:
            report_progress(progress, done, total, t0)


def _gather(
    ex: Executor,
    task: Any,
    n: int,
    rows: int,
    *,
    desc: str | None,
    progress: Progress | None = None,
    resources: dict[str, float] | None = None,
) -> np.ndarray | dict[str, np.ndarray]:
    """Run ``task`` over equal partitions of at most ``rows`` rows and join the blocks in row
    order."""
    parts = even_partitions(n, rows)
    blocks = [b for _, b in _reported(ex.imap(task, parts, resources=resources, desc=desc),
                                      parts, progress)]  # fmt: skip
    if not blocks:
        raise SurveyError(f"survey {task.survey!r} has no objects")
    if isinstance(blocks[0], dict):
        return {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}
    return np.concatenate(blocks)


def embed_survey(
    survey_name: str,
    version: str | None = None,
    *,
    batch_size: int = 512,
    progress: Progress | None = None,
    progress_bar: bool = True,
    mirror: bool = False,
    scheduler: Scheduler = None,
    rows_per_partition: int | None = None,
) -> tuple[ModelVersion, str]:
    """(N, D) float32 embeddings of every object with an encoder; returns (version, path).
    ``mirror``: of the cutouts' mirror images instead (``embeddings_mirror.npy``), read by the
    classifiers of tasks whose mirror image swaps classes (:mod:`models.mirror`). Partitions of
    ``rows_per_partition`` rows run where ``scheduler`` says; ``progress`` hears after each."""
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
    encoder = cached_model(encoder_version)
    check_bands(encoder.bands, survey)
    shape = (len(survey), int(encoder.embedding_dim))
    parts = image_partitions(len(survey), rows_per_partition, batch_size)
    op = "embed_mirror" if mirror else "embed"
    task = ImagePartition(survey.name, encoder_version, op, batch_size)

    with executor(scheduler) as ex:

        def fill(out: np.ndarray) -> None:
            desc = f"embed {survey.name}" if progress_bar else None
            blocks = ex.imap(task, parts, resources=model_resources(), desc=desc)
            for (lo, hi), block in _reported(blocks, parts, progress):
                if block.shape != (hi - lo, shape[1]):
                    raise SurveyError(
                        f"survey {survey.name!r} rows {lo}-{hi}: a worker returned embeddings of "
                        f"shape {block.shape}, expected {(hi - lo, shape[1])} (do the workers "
                        "see the same LATENTSKY_HOME?)"
                    )
                out[lo:hi] = block

        path = write_embeddings(
            survey.name, "encoder", encoder_version.version, shape, fill, mirror=mirror
        )
    return encoder_version, str(path)


def classifier_inputs(survey: str, encoder_version: str, mirrored: bool) -> np.ndarray:
    """What a classifier head reads: the encoder's embeddings (memory-mapped), or for a
    mirror-equivariant head each row followed by its mirror image's embedding (computed once,
    kept beside the embeddings)."""
    embeddings = open_embeddings(survey, "encoder", encoder_version)
    if not mirrored:
        return embeddings
    _ensure_mirror_embeddings(survey, encoder_version)
    mirror = open_embeddings(survey, "encoder", encoder_version, mirror=True)
    return np.concatenate([np.asarray(embeddings), np.asarray(mirror)], axis=1)


def _ensure_mirror_embeddings(
    survey: str, encoder_version: str, scheduler: Scheduler = None
) -> None:
    from backend.products import has_embeddings

    if not has_embeddings(survey, "encoder", encoder_version, mirror=True):
        embed_survey(survey, encoder_version, mirror=True, progress_bar=False, scheduler=scheduler)


def predict_classifier(
    survey: Survey,
    version: ModelVersion,
    *,
    progress_bar: bool = False,
    scheduler: Scheduler = None,
    rows_per_partition: int | None = None,
) -> pd.DataFrame:
    """Calibrated MC-dropout probabilities, predicted class, entropy and BALD per object."""
    source = version.config.get("embedding_source", {})
    encoder = source.get("version", "")
    mirrored = version.config.get("mirror_permutation") is not None
    n = len(open_embeddings(survey.name, "encoder", encoder))
    rows = -(-(rows_per_partition or CLASSIFIER_PARTITION_ROWS) // CLASSIFIER_BATCH)
    with executor(scheduler) as ex:
        if mirrored:
            _ensure_mirror_embeddings(survey.name, encoder, ex)
        task = ClassifierPartition(survey.name, version, encoder, mirrored)
        desc = f"classify {survey.name}" if progress_bar else None
        out = _gather(ex, task, n, rows * CLASSIFIER_BATCH, desc=desc)
    classes = list(version.config["classes"])
    probs = out["probs"]
    table = pd.DataFrame({f"p_{c}": probs[:, i] for i, c in enumerate(classes)})
    weights = version.config.get("decision_weights")  # balanced decisions (models.calibration)
    pred = (probs if weights is None else probs * np.asarray(weights)[None, :]).argmax(axis=1)
    table.insert(0, "pred_class", np.asarray(classes, dtype=object)[pred])
    table["pred_confidence"] = probs[np.arange(len(pred)), pred]
    table["entropy"] = out["entropy"]
    table["bald"] = out["bald"]
    return table


def predict_emulator(
    survey: Survey,
    version: ModelVersion,
    *,
    progress_bar: bool = False,
    scheduler: Scheduler = None,
    rows_per_partition: int | None = None,
    batch_size: int = 512,
) -> pd.DataFrame:
    """Posterior mean and sigma of every emulated property."""
    model = cached_model(version)
    check_bands(model.bands, survey)
    task = ImagePartition(survey.name, version, "emulate", batch_size)
    with executor(scheduler) as ex:
        out = _gather(
            ex, task, len(survey), partition_rows(rows_per_partition, batch_size),
            desc=f"emulate {survey.name}" if progress_bar else None, resources=model_resources(),
        )  # fmt: skip
    table = {}
    for j, name in enumerate(model.targets):
        table[f"{name}_mean"] = out["mean"][:, j]
        table[f"{name}_sigma"] = out["std"][:, j]
    return pd.DataFrame(table)


def predict_autoencoder(
    survey: Survey,
    version: ModelVersion,
    *,
    progress_bar: bool = False,
    scheduler: Scheduler = None,
    rows_per_partition: int | None = None,
    batch_size: int = 512,
) -> pd.DataFrame:
    """Residual anomaly scores per object: ``recon_error`` (mean squared residual),
    ``recon_peak`` (its largest pixel) and ``recon_excess`` (the residual above the noise)."""
    model = cached_model(version)
    check_bands(model.bands, survey)
    task = ImagePartition(survey.name, version, "reconstruct", batch_size)
    with executor(scheduler) as ex:
        scores = _gather(
            ex, task, len(survey), partition_rows(rows_per_partition, batch_size),
            desc=f"reconstruct {survey.name}" if progress_bar else None,
            resources=model_resources(),
        )  # fmt: skip
    return pd.DataFrame({name: scores[name] for name in RESIDUAL_COLUMNS})


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
    scheduler: Scheduler = None,
    rows_per_partition: int | None = None,
) -> dict[str, str]:
    """Predictions of the survey's active (else latest) model of each kind, one parquet per
    version; kinds with no model are skipped. Returns {kind: path}."""
    survey = Survey.open(survey_name)
    registry = ModelRegistry()
    written = {}
    with executor(scheduler) as ex:
        for kind in kinds:
            version = registry.active(survey.name, kind) or registry.latest(kind, survey.name)
            if version is None:
                continue
            table = PREDICTORS[kind](
                survey, version, progress_bar=progress_bar, scheduler=ex,
                rows_per_partition=rows_per_partition,
            )  # fmt: skip
            table.insert(0, "object_id", survey.catalog["object_id"].to_numpy())
            written[kind] = str(write_predictions(survey.name, kind, version.version, table))
    return written


def predict_version(survey: str, kind: str, version: str, scheduler: Scheduler = None) -> str:
    """Predictions of one (not necessarily active) version, written before it is activated."""
    s = Survey.open(survey)
    table = PREDICTORS[kind](
        s, ModelRegistry().get(kind, version), progress_bar=False, scheduler=scheduler
    )
    table.insert(0, "object_id", s.catalog["object_id"].to_numpy())
    return str(write_predictions(s.name, kind, version, table))
