"""The per-object products of a survey that go into its HATS export, one column group each.

For each model kind the survey's active version (else its latest, as ``predict`` and the app
choose) contributes what has been computed for it: the encoder its embeddings (one
fixed-size list column), its 2-D map (``map_x``, ``map_y``) and its anomaly scores; classifiers,
emulators and autoencoders their predictions. Every column is named
``<kind>_<version>_<name>`` (``encoder_v0003_embedding``, ``classifier_v0002_p_spiral``), so
a catalog says which model made each number. Missing products are left out with a note;
products whose rows do not match the survey (made before it was rebuilt) too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from backend.latent.source import ANOMALY_FILE, MAP_FILE
from backend.products import has_embeddings, open_embeddings, product_dir
from backend.registry import MODEL_KINDS, ModelRegistry
from backend.survey import Survey

_SKIPPED_COLUMNS = {"object_id", "index"}  # keys, not products


@dataclass
class ProductColumns:
    """One product of one model version: ``columns`` maps column name -> values in survey
    order, (N,) or (N, D) for a vector column (D floats per object, read lazily)."""

    kind: str
    version: str
    product: str  # "embeddings", "map", "anomaly", "predictions"
    columns: dict[str, np.ndarray] = field(default_factory=dict)

    def describe(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "version": self.version,
            "product": self.product,
            "columns": list(self.columns),
        }


def column_name(kind: str, version: str, name: str) -> str:
    return f"{kind}_{version}_{name}"


def collect_products(survey: Survey) -> tuple[list[ProductColumns], list[str]]:
    """The survey's per-object products and notes on those left out."""
    registry = ModelRegistry()
    products: list[ProductColumns] = []
    notes: list[str] = []
    for kind in MODEL_KINDS:
        version = registry.active(survey.name, kind) or registry.latest(kind, survey.name)
        if version is None:
            continue
        v = version.version
        if kind == "encoder":
            products += _encoder_products(survey, v, notes)
        path = product_dir(survey.name, kind, v) / "predictions.parquet"
        if path.is_file():
            table = _aligned(survey, pd.read_parquet(path), f"{kind} {v} predictions", notes)
            if table is not None:
                products.append(_from_table(kind, v, "predictions", table))
        elif kind != "encoder":
            notes.append(f"no predictions of {kind} {v} (run `python -m backend predict`)")
    return products, notes


def _encoder_products(survey: Survey, version: str, notes: list[str]) -> list[ProductColumns]:
    found: list[ProductColumns] = []
    n = len(survey)
    if not has_embeddings(survey.name, "encoder", version):
        notes.append(f"no embeddings of encoder {version} (run `python -m backend embed`)")
        return found
    embeddings = open_embeddings(survey.name, "encoder", version)
    if embeddings.ndim != 2 or len(embeddings) != n:
        notes.append(f"embeddings of encoder {version} have shape {embeddings.shape}; left out")
        return found
    found.append(
        ProductColumns(
            "encoder",
            version,
            "embeddings",
            {column_name("encoder", version, "embedding"): embeddings},
        )
    )
    directory = product_dir(survey.name, "encoder", version)
    map_path = directory / MAP_FILE
    if map_path.is_file():
        coords = np.load(map_path, mmap_mode="r")
        if coords.shape == (n, 2):
            found.append(
                ProductColumns(
                    "encoder",
                    version,
                    "map",
                    {
                        column_name("encoder", version, "map_x"): coords[:, 0],
                        column_name("encoder", version, "map_y"): coords[:, 1],
                    },
                )
            )
        else:
            notes.append(f"map of encoder {version} has shape {coords.shape}; left out")
    else:
        notes.append(f"no map of encoder {version} (run `python -m backend map`)")
    scores_path = directory / ANOMALY_FILE
    if scores_path.is_file():
        label = f"anomaly scores of encoder {version}"
        table = _aligned(survey, pd.read_parquet(scores_path), label, notes)
        if table is not None:
            found.append(_from_table("encoder", version, "anomaly", table))
    else:
        notes.append(f"no anomaly scores of encoder {version} (run `python -m backend score`)")
    return found


def _aligned(
    survey: Survey, table: pd.DataFrame, label: str, notes: list[str]
) -> pd.DataFrame | None:
    """``table`` in survey order (by ``object_id`` when it has one), or None with a note."""
    ids = survey.catalog["object_id"].astype(str)
    if len(table) != len(survey):
        notes.append(f"{label} have {len(table):,} rows for {len(survey):,} objects; left out")
        return None
    if "object_id" in table.columns:
        keyed = table.assign(object_id=table["object_id"].astype(str)).set_index("object_id")
        if not keyed.index.is_unique or not keyed.index.isin(ids).all():
            notes.append(f"{label} do not match the survey's object ids; left out")
            return None
        table = keyed.loc[ids.to_numpy()].reset_index()
    return table


def _from_table(kind: str, version: str, product: str, table: pd.DataFrame) -> ProductColumns:
    columns = {
        column_name(kind, version, str(col)): table[col].to_numpy()
        for col in table.columns
        if col not in _SKIPPED_COLUMNS
    }
    return ProductColumns(kind, version, product, columns)
