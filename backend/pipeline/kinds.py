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


@dataclass(frozen=True)
class ProductKind:
    """One kind of product."""

    name: str
    description: str
    subject: str  # "encoder", "model" (a classifier, emulator or autoencoder) or "task"
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
            "scores", "anomaly scores and ranking", "encoder", (storage.ANOMALY_FILE,),
            ("embeddings", "index (when present)", "autoencoder predictions (when present)"),
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

#: What ``ensure`` makes when not told otherwise (and ``prepare`` asks for).
DEFAULT_PRODUCTS = ("embeddings", "predictions", "map", "index", "scores")


@dataclass(frozen=True)
class Target:
    """One product: ``product`` of ``survey`` for model ``kind`` ``version`` (or, for an
    evaluation, ``kind`` "task" and ``version`` the task name)."""

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
        return f"{self.product} of {self.kind} {self.version}"


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
