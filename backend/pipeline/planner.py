"""Plan: which products are missing or outdated against the versions in use, and why.

The versions in use are the survey's active ones (else its latest), unless ``versions`` names
some (a job building products for a candidate before switching to it). A product is
*current* when its files and its lineage record exist and the record's inputs are those it
would be made from now; *outdated* when an input differs (another encoder, a remade input
product, other parameters asked for) or when only an older version's product exists;
*missing* when nothing of it exists; *unrecorded* when its files exist without a record (made
before records existed, or by a command outside the pipeline): it is then recorded as found.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from backend.pipeline.kinds import (
    DEFAULT_PRODUCTS,
    PREDICTION_KINDS,
    Target,
    check_product,
    survey_target,
)
from backend.pipeline.lineage import content_hashes, file_sha256, read_lineage
from backend.pipeline.storage import products_root

PENDING = "(being remade)"


@dataclass(frozen=True)
class Versions:
    """The model versions a plan is made against."""

    encoder: str | None
    models: dict[str, str]  # classifier / emulator / autoencoder -> version
    explicit: frozenset[str]  # kinds named by the caller (not the survey's active ones)


@dataclass
class Item:
    """One product of a plan."""

    target: Target
    status: str  # current | missing | outdated | unrecorded
    reason: str
    deps: tuple[str, ...]  # keys of the planned products it reads
    record: dict[str, Any] | None
    action: str | None  # None, "build", "adopt" (record as found) or "retrain-head"

    @property
    def key(self) -> str:
        return self.target.key

    @property
    def todo(self) -> bool:
        return self.action is not None


@dataclass
class Plan:
    """Every product asked for and the products they read, in dependency order."""

    survey: str
    versions: Versions
    items: dict[str, Item]
    requested: list[str]  # keys of the products asked for
    notes: list[str] = field(default_factory=list)  # products that cannot be made, and why

    @property
    def todo(self) -> list[Item]:
        return [item for item in self.items.values() if item.todo]

    @property
    def builds(self) -> list[Item]:
        """Items whose product is (re)made (not only recorded)."""
        return [item for item in self.items.values() if item.action in ("build", "retrain-head")]


def resolve_versions(survey: str, versions: Mapping[str, str] | None = None) -> Versions:
    """``versions`` where given, else the survey's active version of each kind, else its
    latest; kinds with no version are left out."""
    from backend.registry import ModelRegistry

    registry = ModelRegistry()
    given = dict(versions or {})
    chosen: dict[str, str] = {}
    for kind in ("encoder", *PREDICTION_KINDS):
        if kind in given:
            chosen[kind] = registry.get(kind, given[kind]).version
            continue
        version = registry.active(survey, kind) or registry.latest(kind, survey=survey)
        if version is not None:
            chosen[kind] = version.version
    encoder = chosen.pop("encoder", None)
    return Versions(encoder, chosen, frozenset(given))


def scores_read_index(survey: str) -> bool:
    """Whether the anomaly scores of ``survey`` read its similarity index: not when its kNN
    graph is searched by cells (a big survey), so they neither wait for nor follow the index."""
    from backend.latent.scorers import by_cells
    from backend.survey.meta import SurveyMeta
    from backend.survey.store import survey_path

    return not by_cells(SurveyMeta.read(survey_path(survey) / "survey.json").count)


def survey_stamp(survey: str) -> str:
    """What identifies the survey's content: its creation time and object count."""
    from backend.survey import Survey

    s = Survey.open(survey)
    return f"{s.meta.created}|{len(s)}"


def images_stamp(survey: str) -> str:
    """What identifies the survey's images: their shape, type and when their array was written
    (a re-ingest or any rewrite changes it)."""
    from backend.survey import Survey

    s = Survey.open(survey)
    folder = s.path / "images.zarr"
    return f"{s.images.shape}|{s.images.dtype}|{folder.stat().st_mtime_ns}"


def uses_pixel_scores(params: Mapping[str, Any] | None) -> bool:
    """Whether a scores product made with ``params`` (None: the defaults) reads the pixel
    scores."""
    from backend.latent.anomaly import PIXEL_SCORERS

    scorers = (normal_params("scores", params) or {})["scorers"]
    return bool(set(PIXEL_SCORERS) & set(scorers))


