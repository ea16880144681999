"""Evaluate every representation of a survey (encoders and baselines) and its classifiers on the
shared validation split (:func:`backend.validation.validation_split`), into one report dict.

The report is plain JSON-ready data; :mod:`backend.evaluation.report` renders and writes it.
"""

from __future__ import annotations

import logging
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from backend.evaluation import metrics as m
from backend.evaluation.labels import EvalLabels, EvaluationError, column_labels, rare_classes
from backend.pipeline.kinds import Target
from backend.pipeline.storage import EMBEDDINGS_FILE, products_root
from backend.products import ProductError
from backend.registry import ModelRegistry, ModelVersion, RegistryError
from backend.survey import Survey

log = logging.getLogger(__name__)

PROBE_FRACTIONS = (0.1, 1.0)
BOOTSTRAP_RESAMPLES = 1000
# An embedding-only anomaly ranking, fitted on every representation alike so that encoders and
# baselines compare on equal terms; it is not `score`'s ranking (whose default adds the pixel
# scorers, which no representation changes): that one is reported as the stored product.
EMBEDDING_ANOMALY_SCORERS = ("iforest", "knn")


@dataclass
class Representation:
    """Features of every survey object, by one encoder version or one baseline."""

    name: str  # column name in the report: "encoder v0001", "pixel-pca", "random-init"
    kind: str  # "encoder" or "baseline"
    features: np.ndarray
    version: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EvalSetup:
    """What the representations are measured on."""

    survey: Survey
    task: str
    labels: EvalLabels
    rare: list[str]
    val_rows: np.ndarray
    train_rows: np.ndarray
    split_path: str
    seed: int = 0

    @property
    def classes(self) -> list[str]:
        return self.labels.classes

    @property
    def y(self) -> np.ndarray:
        return self.labels.labels

    @property
    def rare_idx(self) -> list[int]:
        return [self.classes.index(c) for c in self.rare]


# -- inputs ---------------------------------------------------------------------------------------
def setup(
    survey_name: str,
    label_column: str,
    *,
    task: str = "class",
    merge: dict[str, str] | None = None,
    rare: Sequence[str] = (),
    seed: int = 0,
) -> EvalSetup:
    """Open the survey, read and merge the labels, and get the stored validation split."""
    from backend.validation import validation_split

    survey = Survey.open(survey_name)
    labels = column_labels(survey.catalog, label_column, merge)
    rare_names = rare_classes(rare, labels)
    split = validation_split(
        survey.name, task, survey.catalog["object_id"].to_numpy(), labels.labels
    )
    if len(split.val_rows) == 0 or len(split.train_rows) == 0:
        raise EvaluationError(
            f"the validation split of task {task!r} has {len(split.val_rows)} val and "
            f"{len(split.train_rows)} train objects; label more objects"
        )
    present = np.unique(labels.labels[split.train_rows])
    if len(present) < 2:
        raise EvaluationError("the train part of the split has fewer than two classes")
    return EvalSetup(
        survey, task, labels, rare_names, split.val_rows, split.train_rows, str(split.path), seed
    )


def encoder_versions(
    survey: Survey, wanted: str | Sequence[str] | None
) -> list[ModelVersion | str]:
    """Encoder versions to evaluate.

    ``None``: those trained on the survey plus any with embeddings of it; ``"all"``: also every
    other registered encoder (those that cannot embed the survey are skipped later, with a
    note); a list: exactly those. Versions whose folder is gone but whose embeddings remain are
    given as a bare version string.
    """
    registry = ModelRegistry()
    if wanted not in (None, "all"):
        return [registry.get("encoder", v) for v in wanted]  # type: ignore[union-attr]
    found: dict[str, ModelVersion | str] = {}
    for version in registry.list("encoder", survey.name):
        found[version.version] = version
    root = products_root(survey.name)
    if root.is_dir():
        for path in sorted(root.glob(f"encoder-v*/{EMBEDDINGS_FILE}")):
            name = path.parent.name.removeprefix("encoder-")
            if name not in found:
                try:
                    found[name] = registry.get("encoder", name)
                except RegistryError:
                    found[name] = name
    if wanted == "all":
        for version in registry.list("encoder"):
            found.setdefault(version.version, version)
    return sorted(found.values(), key=lambda v: int(_name(v)[1:]))


