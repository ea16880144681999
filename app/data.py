"""Per-process data of a survey for the views: map coordinates, one table of every column a
user can colour by (catalog + model predictions + anomaly scores), and a nearest-point index.

Loaded once per process (shared by all sessions) and reloaded when the active model versions
or the lineage of a product shown change (the cache key holds each product's content hash);
the survey's previous data is dropped then. Nothing here goes to the browser as raw points.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from app.routes import thumbnail_url
from app.surveys import get_survey
from backend.config import get_settings
from backend.latent.errors import LatentError, MissingProductError
from backend.products import ProductError, read_predictions
from backend.registry import ModelRegistry, RegistryError
from backend.survey import Survey, SurveyError

log = logging.getLogger(__name__)
T = TypeVar("T")

PREDICTION_KINDS = ("classifier", "emulator", "autoencoder")
DEMO_SOURCE = "galsim-demo"
ANOMALY = "anomaly_score"  # combined anomaly score column of SurveyData.table
ANOMALY_RANK = "anomaly_rank"
SCORE_PREFIX = "score_"  # per-scorer columns: score_recon, score_iforest, ...


@dataclass
class SurveyData:
    """Everything the views read about one survey, shared between sessions."""

    survey: Survey
    encoder: str | None  # active (else latest) encoder version
    versions: dict[str, str]  # kind -> version whose products are shown
    table: pd.DataFrame  # one row per object: catalog, predictions, anomaly scores
    x: np.ndarray | None  # map coordinates (float32, contiguous) or None without a map
    y: np.ndarray | None
    problems: list[str] = field(default_factory=list)  # what is missing and how to make it
    ood: dict[str, Any] | None = None  # the ood product's summary (app/ood.py), when made
    _tree: object = None
    _tree_lock: threading.Lock = field(default_factory=threading.Lock)
    _memo: dict[object, object] = field(default_factory=dict)
    _memo_lock: threading.Lock = field(default_factory=threading.Lock)

    def memo(self, key: object, compute: Callable[[], T]) -> T:
        """``compute()`` once per process for this data (derived values of big columns)."""
        with self._memo_lock:
            if key in self._memo:
                return self._memo[key]  # type: ignore[return-value]
        value = compute()
        with self._memo_lock:
            return self._memo.setdefault(key, value)  # type: ignore[return-value]

    @property
    def name(self) -> str:
        return self.survey.name

    @property
    def has_map(self) -> bool:
        return self.x is not None

    @property
    def has_real_sky(self) -> bool:
        """True when ra/dec are real sky positions (not the simulated demo's)."""
        return self.survey.meta.source != DEMO_SOURCE and {"ra", "dec"} <= set(self.table)

    def __len__(self) -> int:
        return len(self.table)

    @property
    def paged(self) -> bool:
        """True when the table is read row group by row group (a big survey: :func:`open_paged`)."""
        return not isinstance(self.table, pd.DataFrame)

    def id_index(self) -> pd.Index | PagedIds:
        """Rows of object ids (``get_indexer``), ids of rows (``ids[i]``) and ``len``: a
        :class:`pandas.Index` of the ids, or for a paged survey the process's hash look-ups
        (:class:`PagedIds`; the ids are never held)."""
        if self.paged:
            from backend.survey.ids import id_lookup

            return PagedIds(id_lookup(self.survey.path / "catalog.parquet"))
        return pd.Index(self.table["object_id"].astype(str))

    def label_categories(
        self, colours: dict[str, str] | None, missing: str
    ) -> tuple[pd.Categorical, dict[str, str]]:
        """(per-row majority human label or ``missing``, colour per category) for the *Human
        labels* colouring. Labels are few: a paged survey finds the labelled rows by id
        look-up and holds one small code per object, never its ids."""
        from app.colouring import categorical
        from app.labelling import consensus_column, label_store

        if not self.paged:
            raw = consensus_column(self.name, self.table["object_id"], missing)
            return categorical(raw, colours, missing=missing)
        votes = label_store().consensus(self.name)
        ids = votes["object_id"].astype(str).tolist()
        rows = self.id_index().get_indexer(ids) if ids else np.empty(0, np.int64)
        ok = rows >= 0
        labelled = votes["value"].to_numpy(dtype=object)[ok]
        small, key = categorical(np.append(labelled, missing), colours, missing=missing)
        kinds = list(small.categories)
        codes = np.full(len(self), kinds.index(missing), dtype=np.min_scalar_type(len(kinds)))
        codes[rows[ok]] = small.codes[:-1]
        return pd.Categorical.from_codes(codes, categories=kinds), key

    def number_values(self, column: str, whole: bool = True) -> tuple[Any, tuple[float, float]]:
        """(float values per object, 1st-99th percentile range) of a numeric column. A paged
        table's values are read per object as asked (``values[i]``) and its range comes from a
        sample of row groups, unless ``whole`` (a colouring drawn from every point)."""
        from app.colouring import robust_range

        col = self.table[column]
        if self.paged and not whole:
            sample = self.table.sample(column).astype(np.float64)  # type: ignore[union-attr]
            return col.to_numpy(), robust_range(sample)
        values = col.to_numpy(dtype=np.float32, na_value=np.nan)
        return values, robust_range(values)

    def percentile_range(self, column: str) -> tuple[float, float]:
        """1st-99th percentile range of a numeric column. A paged table's comes from the
        percentiles its file's writer stored (every row; else a sample of row groups), so
        showing one object reads no column."""
        from app.colouring import robust_range

        if not self.paged:
            return robust_range(self.table[column].to_numpy(float))
        stored = self.table.stored_percentiles(column)  # type: ignore[union-attr]
        if stored is None:
            return robust_range(self.table.sample(column).astype(np.float64))  # type: ignore[union-attr]
        lo, hi = stored
        return (lo, hi) if hi > lo else (lo - 0.5, lo + 0.5)

    def thumb(self, index: int, size: int | None = None, band: str | None = None) -> str:
        """URL of the PNG of object ``index`` (colour, or one band)."""
        stamp = hashlib.sha1(self.survey.meta.created.encode()).hexdigest()[:8]
        return thumbnail_url(self.name, int(index), size, band, stamp)

    def object_id(self, index: int) -> str:
        return str(self.table["object_id"].iat[int(index)])

    def object_ids(self, indices: np.ndarray | list[int]) -> list[str]:
        """Ids of the rows ``indices`` (in the order given), in one look-up (a paged table
        reads each of their row groups once)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if not idx.size:
            return []
        column = self.table["object_id"]
        got = column[idx] if self.paged else column.iloc[idx]  # only these rows converted
        return [str(v) for v in got]

    def nearest(self, x: float, y: float, radius: float) -> int | None:
        """Row index of the map point nearest (x, y) within ``radius`` (map units), else None."""
        if not self.has_map or not np.isfinite([x, y, radius]).all():
            return None
        tree = self._kdtree()
        dist, i = tree.query([x, y], k=1, distance_upper_bound=radius)
        return int(i) if np.isfinite(dist) else None

    def _kdtree(self) -> object:
        from scipy.spatial import cKDTree

        with self._tree_lock:
            if self._tree is None:
                self._tree = cKDTree(np.column_stack([self.x, self.y]), balanced_tree=False)
            return self._tree


class PagedIds:
    """What the label queue asks of an id index (``get_indexer``, ``ids[i]``, ``len``), from
    :class:`backend.survey.ids.IdLookup`."""

    def __init__(self, lookup: Any) -> None:
        self.lookup = lookup

    def get_indexer(self, ids: Any) -> np.ndarray:
        return self.lookup.rows_of(list(ids))

    def __getitem__(self, row: int) -> str:
        return str(self.lookup.ids_of([int(row)])[0])

    def __len__(self) -> int:
        return len(self.lookup)


_cache: dict[tuple, SurveyData] = {}
_cache_lock = threading.Lock()
_load_locks: dict[str, threading.Lock] = {}


def survey_data(name: str) -> SurveyData:
    """The shared :class:`SurveyData` of survey ``name`` (loaded on first use, or when stale)."""
    key = _stamp(name)
    with _cache_lock:
        cached = _cache.get(key)
        lock = _load_locks.setdefault(name, threading.Lock())
    if cached is not None:
        return cached
    with lock:  # one loader per survey; other sessions wait for it
        with _cache_lock:
            cached = _cache.get(key)
        if cached is None:
            cached = load_survey_data(name)
            with _cache_lock:
                for old in [k for k in _cache if k[1] == name]:
                    del _cache[old]
                _cache[key] = cached
    return cached


def _stamp(name: str) -> tuple:
    """Cache key: data root, survey, its survey.json and active versions, and the lineage
    stamp (content hash, :func:`backend.pipeline.lineage.stamp`) of each product shown: the
    predictions of each model kind's version in use, the map and the anomaly scores."""
    from backend.pipeline.kinds import Target
    from backend.pipeline.lineage import stamp
    from backend.pipeline.planner import resolve_versions

    settings = get_settings()
    parts: list[object] = [
        _mtime(settings.surveys_dir / name / "survey.json"),
        _mtime(settings.models_dir / "active" / f"{name}.json"),
    ]
    try:
        versions = resolve_versions(name)
    except RegistryError:
        return (str(settings.home), name, *parts)
    targets = [Target("predictions", name, k, v) for k, v in sorted(versions.models.items())]
    if versions.encoder:
        targets += [Target(p, name, "encoder", versions.encoder) for p in ("map", "scores", "ood")]
    parts += [(t.key, stamp(t)) for t in targets]
    return (str(settings.home), name, *parts)


def _mtime(path: Path) -> tuple[str, int]:
    try:
        return path.name, path.stat().st_mtime_ns
    except FileNotFoundError:
        return path.name, 0


def load_survey_data(name: str) -> SurveyData:
    """Read the catalog, map, predictions and anomaly scores of ``name``; a survey of at least
    ``LATENTSKY_TILED_MAP_ABOVE`` objects is opened without reading them (:func:`open_paged`)."""
    from backend.config import tiled_map_threshold

    survey = get_survey(name)
    if len(survey) >= tiled_map_threshold():
        return open_paged(survey)
    table = survey.catalog.reset_index(drop=True).copy()
    problems: list[str] = []
    registry = ModelRegistry()
    versions: dict[str, str] = {}
    encoder = _encoder_version(name, problems)
    if encoder:
        versions["encoder"] = encoder
    for kind in PREDICTION_KINDS:
        version = registry.active(name, kind) or registry.latest(kind, name)
        if version is None:
            continue
        versions[kind] = version.version
        try:
            preds = read_predictions(name, kind, version.version)
        except ProductError:
            problems.append(
                f"no {kind} predictions: run `python -m backend predict --survey {name}`"
            )
            continue
        if len(preds) != len(table):
            problems.append(f"{kind} {version.version} predictions do not match the survey rows")
            continue
        new = [c for c in preds.columns if c not in table.columns]
        table = pd.concat([table, preds[new].reset_index(drop=True)], axis=1)
    x = y = summary = None
    if encoder:
        x, y = _map_coords(name, encoder, len(table), problems)
        table = _add_anomaly(table, name, encoder, problems)
        table, summary = _add_ood(table, name, encoder, problems)
    log.info("loaded survey %s: %d objects, problems: %s", name, len(table), problems)
    return SurveyData(survey, encoder, versions, table, x, y, problems, summary)


def open_paged(survey: Survey) -> SurveyData:
    """A big survey's data without reading its tables or map (bounded memory and first load):
    ``table`` is a :class:`backend.rowtable.RowTable` over the catalog, the predictions in use,
    the anomaly scores and the OOD scores, whose rows are read on demand, row group by row
    group; ``x``/``y`` are views of the memory-mapped ``map.npy`` (the Explore view draws and
    selects from the map tiles)."""
    from backend.pipeline.storage import PREDICTIONS_FILE, product_dir
    from backend.rowtable import RowTable, RowTableError, Source, parquet_columns, parquet_rows

    name, n = survey.name, len(survey)
    problems: list[str] = []
    catalog = survey.path / "catalog.parquet"
    sources = [Source(catalog, {c: c for c in parquet_columns(catalog)})]
    taken = set(sources[0].columns)
    registry = ModelRegistry()
    versions: dict[str, str] = {}
    encoder = _encoder_version(name, problems)
    if encoder:
        versions["encoder"] = encoder

    def add(path: Path, columns: dict[str, str], missing: str, mismatch: str) -> bool:
        if not path.is_file():
            problems.append(missing)
            return False
        try:
            rows = parquet_rows(path)
        except RowTableError as exc:
            problems.append(str(exc))
            return False
        if rows != n:
            problems.append(mismatch)
            return False
        new = {t: f for t, f in columns.items() if t not in taken}
        taken.update(new)
        sources.append(Source(path, new))
        return True

    for kind in PREDICTION_KINDS:
        version = registry.active(name, kind) or registry.latest(kind, name)
        if version is None:
            continue
        versions[kind] = version.version
        path = product_dir(name, kind, version.version) / PREDICTIONS_FILE
        cols = {c: c for c in parquet_columns(path)} if path.is_file() else {}
        add(path, cols, f"no {kind} predictions: run `python -m backend predict --survey {name}`",
            f"{kind} {version.version} predictions do not match the survey rows")  # fmt: skip
    x = y = summary = None
    if encoder:
        x, y = _mapped_coords(name, encoder, n, problems)
        folder = product_dir(name, "encoder", encoder)
        scores = folder / "anomaly.parquet"
        add(scores, _score_columns(parquet_columns(scores)) if scores.is_file() else {},
            f"no anomaly scores yet: run `python -m backend score --survey {name}`",
            "the anomaly scores do not match the survey rows; rerun score")  # fmt: skip
        summary = _ood_summary(folder, n, add, problems)
    table = RowTable(sources, n)
    log.info("opened survey %s: %d objects, paged; problems: %s", name, n, problems)
    return SurveyData(survey, encoder, versions, table, x, y, problems, summary)  # type: ignore[arg-type]


def _score_columns(names: list[str]) -> dict[str, str]:
    """{table column: scores file column} of the anomaly columns the views read."""
    from backend.latent.anomaly import SCORERS

    cols = {"anomaly": ANOMALY, "rank": ANOMALY_RANK} | {s: SCORE_PREFIX + s for s in SCORERS}
    return {table: file for file, table in cols.items() if file in names}


def _mapped_coords(
    name: str, encoder: str, n: int, problems: list[str]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """x and y of the memory-mapped ``map.npy`` (nothing read until used)."""
    from backend.latent.source import MAP_FILE, latent_dir

    path = latent_dir(name, encoder) / MAP_FILE
    if not path.is_file():
        problems.append(f"no 2-D map yet: run `python -m backend map --survey {name}`")
        return None, None
    try:
        xy = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        problems.append(f"the map cannot be read: {path}: {exc}")
        return None, None
    if xy.shape != (n, 2):
        problems.append(f"the map has shape {xy.shape} for {n:,} objects; rerun map")
        return None, None
    return xy[:, 0], xy[:, 1]


def _ood_summary(
    folder: Path, n: int, add: Callable[..., bool], problems: list[str]
) -> dict[str, Any] | None:
    """The ood product's summary (its banner in ``problems``) and its score column added."""
    import json

    from app.ood import OOD, survey_warning
    from backend.pipeline.kinds import OOD_FILE, OOD_META_FILE

    if not (folder / OOD_FILE).is_file() or not (folder / OOD_META_FILE).is_file():
        return None
    mismatch = "the OOD scores do not match the survey rows; rerun ood"
    if not add(folder / OOD_FILE, {OOD: "ood_score"}, mismatch, mismatch):
        return None
    summary = json.loads((folder / OOD_META_FILE).read_text())
    warning = survey_warning(summary)
    if warning:
        problems.append(warning)
    return summary


def _encoder_version(name: str, problems: list[str]) -> str | None:
    from backend.latent.source import resolve_encoder_version

    try:
        return resolve_encoder_version(name)
    except (MissingProductError, RegistryError) as exc:
        problems.append(str(exc))
        return None


def _map_coords(
    name: str, encoder: str, n: int, problems: list[str]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    from backend.latent.service import latent_services

    try:
        coords = latent_services(name, encoder).map().coords
    except (MissingProductError, ProductError):
        problems.append(f"no 2-D map yet: run `python -m backend map --survey {name}`")
        return None, None
    except (LatentError, SurveyError) as exc:
        problems.append(f"the map cannot be read: {exc}")
        return None, None
    if len(coords) != n:
        problems.append(f"the map has {len(coords):,} points for {n:,} objects; rerun map")
        return None, None
    xy = np.asarray(coords, dtype=np.float32)
    return np.ascontiguousarray(xy[:, 0]), np.ascontiguousarray(xy[:, 1])


def _add_anomaly(table: pd.DataFrame, name: str, encoder: str, problems: list[str]) -> pd.DataFrame:
    from backend.latent.service import latent_services

    try:
        scores = latent_services(name, encoder).anomalies().scores
    except (MissingProductError, ProductError):
        problems.append(f"no anomaly scores yet: run `python -m backend score --survey {name}`")
        return table
    except (LatentError, SurveyError) as exc:
        problems.append(f"the anomaly scores cannot be read: {exc}")
        return table
    if len(scores) != len(table):
        problems.append("the anomaly scores do not match the survey rows; rerun score")
        return table
    cols = {"anomaly": ANOMALY, "rank": ANOMALY_RANK}
    from backend.latent.anomaly import SCORERS

    cols.update({s: SCORE_PREFIX + s for s in SCORERS if s in scores})
    extra = scores[[c for c in cols if c in scores]].rename(columns=cols).reset_index(drop=True)
    return pd.concat([table, extra], axis=1)


def _add_ood(
    table: pd.DataFrame, name: str, encoder: str, problems: list[str]
) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    """The ``ood`` product's per-object score column and summary (a banner in ``problems``
    when the survey is unlike the encoder's training data); unchanged when it was not made."""
    from app.ood import OOD, survey_warning
    from backend.latent.ood_product import read_ood

    found = read_ood(name, encoder)
    if found is None:
        return table, None
    scores, summary = found
    if len(scores) != len(table):
        problems.append("the OOD scores do not match the survey rows; rerun ood")
        return table, None
    table = table.assign(**{OOD: scores["ood_score"].to_numpy()})
    warning = survey_warning(summary)
    if warning:
        problems.append(warning)
    return table, summary


def clear_cache() -> None:
    """Forget every loaded survey (tests)."""
    with _cache_lock:
        _cache.clear()
