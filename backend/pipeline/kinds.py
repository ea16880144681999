"""Every product kind, declared once: what it hangs on, its files, what it reads, how it is made.

A :class:`Target` is one product of one survey: a kind and the model version (or evaluation
task) it belongs to, e.g. the map of encoder v0003 or the predictions of classifier v0007.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from backend.pipeline import storage

PREDICTION_KINDS = ("classifier", "emulator", "autoencoder")
TILES_FILE, TILES_META_FILE = "tiles.zarr.zip", "tiles.json"  # backend.latent.tiles_product
OOD_FILE, OOD_META_FILE = "ood.parquet", "ood.json"  # backend.latent.ood_product
PIXEL_SCORES_FILE = "pixel_scores.parquet"  # backend.latent.image_scores


@dataclass(frozen=True)
class ProductKind:
    """One kind of product."""

    name: str
    description: str
    subject: str  # "encoder", "model" (classifier, emulator, autoencoder), "task" or "survey"
    files: tuple[str, ...]  # written together; the product exists when all of them do
    reads: tuple[str, ...]  # what it is made from (documentation and the listing)
    command: str  # how a user makes it alone
    optional_files: tuple[str, ...] = ()  # part of the product (hashed, moved) when written


PRODUCTS: dict[str, ProductKind] = {
    kind.name: kind
    for kind in (
        ProductKind(
            "embeddings", "(N, D) float32 vectors of every object", "encoder",
            (storage.EMBEDDINGS_FILE,), ("survey images", "encoder version"), "embed",
        ),
        ProductKind(
            "mirror_embeddings", "embeddings of the cutouts' mirror images", "encoder",
            (storage.MIRROR_EMBEDDINGS_FILE,), ("survey images", "encoder version"), "embed",
        ),
        ProductKind(
            "predictions", "per-object outputs of a classifier, emulator or autoencoder",
            "model", (storage.PREDICTIONS_FILE,),
            ("model version", "survey images (emulator, autoencoder)",
             "encoder embeddings (classifier)"), "predict",
        ),
        ProductKind(
            "map", "2-D map of the latent space (UMAP landmarks + placement)", "encoder",
            (storage.MAP_LANDMARKS_FILE, storage.MAP_FILE, storage.MAP_META_FILE),
            ("embeddings", "map parameters"), "map",
        ),
        ProductKind(
            "index", "similarity index (FAISS)", "encoder",
            (storage.INDEX_FILE, storage.INDEX_META_FILE), ("embeddings", "index kind"), "index",
            (storage.INDEX_DATA_FILE,),
        ),
        ProductKind(
            "pixel_scores", "pixel anomaly scores of every cutout (sharpness, asymmetry)",
            "survey", (PIXEL_SCORES_FILE,), ("survey images", "pixel scorers' parameters and code"),
            "score",
        ),
        ProductKind(
            "scores", "anomaly scores and ranking", "encoder", (storage.ANOMALY_FILE,),
            ("embeddings", "index (when present; not read above 200,000 objects)",
             "autoencoder predictions (when present)",
             "pixel scores (when its scorers are used)"),
            "score",
        ),
        ProductKind(
            "tiles", "map tiles: aggregate pyramid + points in Morton order (zarr)", "encoder",
            (TILES_FILE, TILES_META_FILE),
            ("map", "classifier predictions", "scores", "catalog"), "products --products tiles --ensure",
        ),
        ProductKind(
            "ood", "out-of-distribution score per object + survey summary", "encoder",
            (OOD_FILE, OOD_META_FILE), ("embeddings", "the encoder's OOD reference"), "ood",
        ),
        ProductKind(
            "evaluation", "evaluation report of a labelling task", "task",
            ("report.json", "report.md"),
            ("every encoder's embeddings", "classifier predictions", "validation split"),
            "evaluate",
        ),
    )
}  # fmt: skip

#: What ``ensure`` makes when not told otherwise; :func:`default_products` adds what depends on
#: the survey (``prepare``, ``products --ensure`` and the jobs ask for that).
DEFAULT_PRODUCTS = ("embeddings", "predictions", "map", "index", "scores")
#: made before a new encoder is shown (with a classifier head retrained on its embeddings)
ENCODER_PRODUCTS = ("embeddings", "map", "index", "scores", "predictions:classifier")
#: products remade after others they read: tiles after the map, scores or predictions; the OOD
#: scores after the embeddings (a product asked for alone stays fresh in the app)
DERIVED = {"tiles": ("map", "scores", "predictions"), "ood": ("embeddings",)}


def is_tiled(survey: str) -> bool:
    """The survey has at least ``LATENTSKY_TILED_MAP_ABOVE`` objects (its map is drawn from
    tiles); reads only its ``survey.json``."""
    from backend.config import tiled_map_threshold
    from backend.survey.meta import SurveyMeta
    from backend.survey.store import survey_path

    return SurveyMeta.read(survey_path(survey) / "survey.json").count >= tiled_map_threshold()


def derived_products(survey: str) -> tuple[str, ...]:
    """The products of :data:`DERIVED` that ``survey`` is prepared with: the OOD scores, and the
    map tiles when :func:`is_tiled`."""
    return ("ood", "tiles") if is_tiled(survey) else ("ood",)


def default_products(survey: str) -> tuple[str, ...]:
    """What ``survey`` is prepared with: :data:`DEFAULT_PRODUCTS`, the OOD scores (the app's
    domain-shift banner and colouring) and, for a survey of at least
    ``LATENTSKY_TILED_MAP_ABOVE`` objects, the map tiles (made after the map, predictions and
    scores they aggregate)."""
    return (*DEFAULT_PRODUCTS, *derived_products(survey))


def encoder_products(survey: str) -> tuple[str, ...]:
    """What a new encoder's job makes before the encoder is shown: :data:`ENCODER_PRODUCTS`, its
    OOD scores and, for a big survey, its map tiles."""
    return (*ENCODER_PRODUCTS, *derived_products(survey))


def with_derived(survey: str, names: list[str] | tuple[str, ...]) -> list[str]:
    """``names`` (product names, ``predictions:kind`` allowed) and the survey's default products
    that read one of them (:data:`DERIVED`), so remaking the map also remakes the tiles."""
    bases = {name.partition(":")[0] for name in names}
    extra = [d for d in derived_products(survey) if d not in bases and bases & set(DERIVED[d])]
    return [*names, *extra]


@dataclass(frozen=True)
class Target:
    """One product: ``product`` of ``survey`` for model ``kind`` ``version`` (or, for an
    evaluation, ``kind`` "task" and ``version`` the task name; for a product of the survey's
    images alone, :func:`survey_target`)."""

    product: str
    survey: str
    kind: str
    version: str

    @property
    def key(self) -> str:
        return f"{self.product}/{self.kind}-{self.version}"

    @property
    def spec(self) -> ProductKind:
        return PRODUCTS[self.product]

    @property
    def directory(self) -> Path:
        if self.product == "evaluation":
            return storage.evaluation_dir(self.survey, self.version)
        if self.kind == "survey":  # a product of the survey's images alone, not of a model
            return storage.survey_products_dir(self.survey)
        return storage.product_dir(self.survey, self.kind, self.version)

    @property
    def files(self) -> tuple[str, ...]:
        """The product's files: the required ones, then the optional ones present."""
        extra = tuple(n for n in self.spec.optional_files if (self.directory / n).is_file())
        return self.spec.files + extra

    @property
    def paths(self) -> list[Path]:
        return [self.directory / name for name in self.files]

    def exists(self) -> bool:
        """Every file of the product is there."""
        return all(p.is_file() for p in self.paths)

    def __str__(self) -> str:
        if self.product == "evaluation":
            return f"evaluation of task {self.version}"
        if self.kind == "survey":
            return f"{self.product} of survey {self.survey}"
        return f"{self.product} of {self.kind} {self.version}"


def survey_target(product: str, survey: str) -> Target:
    """The product ``product`` of ``survey``'s images alone (kind "survey", version the survey's
    name), e.g. its pixel scores, whatever the models."""
    return Target(product, survey, "survey", survey)


def check_product(name: str) -> tuple[str, str | None]:
    """``"predictions:classifier"`` → ("predictions", "classifier"); unknown names raise a
    :class:`~backend.pipeline.storage.ProductError` listing the known ones."""
    product, _, qualifier = name.partition(":")
    if product not in PRODUCTS:
        raise storage.ProductError(
            f"unknown product {name!r}; products are {', '.join(PRODUCTS)} "
            "(predictions:classifier|emulator|autoencoder for one model kind)"
        )
    if qualifier and (product != "predictions" or qualifier not in PREDICTION_KINDS):
        raise storage.ProductError(
            f"unknown product {name!r}: only predictions take a model kind "
            f"({', '.join(PREDICTION_KINDS)})"
        )
    return product, qualifier or None