def _name(version: ModelVersion | str) -> str:
    return version if isinstance(version, str) else version.version


def encoder_features(
    survey: Survey,
    version: ModelVersion | str,
    notes: list[str],
    progress: bool = True,
    strict: bool = True,
) -> np.ndarray | None:
    """The version's embeddings of the survey, embedding it first when they are missing.

    ``strict=False``: a version that cannot embed the survey (other bands, no network to run)
    is skipped with a note instead of failing the evaluation.
    """
    from backend.products import open_embeddings

    name = _name(version)
    try:
        emb = open_embeddings(survey.name, "encoder", name)
        if emb.ndim == 2 and len(emb) == len(survey):
            return emb
        notes.append(f"encoder {name}: stored embeddings have shape {emb.shape}; re-embedded")
    except ProductError:
        pass
    if isinstance(version, str):
        notes.append(f"encoder {name}: no registry entry and no usable embeddings; skipped")
        return None
    from backend.modelling.infer import embed_survey

    log.info("embedding survey %s with encoder %s", survey.name, name)
    try:
        _, path = embed_survey(survey.name, name, progress_bar=progress)
    except (ValueError, RuntimeError, OSError) as exc:
        if strict:
            raise
        notes.append(f"encoder {name} skipped: it could not embed the survey ({exc})")
        return None
    notes.append(f"encoder {name}: survey embedded first (no embeddings product)")
    return np.load(path, mmap_mode="r")


# -- one representation ---------------------------------------------------------------------------
def evaluate_representation(
    rep: Representation, s: EvalSetup, progress: bool = True
) -> dict[str, Any]:
    """kNN, linear probes, precision@10, rare retrieval and anomaly recall of one representation."""
    started = time.perf_counter()
    x = np.asarray(rep.features, dtype=np.float32)
    y, n_classes = s.y, len(s.classes)
    out: dict[str, Any] = {
        "name": rep.name, "kind": rep.kind, "version": rep.version,
        "dim": int(x.shape[1]), "info": rep.info,
    }  # fmt: skip
    out["knn"] = m.knn_classification(x, y, s.train_rows, s.val_rows, m.KNN_K)
    out["probe"] = {}
    for fraction in PROBE_FRACTIONS:
        rows = (
            s.train_rows
            if fraction >= 1.0
            else m.stratified_subsample(s.train_rows, y, fraction, seed=s.seed)
        )
        out["probe"][f"{round(100 * fraction)}%"] = m.linear_probe(x, y, rows, s.val_rows)

    # Similarity: every val object against the whole survey (itself excluded).
    _, ids = m.cosine_neighbours(x, x[s.val_rows], m.PRECISION_K, exclude=s.val_rows)
    precision = m.precision_at_k(m.neighbour_labels(ids, y), y[s.val_rows])
    per_class = m.per_class_mean(precision, y[s.val_rows], n_classes)
    present = [v for v in per_class if v is not None]
    out["precision_at_10"] = {
        "per_class": dict(zip(s.classes, per_class, strict=True)),
        "macro": float(np.mean(present)) if present else None,
        "micro": _mean(precision),
    }

    # Rare-class retrieval: each rare val object's top-100 neighbours.
    if s.rare:
        counts = np.bincount(y[y >= 0], minlength=n_classes)
        per_rare: dict[str, Any] = {}
        all_ap = []
        for cls in s.rare_idx:
            queries = s.val_rows[y[s.val_rows] == cls]
            if not len(queries):
                per_rare[s.classes[cls]] = {"map": None, "n_queries": 0}
                continue
            _, rids = m.cosine_neighbours(x, x[queries], m.RETRIEVAL_K, exclude=queries)
            ap = m.average_precision(
                m.neighbour_labels(rids, y), y[queries],
                np.full(len(queries), counts[cls] - 1), m.RETRIEVAL_K,
            )  # fmt: skip
            all_ap.append(ap)
            per_rare[s.classes[cls]] = {"map": _mean(ap), "n_queries": len(queries)}
        out["rare_retrieval"] = {
            "per_class": per_rare,
            "map": _mean(np.concatenate(all_ap)) if all_ap else None,
            "k": m.RETRIEVAL_K,
        }
        out["anomaly"] = anomaly_recall(x, s, progress)
        if rep.kind == "encoder" and rep.version:
            out["anomaly"]["stored"] = stored_anomaly_recall(s, rep.version)
    out["seconds"] = round(time.perf_counter() - started, 2)
    return out