def normal_params(product: str, given: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The parameters a product is made with, complete (defaults filled in); None for products
    without parameters."""
    given = dict(given or {})
    if product == "map":
        from backend.latent.projection import MapParams

        return asdict(MapParams(**given))
    if product == "index":
        return {"kind": str(given.get("kind", "auto"))}
    if product == "scores":
        from backend.latent.anomaly import DEFAULT_COMBINE, DEFAULT_SCORERS

        return {
            "scorers": list(given.get("scorers", DEFAULT_SCORERS)),
            "combine": str(given.get("combine", DEFAULT_COMBINE)),
        }
    if product == "evaluation":
        return given
    return None


def anomaly_labels_stamp(survey: str) -> str | None:
    """The hash of a survey's labelled anomalies (None when its schema declares none)."""
    from backend.labels.schema import load_schema
    from backend.latent.labelled import labelled_anomalies
    from backend.survey import Survey

    if not load_schema(survey).anomalies:  # the survey is not opened
        return None
    labelled = labelled_anomalies(Survey.open(survey), persist=False)
    return None if labelled is None else labelled.stamp()


def ood_reference_stamp(encoder: str) -> str | None:
    """The size and mtime of an encoder's stored OOD reference (None before it is made)."""
    from backend.latent.ood import REFERENCE_FILE
    from backend.registry import ModelRegistry

    path = ModelRegistry().get("encoder", encoder).path / REFERENCE_FILE
    return f"{path.stat().st_size}:{path.stat().st_mtime_ns}" if path.is_file() else None


def classifier_source(version: str) -> tuple[str, bool]:
    """(encoder version a classifier reads, whether it reads mirror embeddings too)."""
    from backend.registry import ModelRegistry

    config = ModelRegistry().get("classifier", version).config
    source = str(config.get("embedding_source", {}).get("version", ""))
    return source, config.get("mirror_permutation") is not None


def refused_head(survey: str, classifier: str, encoder: str) -> Any:
    """The newest classifier version retrained from ``classifier`` on ``encoder``'s embeddings
    that the activation gate refused (a ``ModelVersion``), or None."""
    from backend.registry import ModelRegistry

    for version in reversed(ModelRegistry().list("classifier", survey)):
        source = version.config.get("embedding_source", {}).get("version")
        if version.meta.get("parent") == classifier and str(source) == encoder:
            gate = version.gate
            if gate is not None and not gate.get("activate"):
                return version
    return None


def inputs_of(
    target: Target,
    stamp: str,
    hash_of: Callable[[Target], str | None],
    versions: Versions,
    params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What ``target`` is made from: the survey, model versions (``versions``: those in use)
    and the content hash of each product it reads (``hash_of``; None when it does not exist);
    ``params``: those it is (to be) made with, where they decide what it reads (the scores'
    scorers: the pixel scores only when a pixel scorer is used)."""
    inputs: dict[str, Any] = {"survey": stamp}
    survey = target.survey

    def encoder_products(encoder: str, mirror: bool = False) -> dict[str, Any]:
        out = {
            "encoder": encoder,
            "embeddings": hash_of(Target("embeddings", survey, "encoder", encoder)),
        }
        if mirror:
            out["mirror_embeddings"] = hash_of(
                Target("mirror_embeddings", survey, "encoder", encoder)
            )
        return out

    if target.product == "pixel_scores":
        from backend.latent.image_scores import scorer_identity

        inputs["images"] = images_stamp(survey)
        inputs["scorers"] = scorer_identity()
    elif target.product in ("embeddings", "mirror_embeddings"):
        inputs["encoder"] = target.version
    elif target.product == "predictions":
        inputs[target.kind] = target.version
        if target.kind == "autoencoder":  # predictions made before a column existed are remade
            from backend.modelling.infer import RESIDUAL_COLUMNS

            inputs["columns"] = ",".join(RESIDUAL_COLUMNS)
        if target.kind == "classifier":
            inputs.update(encoder_products(*classifier_source(target.version)))
    elif target.product in ("map", "index"):
        inputs.update(encoder_products(target.version))
    elif target.product == "ood":
        inputs.update(encoder_products(target.version))
        inputs["reference"] = ood_reference_stamp(target.version)
    elif target.product == "scores":
        inputs.update(encoder_products(target.version))
        if scores_read_index(survey):
            inputs["index"] = hash_of(Target("index", survey, "encoder", target.version))
        inputs["autoencoder_predictions"] = None
        autoencoder = versions.models.get("autoencoder")
        if autoencoder:
            ae = hash_of(Target("predictions", survey, "autoencoder", autoencoder))
            inputs["autoencoder_predictions"] = f"{autoencoder}:{ae}" if ae else None
        if uses_pixel_scores(params):
            inputs["pixel_scores"] = hash_of(survey_target("pixel_scores", survey))
        # the labelled anomalies that choose the scorers' combination (None: none declared,
        # as in records made before they could be)
        inputs["anomaly_labels"] = anomaly_labels_stamp(survey)
    elif target.product == "tiles":
        inputs["encoder"] = target.version
        inputs["map"] = hash_of(Target("map", survey, "encoder", target.version))
        inputs["scores"] = hash_of(Target("scores", survey, "encoder", target.version))
        classifier = versions.models.get("classifier")
        preds = classifier and hash_of(Target("predictions", survey, "classifier", classifier))
        inputs["classifier_predictions"] = f"{classifier}:{preds}" if preds else None
    elif target.product == "evaluation":
        from backend.validation import validation_path

        if versions.encoder:
            inputs.update(encoder_products(versions.encoder))
            # the report reads their stored recall (records made before lack it: remade once)
            inputs["scores"] = hash_of(Target("scores", survey, "encoder", versions.encoder))
        classifier = versions.models.get("classifier")
        inputs["classifier"] = classifier
        if classifier:
            preds = hash_of(Target("predictions", survey, "classifier", classifier))
            inputs["classifier_predictions"] = preds
        split = validation_path(survey, target.version)
        inputs["validation_split"] = file_sha256(split) if split.is_file() else None
    return inputs


def hash_on_disk(target: Target) -> str | None:
    """The content hash of ``target`` as it is now: from its record, else from its files."""
    if not target.exists():
        return None
    record = read_lineage(target)
    if record is not None:
        return str(record["content_hash"])
    return content_hashes(target)[1]


class _Planner:
    def __init__(
        self, survey: str, versions: Versions, params: Mapping[str, Mapping[str, Any]]
    ) -> None:
        self.survey = survey
        self.versions = versions
        self.params = params
        self.stamp = survey_stamp(survey)
        self.items: dict[str, Item] = {}
        self.notes: list[str] = []
        self.requested: set[str] = set()  # keys of every product asked for

    # -- targets of a product name --------------------------------------------------------------
    def targets(self, name: str) -> list[Target]:
        product, only = check_product(name)
        encoder = self.versions.encoder
        if product == "predictions":
            kinds = [only] if only else list(PREDICTION_KINDS)
            found = [k for k in kinds if k in self.versions.models]
            if only and not found:
                self.notes.append(f"no {only} for survey {self.survey}: no predictions to make")
            return [Target(product, self.survey, k, self.versions.models[k]) for k in found]
        if product == "evaluation":  # the task asked for, else every task with a report
            params = self.params.get("evaluation") or {}
            if params.get("label_column"):
                return [Target(product, self.survey, "task", str(params.get("task", "class")))]
            root = products_root(self.survey) / "evaluation"
            tasks = sorted(p.parent.name for p in root.glob("*/report.json"))
            return [Target(product, self.survey, "task", task) for task in tasks]
        if product == "pixel_scores":
            return [survey_target(product, self.survey)]
        if encoder is None:
            self.notes.append(
                f"no encoder for survey {self.survey}: no {product} (train one with "
                f"`python -m backend prepare --survey {self.survey}`)"
            )
            return []
        if product == "ood":  # skipped, with its reason, when no reference can be had
            from backend.latent.ood_product import reference_problem

            why = reference_problem(encoder, self.survey)
            if why:
                self.notes.append(f"no ood for survey {self.survey}: {why}")
                return []
        return [Target(product, self.survey, "encoder", encoder)]

    # -- what a target reads ---------------------------------------------------------------------
    def deps(self, target: Target) -> list[Target]:
        s, product = self.survey, target.product

        def enc(name: str, version: str) -> Target:
            return Target(name, s, "encoder", version)

        if product == "predictions" and target.kind == "classifier":
            source, mirrored = classifier_source(target.version)
            encoder = self._head_encoder(target.version, source)
            return [enc("embeddings", encoder)] + ([enc("mirror_embeddings", encoder)] if mirrored else [])  # fmt: skip
        if product in ("map", "index", "scores", "ood"):
            out = [enc("embeddings", target.version)]
            if product == "scores":
                index = enc("index", target.version)
                if scores_read_index(s) and (index.key in self.requested or index.exists()):
                    out.append(index)
                ae = self.versions.models.get("autoencoder")
                if ae:
                    preds = Target("predictions", s, "autoencoder", ae)
                    if preds.key in self.requested or preds.exists():
                        out.append(preds)
                if uses_pixel_scores(self._scores_params(target)):
                    out.append(survey_target("pixel_scores", s))
            return out
        if product == "tiles":
            out = [enc("map", target.version)]
            extra = [enc("scores", target.version)]
            clf = self.versions.models.get("classifier")
            extra += [Target("predictions", s, "classifier", clf)] if clf else []
            return out + [t for t in extra if t.key in self.requested or t.exists()]
        if product == "evaluation":
            out = [enc("embeddings", self.versions.encoder)] if self.versions.encoder else []
            if self.versions.encoder:  # read when made or being made (its stored recall)
                scores = enc("scores", self.versions.encoder)
                out += [scores] if scores.key in self.requested or scores.exists() else []
            clf = self.versions.models.get("classifier")
            return out + ([Target("predictions", s, "classifier", clf)] if clf else [])
        return []

    def _scores_params(self, target: Target) -> dict[str, Any] | None:
        """The parameters ``target`` (scores) is to be made with: those asked for, else those
        it was made with (kept), else None (the defaults)."""
        wanted = self.params.get(target.product)
        if wanted is not None:
            return dict(wanted)
        return (read_lineage(target) or {}).get("params")

    def _head_encoder(self, classifier: str, source: str) -> str:
        """The encoder whose embeddings the classifier's predictions should read: its own,
        unless the encoder in use is another (and the classifier was not named, and the
        activation gate has not refused a head retrained from it on that encoder)."""
        encoder = self.versions.encoder
        if encoder and source and source != encoder and "classifier" not in self.versions.explicit:
            refused = refused_head(self.survey, classifier, encoder)
            if refused is None:
                return encoder
            note = (
                f"classifier {classifier} reads encoder {source}'s embeddings: the head "
                f"retrained on encoder {encoder} ({refused.version}) was refused by the "
                f"activation gate ({refused.gate.get('reason')})"  # type: ignore[union-attr]
            )
            if note not in self.notes:
                self.notes.append(note)
        return source

    # -- status ----------------------------------------------------------------------------------
    def add(self, target: Target) -> Item:
        if target.key in self.items:
            return self.items[target.key]
        deps = [self.add(d) for d in self.deps(target)]
        item = self.judge(target, deps)
        self.items[target.key] = item
        return item

    def judge(self, target: Target, deps: list[Item]) -> Item:
        keys = tuple(d.key for d in deps)
        remade = {d.key: d for d in deps if d.action in ("build", "retrain-head")}
        if target.product == "predictions" and target.kind == "classifier":
            source, _ = classifier_source(target.version)
            encoder = self._head_encoder(target.version, source)
            if encoder != source:
                return Item(
                    target, "outdated",
                    f"classifier {target.version} reads encoder {source}'s embeddings; the "
                    f"encoder is {encoder}: a head is retrained on its embeddings",
                    keys, read_lineage(target), "retrain-head",
                )  # fmt: skip
        record = read_lineage(target)
        if not target.exists():
            return Item(target, *self._missing(target), keys, None, "build")
        if record is None:
            if remade:
                return Item(
                    target, "outdated",
                    f"no lineage record, and {_names(remade.values())} is being remade",
                    keys, None, "build",
                )  # fmt: skip
            lacking = _lacking_columns(target)
            if lacking:  # made before these columns existed: remade rather than adopted
                return Item(
                    target, "outdated", f"made without a lineage record and without {lacking}",
                    keys, None, "build",
                )  # fmt: skip
            return Item(target, "unrecorded", "made without a lineage record", keys, None, "adopt")
        made_with = self._scores_params(target) if target.product == "scores" else None
        expected = inputs_of(
            target, self.stamp, lambda t: self._hash(t, remade), self.versions, made_with
        )
        reasons = _differences(record.get("inputs") or {}, expected)
        wanted = self.params.get(target.product)
        if wanted is not None and record.get("params") != normal_params(target.product, wanted):
            reasons.append("made with other parameters")
        if reasons:
            return Item(target, "outdated", "; ".join(reasons), keys, record, "build")
        return Item(target, "current", "up to date", keys, record, None)

    def _hash(self, target: Target, remade: dict[str, Item]) -> str | None:
        if target.key in remade:
            return PENDING
        item = self.items.get(target.key)
        if item is not None and item.record is not None:
            return str(item.record["content_hash"])
        return hash_on_disk(target)

    def _missing(self, target: Target) -> tuple[str, str]:
        """("missing" | "outdated", why) for a product whose files are not there."""
        if target.kind == "encoder":
            pattern = f"encoder-*/{target.product}.lineage.json"
            older = sorted(
                p.parent.name.split("-", 1)[1] for p in target.directory.parent.glob(pattern)
            )
            older = [v for v in older if v != target.version]
            if older:
                return "outdated", (
                    f"made for encoder {older[-1]}; the encoder is {target.version}"
                )  # fmt: skip
        return "missing", "not made yet"


def _lacking_columns(target: Target) -> str:
    """The autoencoder residual columns a predictions file lacks ("" when none or not one)."""
    if target.product != "predictions" or target.kind != "autoencoder":
        return ""
    import pyarrow.parquet as pq

    from backend.modelling.infer import RESIDUAL_COLUMNS
    from backend.pipeline.storage import PREDICTIONS_FILE

    names = set(pq.read_schema(target.directory / PREDICTIONS_FILE).names)
    return ", ".join(c for c in RESIDUAL_COLUMNS if c not in names)


def _differences(recorded: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    out = []
    for key, value in expected.items():
        if value == PENDING:
            out.append(f"its {key.replace('_', ' ')} is being remade")
        elif recorded.get(key) != value:
            if key in ("encoder", *PREDICTION_KINDS):
                out.append(f"made from {key} {recorded.get(key)}; the {key} is {value}")
            elif key == "survey":
                out.append("the survey changed since")
            else:
                out.append(f"its {key.replace('_', ' ')} changed since")
    return out


def _names(items: Iterable[Item]) -> str:
    return ", ".join(str(i.target) for i in items)


def plan(
    survey: str,
    products: Iterable[str] = DEFAULT_PRODUCTS,
    *,
    versions: Mapping[str, str] | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> Plan:
    """What :func:`backend.pipeline.runner.ensure` would do for ``products`` of ``survey``, without
    doing it. ``versions`` overrides the active version of some kinds; ``params`` gives the
    parameters of some products ({"map": {...}, "index": {"kind": ...}, "scores":
    {"scorers": [...]}, "evaluation": {"label_column": ...}}): a product made with others is
    outdated (without ``params`` the parameters it was made with are kept)."""
    from backend.survey.meta import validate_survey_name

    validate_survey_name(survey)
    planner = _Planner(survey, resolve_versions(survey, versions), dict(params or {}))
    targets = [target for name in products for target in planner.targets(name)]
    planner.requested = {t.key for t in targets}
    requested = list(dict.fromkeys(planner.add(target).key for target in targets))
    return Plan(survey, planner.versions, planner.items, requested, planner.notes)