def anomaly_recall(x: np.ndarray, s: EvalSetup, progress: bool = False) -> dict[str, Any]:
    """Recall@100 of all rare objects in the embedding-only ranking
    (:data:`EMBEDDING_ANOMALY_SCORERS`) fitted on ``x``: a comparison across representations,
    not the app's ranking (:func:`stored_anomaly_recall`)."""
    from backend.latent.anomaly import AnomalyRanker

    rare = np.isin(s.y, s.rare_idx)
    ranker = AnomalyRanker.fit(x, scorers=EMBEDDING_ANOMALY_SCORERS, seed=s.seed, progress=progress)
    scores = ranker.scores.sort_values("index")["anomaly"].to_numpy()
    return {
        "recall_at_100": m.recall_at_k(scores, rare, m.ANOMALY_K),
        "scorers": ranker.scorers,
        "n_rare": int(rare.sum()),
        "k": m.ANOMALY_K,
        **val_recall(scores, rare, s.val_rows),
    }


def val_recall(scores: np.ndarray, rare: np.ndarray, val_rows: np.ndarray) -> dict[str, Any]:
    """Recall of the rare val objects in the top ``k`` of the val rows, ``k`` the share of
    :data:`~backend.evaluation.metrics.ANOMALY_K` the val rows make of the survey: the
    figure no label of the training part (e.g. an anomaly combination chosen on it) can
    flatter."""
    k = max(1, round(m.ANOMALY_K * len(val_rows) / len(scores)))
    return {
        "val_recall": m.recall_at_k(scores[val_rows], rare[val_rows], k),
        "val_k": k,
        "val_n_rare": int(rare[val_rows].sum()),
    }


def stored_anomaly_recall(s: EvalSetup, version: str) -> dict[str, Any] | None:
    """Recall@100 of the stored ``anomaly.parquet`` of (survey, encoder version), if any: the
    ranking ``python -m backend score`` made and the app shows, with its own scorers."""
    from backend.latent.anomaly import SCORERS, AnomalyRanker
    from backend.latent.source import ANOMALY_FILE, latent_dir

    path = latent_dir(s.survey.name, version) / ANOMALY_FILE
    if not path.is_file():
        return None
    table = AnomalyRanker.load(path).scores
    if len(table) != len(s.survey):
        return {"note": f"{path.name} has {len(table)} rows for {len(s.survey)} objects"}
    table = table.sort_values("index") if "index" in table.columns else table
    rare = np.isin(s.y, s.rare_idx)
    scores = table["anomaly"].to_numpy()
    chosen = table.attrs.get("combination") or {}
    return {
        "recall_at_100": m.recall_at_k(scores, rare, m.ANOMALY_K),
        "scorers": [c for c in SCORERS if c in table.columns],
        "combination": chosen.get("formula") or table.attrs.get("combined_with"),
        "chosen_by": chosen.get("n_positive") if chosen.get("average_precision") else None,
        **val_recall(scores, rare, s.val_rows),
    }


def _mean(values: np.ndarray) -> float | None:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else None


# -- classifiers ----------------------------------------------------------------------------------
def classifier_versions(survey: Survey) -> list[ModelVersion]:
    """Classifier versions registered for the survey that have a predictions product."""
    return [
        v
        for v in ModelRegistry().list("classifier", survey.name)
        if Target("predictions", survey.name, "classifier", v.version).exists()
    ]


def evaluate_classifier(
    version: ModelVersion, s: EvalSetup, progress: bool = False
) -> dict[str, Any]:
    """Accuracy, balanced accuracy and ECE on the val rows, with bootstrap 95% intervals."""
    from backend.products import read_predictions

    table = read_predictions(s.survey.name, "classifier", version.version)
    ids = s.survey.catalog["object_id"].astype(str).to_numpy()
    if "object_id" in table.columns and not np.array_equal(
        table["object_id"].astype(str).to_numpy(), ids
    ):
        table = table.set_index(table["object_id"].astype(str)).reindex(ids)
    elif len(table) != len(ids):
        return {"version": version.version, "note": f"{len(table)} rows for {len(ids)} objects"}
    columns = [c for c in table.columns if c.startswith("p_")]
    model_classes = [c[2:] for c in columns]
    val = s.val_rows
    probs = table[columns].to_numpy(np.float64)[val]
    usable = np.isfinite(probs).all(axis=1)
    probs, truth = probs[usable], s.y[val][usable]
    mapped, unmatched = m.map_probabilities(probs, model_classes, s.classes, s.labels.merge)
    pred = m.map_decisions(m.predicted_classes(table, val)[usable], s.classes, s.labels.merge)
    out: dict[str, Any] = {
        "version": version.version,
        "encoder": (version.config.get("embedding_source") or {}).get("version"),
        "created": version.meta.get("created"),
        "classes": model_classes,
        "unmatched_classes": unmatched,
        "n_val": len(truth),
        "accuracy": m.accuracy(truth, pred),
        "balanced_accuracy": m.balanced_accuracy(truth, pred),
        "ece": m.expected_calibration_error(mapped, truth),
    }
    if len(truth) < len(val):
        out["n_missing"] = int(len(val) - len(truth))
    n = len(truth)
    out["balanced_accuracy_ci"] = m.bootstrap_ci(
        lambda r: m.balanced_accuracy(truth[r], pred[r]), n, BOOTSTRAP_RESAMPLES, s.seed,
        progress=progress, desc=f"bootstrap {version.version}",
    )  # fmt: skip
    out["ece_ci"] = m.bootstrap_ci(
        lambda r: m.expected_calibration_error(mapped[r], truth[r]), n, BOOTSTRAP_RESAMPLES,
        s.seed, progress=progress, desc=f"bootstrap ECE {version.version}",
    )  # fmt: skip
    return out


# -- the whole report -----------------------------------------------------------------------------
def split_summary(s: EvalSetup) -> dict[str, Any]:
    y = s.y
    n_classes = len(s.classes)
    train = np.bincount(y[s.train_rows], minlength=n_classes)
    val = np.bincount(y[s.val_rows], minlength=n_classes)
    majority, majority_acc = m.majority_accuracy(y[s.train_rows], y[s.val_rows])
    return {
        "path": s.split_path,
        "n_objects": len(y),
        "n_labelled": int((y >= 0).sum()),
        "n_train": len(s.train_rows),
        "n_val": len(s.val_rows),
        "counts": {
            c: {"train": int(train[i]), "val": int(val[i]), "all": int((y == i).sum())}
            for i, c in enumerate(s.classes)
        },
        "majority_class": s.classes[majority],
        "majority_accuracy": majority_acc,
        "majority_balanced_accuracy": 1.0 / int((val > 0).sum()) if (val > 0).any() else None,
    }


def command_line(
    survey: str,
    label_column: str,
    task: str,
    merge_specs: Sequence[str],
    rare: Sequence[str],
    encoders: str | None,
) -> str:
    """The ``python -m backend evaluate`` line that remakes this report (shell-quoted)."""
    parts = ["python", "-m", "backend", "evaluate", "--survey", survey, "--label-column",
             label_column]  # fmt: skip
    if task != "class":
        parts += ["--task", task]
    for spec in merge_specs:
        parts += ["--merge", spec]
    if rare:
        parts += ["--rare", ",".join(rare)]
    if encoders:
        parts += ["--encoders", encoders]
    return shlex.join(parts)


def evaluate(
    survey_name: str,
    label_column: str,
    *,
    task: str = "class",
    merge_specs: Sequence[str] = (),
    rare: Sequence[str] = (),
    encoders: str | Sequence[str] | None = None,
    baselines: Sequence[str] = ("pixel-pca", "random-init"),
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """The evaluation report of a survey (see the module docstring)."""
    from backend.evaluation import baselines as base
    from backend.evaluation.labels import parse_merge, split_names

    started = time.perf_counter()
    merge = parse_merge(merge_specs)
    s = setup(survey_name, label_column, task=task, merge=merge, rare=rare, seed=seed)
    notes: list[str] = []
    wanted: str | list[str] | None = (
        encoders if encoders is None or encoders == "all" else split_names(encoders)
    )
    versions = encoder_versions(s.survey, wanted)
    if not versions:
        notes.append(
            f"no encoder for survey {s.survey.name} yet: baselines only (train one with "
            f"`python -m backend train encoder --survey {s.survey.name}`)"
        )
    reps: list[dict[str, Any]] = []
    steps = [("encoder", v) for v in versions] + [("baseline", b) for b in baselines]
    for kind, item in tqdm(steps, desc="evaluate", disable=not progress, unit="rep"):
        t0 = time.perf_counter()
        if kind == "encoder":
            strict = isinstance(wanted, list)  # versions named by the user must work
            features = encoder_features(s.survey, item, notes, progress, strict)
            if features is None:
                continue
            rep = Representation(f"encoder {_name(item)}", "encoder", features, _name(item))
        elif item == "pixel-pca":
            features, info = base.pixel_pca(s.survey, seed=seed, progress=progress)
            rep = Representation("pixel-pca", "baseline", features, info=info)
        elif item == "random-init":
            features, info = base.random_init(s.survey, seed=seed, progress=progress)
            rep = Representation("random-init", "baseline", features, info=info)
        else:
            raise EvaluationError(f"unknown baseline {item!r} (pixel-pca, random-init)")
        feature_seconds = time.perf_counter() - t0
        result = evaluate_representation(rep, s, progress)
        result["feature_seconds"] = round(feature_seconds, 2)
        reps.append(result)
    classifiers = []
    for version in tqdm(
        classifier_versions(s.survey), desc="classifiers", disable=not progress, unit="model"
    ):
        classifiers.append(evaluate_classifier(version, s, progress))
    if classifiers:
        notes.append(
            "classifiers trained before the shared validation split existed may have been "
            "trained on some of its val objects"
        )
    listed = encoders if isinstance(encoders, str) or encoders is None else ",".join(encoders)
    command = command_line(s.survey.name, label_column, task, merge_specs, rare, listed)
    return {
        "survey": s.survey.name,
        "task": task,
        "label_column": label_column,
        "merge": merge,
        "rare": s.rare,
        "classes": s.classes,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "seed": seed,
        "split": split_summary(s),
        "settings": {
            "knn_k": m.KNN_K,
            "precision_k": m.PRECISION_K,
            "retrieval_k": m.RETRIEVAL_K,
            "anomaly_k": m.ANOMALY_K,
            "probe_fractions": list(PROBE_FRACTIONS),
            "bootstrap_resamples": BOOTSTRAP_RESAMPLES,
            "anomaly_scorers": list(EMBEDDING_ANOMALY_SCORERS),  # of the embedding-only ranking
        },
        "anomaly_random_expectation": min(1.0, m.ANOMALY_K / len(s.y)),
        "representations": reps,
        "classifiers": classifiers,
        "notes": notes,
        "seconds": round(time.perf_counter() - started, 1),
    }
