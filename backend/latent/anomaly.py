"""Anomaly ranking of a survey and its personalised re-ranking from users' interest scores.

**Scores.** Each scorer (the autoencoder's residual scores when given: ``recon`` its mean
squared residual, ``recon_peak`` its largest pixel, ``recon_excess`` its energy above the
noise; isolation forest, kNN distance, optionally LOF: :mod:`backend.latent.scorers`; the
cutouts' own ``sharpness``, sharper than the PSF, and ``asymmetry``, CAS rotational asymmetry:
:mod:`backend.latent.morphology`) is
rank-normalised to [0, 1]; the ``anomaly`` score is their mean (``combine_with="mean"``;
objects missing a score use the others) or the percentile of their largest (``"max"``, the
product's default: an object extreme for any one scorer ranks high; as a percentile it stays
spread over [0, 1], which the re-ranking's blend with interest / 5 needs), or a formula of
:mod:`backend.latent.combination` (``max``/``mean``/``fisher``, nested). When the survey has
labelled anomalies (its label schema's ``anomalies`` classes, :mod:`backend.latent.labelled`),
the formula that ranks those outside the validation split best is chosen among a fixed few
(:func:`backend.latent.combination.choose`) and recorded in the table's ``combination`` attrs.
With at least :data:`~backend.latent.combination.MIN_POSITIVES` of them, ``likeness`` (the share
of an object's kNN-graph neighbours that are those labelled anomalies, its own label left out:
:mod:`backend.latent.likeness`) is scored too and formulas reading it compete.
The table keeps one column per scorer (normalised) and ``<scorer>_raw``.

**Re-ranking** (Lochner & Bassett 2021, Astronomaly's active anomaly detection). Users give
interest scores 0-5 to some objects. A regressor on the unit embeddings predicts the interest
``u`` of every object (``regressor="knn"``: inverse-square-distance mean of the 5 nearest
scored objects; ``"forest"``: Astronomaly's random forest, 50 trees), and ``d``, each object's
distance to its nearest scored object, says how far to trust that prediction (scaled by
``mean(d)`` over all objects, as in Astronomaly).

- ``method="blend"`` (default): ``final = (1 - c) * anomaly + c * u / 5`` with closeness
  ``c = exp(-alpha * (d / mean(d)) ** 2)`` (alpha = 1). Near scored objects the ranking follows
  the predicted interest, so objects like a 5 rise and objects like a 0 sink; far from any
  scored object it is the anomaly score. The closeness is scaled by the prediction's support
  ``s`` (the summed closeness of the ``k`` nearest scored objects): ``c * s / (s + prior)``
  (prior = 0.25), so the look-alikes of a single score move at most 80% of the way to it
  and several agreeing scores are needed to fill the top of the list (on the demo, one 5 on
  an ordinary galaxy put 6-14 look-alikes in the top 25, now 1-4). (A Gaussian in ``d / mean(d)`` separates "near a
  scored object" from "elsewhere" better than Astronomaly's exponential in 128-d spaces, where
  distances concentrate. alpha = 1 reached 0.88 precision on the liked kinds after 50 labels
  in a synthetic S3 rehearsal where alpha = 3 reached 0.67; smaller alpha trusts the
  regressor further from the scored objects, at the cost of exploring less.)
- ``method="astronomaly"``: Astronomaly's ``NeighbourScore``,
  ``final = anomaly * tanh(exp(alpha * d / mean(d)) - 1 + arctanh(0.1 + 0.85 * u / 5))``
  (alpha = 1). It only ever lowers scores: boring look-alikes sink, nothing rises.

All of it is vectorised: one FAISS search of every object among the scored ones (exact below
4,096 scored objects, HNSW above) and one regressor prediction over all rows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from backend.atomic import atomic_write
from backend.latent.combination import (
    DEFAULT_FORMULA,
    LIKENESS,
    MIN_POSITIVES,
    choose,
    evaluate,
    needed_scorers,
    parse,
)
from backend.latent.errors import LatentError, MissingProductError
from backend.latent.likeness import likeness
from backend.latent.paging import (
    TOP_KEY,
    ColumnRanking,
    RankedList,
    rank_of,
    read_top,
    top_metadata,
)
from backend.latent.scorers import (
    Scheduler,
    by_cells,
    isolation_forest,
    knn_distance,
    knn_graph,
    local_outlier_factor,
    rank_normalise,
)
from backend.latent.search import SimilarityIndex
from backend.latent.vectors import (
    chord_from_cosine,
    cpu_threads,
    search_chunked,
    small_ip_index,
    unit_rows,
)
from backend.rowtable import ROW_GROUP, RowTable, Source, parquet_columns, parquet_rows

log = logging.getLogger(__name__)

SCORERS = (
    "recon", "recon_peak", "recon_excess", "iforest", "knn", "lof", "sharpness", "asymmetry",
    "likeness",
)  # fmt: skip
RESIDUAL_SCORERS = {
    "recon": "recon_error",
    "recon_peak": "recon_peak",
    "recon_excess": "recon_excess",
}
EMBEDDING_SCORERS = ("iforest", "knn", "lof")
PIXEL_SCORERS = ("sharpness", "asymmetry")  # computed on the cutouts (image_scores)
LABEL_SCORERS = (LIKENESS,)  # read the survey's labelled anomalies (fit's ``labelled``)
COMBINE_WITH = ("mean", "max")
# the product's scorers and their combination, chosen on the demo (S3) and sdss_gz1 (Q3)
# together with bench/bench_anomaly_s3.py: recall@100 demo / gz1 encoder v0003 / v0001 0.505 /
# 0.205 / 0.228 for the max of kNN, sharpness and asymmetry, against 0.263 / 0.187 / 0.129 for
# the max of recon_peak, iforest and kNN (docs/results.md, issue 9)
DEFAULT_SCORERS = ("knn", "sharpness", "asymmetry")
DEFAULT_COMBINE = "max"
MAX_INTEREST = 5


@dataclass(frozen=True)
class RerankParams:
    """How interest scores re-rank the anomaly list (see the module docstring)."""

    method: str = "blend"  # "blend" or "astronomaly"
    regressor: str = "knn"  # "knn" or "forest"
    alpha: float = 1.0  # how far from scored objects their look-alikes are affected
    k: int = 5  # scored neighbours used by the kNN regressor
    seed: int = 0
    prior: float = 0.25  # the blend trusts a prediction s / (s + prior) (s: its support)


class AnomalyRanker:
    """Per-object anomaly scores of one survey, plus re-ranking from interest scores.

    Thread-safe: the unit embeddings used by re-ranking are computed once under a lock.
    """

    def __init__(
        self,
        scores: pd.DataFrame | None,
        embeddings: np.ndarray | None = None,
        path: Path | None = None,
    ) -> None:
        """``scores`` in memory, or ``path``: a scores file read when :attr:`scores` is first
        asked for (its length, scorers and :meth:`plain_listing` read only its metadata and
        the columns listed)."""
        columns = list(scores.columns) if scores is not None else parquet_columns(Path(path))
        if "anomaly" not in columns:
            where = f"{path}: " if scores is None else ""
            raise LatentError(f"{where}an anomaly table needs an 'anomaly' column")
        self._scores = None if scores is None else scores.reset_index(drop=True)
        self._columns = columns
        self.path = None if path is None else Path(path)
        self.embeddings = embeddings
        self._unit: np.ndarray | None = None
        self._ids: pd.Index | None = None
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._rows: RowTable | None = None  # the scores file, paged (plain_listing)
        self._listings: dict[str, ColumnRanking] = {}

    @property
    def scores(self) -> pd.DataFrame:
        """The whole score table (read from the file on first use)."""
        with self._read_lock:
            if self._scores is None:
                self._scores = pd.read_parquet(self.path).reset_index(drop=True)
            return self._scores

    @scores.setter
    def scores(self, table: pd.DataFrame) -> None:
        self._scores, self._columns = table.reset_index(drop=True), list(table.columns)

    def __len__(self) -> int:
        if self._scores is None:
            return parquet_rows(self.path)
        return len(self._scores)

    @property
    def scorers(self) -> list[str]:
        return [s for s in SCORERS if s in self._columns]

    @property
    def attrs(self) -> dict:
        """The table's attrs (scorers, combination, scoring), from the file's metadata when the
        table was not read."""
        if self._scores is not None or self.path is None:
            return dict(self.scores.attrs)
        import json

        import pyarrow.parquet as pq

        meta = pq.read_schema(self.path).metadata or {}
        return json.loads(meta[b"PANDAS_ATTRS"]) if b"PANDAS_ATTRS" in meta else {}

    # -- scoring -----------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        embeddings: np.ndarray,
        *,
        recon_error: np.ndarray | None = None,
        scorers: tuple[str, ...] = ("iforest", "knn"),
        object_ids: np.ndarray | None = None,
        k: int = 10,
        seed: int = 0,
        index: SimilarityIndex | None = None,
        combine_with: str = "mean",
        progress: bool = False,
        scheduler: Scheduler = None,
        residuals: Mapping[str, np.ndarray] | None = None,
        pixels: Mapping[str, np.ndarray] | None = None,
        labelled: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> AnomalyRanker:
        """Score every row of ``embeddings`` (N, D) with ``scorers``; ``combine_with`` "mean"
        (default) or "max" of the normalised scores. ``residuals`` are the autoencoder's
        per-object columns (``recon_error``, ``recon_peak``, ``recon_excess``), each used as
        its scorer (``recon``, ``recon_peak``, ``recon_excess``) when named in ``scorers``; a
        ``recon_error`` argument is always used. ``pixels`` are the cutouts' raw scores
        (``sharpness``, ``asymmetry``: :func:`backend.latent.image_scores.image_scores`), needed
        when named in ``scorers``. The kNN searches and isolation-forest scores run per
        partition where ``scheduler`` says. ``labelled`` (the survey's labelled anomalies and
        its held-out rows, (N,) bools each): the scorers of every candidate formula also run,
        and the ranking combines them by the formula that ranks the labelled anomalies outside
        the held-out rows best (:func:`backend.latent.combination.choose`; ``combine_with``
        when too few are labelled); the choice is kept in the table's ``combination`` attrs.
        With at least :data:`~backend.latent.combination.MIN_POSITIVES` labelled anomalies
        outside the held-out rows, ``likeness`` is scored from the kNN graph (each object's
        share of labelled anomalies among its ``k`` neighbours, its own label left out) and the
        formulas reading it compete."""
        n = len(embeddings)
        if n < 3:
            raise LatentError(f"anomaly ranking needs at least 3 objects, got {n}")
        unknown = set(scorers) - set(SCORERS)
        if unknown:
            raise LatentError(f"unknown scorers {sorted(unknown)} (known: {SCORERS})")
        if set(LABEL_SCORERS) & set(scorers):
            raise LatentError(
                f"scorer {LIKENESS} reads the survey's labelled anomalies: it is scored when "
                "they are given (labelled), not asked for"
            )
        like_from = None  # the labelled anomalies likeness reads, when there are enough
        own = set(scorers) | ({"recon"} if recon_error is not None else set())
        if labelled is not None:  # the candidates' scorers too, in the order of SCORERS
            positive, held_out = (np.asarray(a, dtype=bool).reshape(-1) for a in labelled)
            if len(positive) != n or len(held_out) != n:
                raise LatentError(f"labelled anomalies of {len(positive)} objects for {n}")
            asked = set(scorers) | set(needed_scorers())
            scorers = tuple(name for name in SCORERS if name in asked)
            if int((positive & ~held_out).sum()) >= MIN_POSITIVES:
                like_from = positive & ~held_out
        columns = dict(residuals or {})
        wanted = set(scorers)
        if recon_error is not None:
            columns["recon_error"] = recon_error
            wanted.add("recon")
        raw: dict[str, np.ndarray] = {}
        timings: dict[str, float] = {}
        for name, column in RESIDUAL_SCORERS.items():
            if column not in columns or name not in wanted:
                continue
            values = np.asarray(columns[column], dtype=np.float32).reshape(-1)
            if len(values) != n:
                raise LatentError(
                    f"{len(values)} reconstruction errors for {n} objects (column {column})"
                )
            raw[name] = values
        for name in PIXEL_SCORERS:
            if name not in wanted:
                continue
            if pixels is None or name not in pixels:
                raise LatentError(f"scorer {name} needs the cutouts' {name} scores (pixels)")
            values = np.asarray(pixels[name], dtype=np.float32).reshape(-1)
            if len(values) != n:
                raise LatentError(f"{len(values)} {name} scores for {n} objects")
            raw[name] = values
        unit = None
        knn_info: dict = {}
        if {"knn", "lof"} & set(scorers) or like_from is not None:
            t0 = time.perf_counter()
            made: dict = {}
            unit = None if by_cells(n) else unit_rows(embeddings)  # else read per task
            dist, ids = knn_graph(
                unit, k, index, progress, rows=embeddings, scheduler=scheduler, info=made
            )
            knn_info = made
            if "knn" in scorers:
                raw["knn"] = knn_distance(dist)
            if "lof" in scorers:
                raw["lof"] = local_outlier_factor(dist, ids)
            if like_from is not None:
                raw[LIKENESS] = likeness(ids, like_from)
            timings["knn_lof_s"] = time.perf_counter() - t0
        if "iforest" in scorers:
            t0 = time.perf_counter()
            raw["iforest"] = isolation_forest(
                embeddings, seed, progress=progress, scheduler=scheduler
            )
            timings["iforest_s"] = time.perf_counter() - t0
        choice = None
        if labelled is not None:
            norm = {name: rank_normalise(values) for name, values in raw.items()}
            fallback = _as_formula(combine_with, tuple(s for s in SCORERS if s in raw and s in own))
            choice = choose(norm, positive, held_out, default=fallback)
            combine_with = choice.formula
        table = combine(raw, object_ids, combine_with)
        if choice is not None:
            table.attrs["combination"] = choice.to_dict()
        table.attrs["scoring"] = {"k": k, "seed": seed, "timings": timings}
        if knn_info:
            table.attrs["scoring"]["knn"] = knn_info
        ranker = cls(table, embeddings)
        ranker._unit = unit
        return ranker

    # -- views -------------------------------------------------------------------------------
    def ranking(self) -> pd.DataFrame:
        """Scores sorted by ``anomaly`` (most anomalous first): the whole table, for small
        surveys and exports; lists shown page by page use :meth:`listing`."""
        return self.scores.sort_values("rank", kind="stable").reset_index(drop=True)

    def top(self, n: int) -> pd.DataFrame:
        """The ``n`` most anomalous rows, by partial selection (no sort of the survey)."""
        return self.listing().page(0, n)

    def listing(
        self, table: pd.DataFrame | None = None, by: str = "anomaly", only: np.ndarray | None = None
    ) -> RankedList:
        """``table`` (default the scores; e.g. :meth:`reranked`'s) ranked by ``by`` (highest
        first, ties by row: the order of ``rank``), only rows true in ``only`` when given;
        pages are sorted when asked for."""
        return RankedList(self.scores if table is None else table, by, keep=only)

    def plain_listing(self, by: str = "final") -> RankedList | ColumnRanking:
        """The scores ranked by ``by`` (``final`` = ``anomaly``: no interest scores), pages with
        ``final`` and ``interest`` (NaN) columns. From the file when it was not read: one pass
        over the one column ranked by, by row group, and the rows of each page
        (:class:`backend.latent.paging.ColumnRanking`); never the whole table."""
        column = "anomaly" if by == "final" else by
        if self._scores is not None or self.path is None:
            table = self.scores.assign(final=self.scores["anomaly"], interest=np.float32(np.nan))
            return RankedList(table, by)
        with self._lock:  # one per column, shared by the sessions (order and first rows kept)
            if column not in self._listings:
                if self._rows is None:
                    self._rows = RowTable(
                        [Source(self.path, {c: c for c in self._columns})], len(self)
                    )
                self._listings[column] = ColumnRanking(
                    self._rows, column, constant={"interest": np.float32(np.nan)},
                    aliases={"final": "anomaly"}, top=read_top(self.path, column),
                )  # fmt: skip
            return self._listings[column]

    @staticmethod
    def rank_of(table: pd.DataFrame, row: int, by: str = "final") -> int:
        """1-based rank of table row ``row`` among all objects by ``by`` (highest first, ties by
        row), as a survey-wide sort would give it; O(N), no sort (:func:`rank_of`)."""
        if by == "anomaly" and "rank" in table.columns:
            return int(table["rank"].iat[int(row)])
        return rank_of(table[by].to_numpy(), row)

    def unit(self) -> np.ndarray:
        """Unit embeddings (N, D), computed once."""
        with self._lock:
            if self._unit is None:
                if self.embeddings is None:
                    raise LatentError("re-ranking needs the embeddings; none were given")
                self._unit = unit_rows(self.embeddings)
            return self._unit

    def _id_index(self) -> pd.Index:
        with self._lock:
            if self._ids is None:
                self._ids = pd.Index(self.scores["object_id"].astype(str))
            return self._ids

    # -- personalisation ---------------------------------------------------------------------
    def rerank(self, interest: pd.DataFrame, params: RerankParams | None = None) -> pd.DataFrame:
        """The anomaly table re-ranked by interest scores (``index`` or ``object_id`` plus
        ``score`` 0-5 columns, e.g. :func:`backend.feedback.latest_interest`).

        Adds ``interest`` (given score, NaN when none), ``interest_pred``, ``label_distance``,
        ``final``; ``rank`` follows ``final``; sorted by rank.
        """
        table = self.reranked(interest, params)
        if "rank" not in table.columns:  # the whole survey sorted: for exports and benches
            table["rank"] = _ranks(table["final"].to_numpy())
        return table.sort_values("rank", kind="stable").reset_index(drop=True)

    def reranked(self, interest: pd.DataFrame, params: RerankParams | None = None) -> pd.DataFrame:
        """:meth:`rerank`'s table in row order, without its survey-wide ``rank`` column (no
        sort: list it with :meth:`listing`, one row's rank with :meth:`rank_of`); with no
        interest scores, ``final`` is ``anomaly`` and ``rank`` stays."""
        params = params or RerankParams()
        rows, given = self._interest_rows(interest)
        table = self.scores.copy(deep=False)  # copy-on-write: new columns only
        if not len(rows):
            table["interest"] = np.float32(np.nan)
            table["final"] = table["anomaly"]
            return table
        table = table.drop(columns="rank", errors="ignore")  # ``anomaly``'s, not ``final``'s
        unit = self.unit()
        predicted, dist, support = predict_interest(unit, rows, given, params)
        anomaly = table["anomaly"].to_numpy(np.float32)
        final = combine_interest(anomaly, predicted, dist, params, support)
        interest = np.full(len(table), np.nan, dtype=np.float32)
        interest[rows] = given
        table["interest"] = interest
        table["interest_pred"] = predicted
        table["label_distance"] = dist
        table["final"] = final
        table.attrs["rerank"] = {**asdict(params), "n_scored": len(rows)}
        return table

    def _interest_rows(self, interest: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        if "score" not in interest.columns:
            raise LatentError("interest scores need a 'score' column")
        if "index" in interest.columns:
            rows = interest["index"].to_numpy(np.int64)
            bad = (rows < 0) | (rows >= len(self))
        elif "object_id" in interest.columns and "object_id" in self.scores.columns:
            rows = self._id_index().get_indexer(interest["object_id"].astype(str))
            bad = rows < 0
        else:
            raise LatentError("interest scores need an 'index' or 'object_id' column")
        if bad.any():
            log.warning("ignoring %d interest scores of unknown objects", int(bad.sum()))
        score = interest["score"].to_numpy(np.float32)
        ok = ~bad & np.isfinite(score)
        if ((score[ok] < 0) | (score[ok] > MAX_INTEREST)).any():
            raise LatentError(f"interest scores must be between 0 and {MAX_INTEREST}")
        rows, score = rows[ok], score[ok]
        rows, first = np.unique(rows, return_index=True)
        return rows, score[first]

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write the score table as parquet (atomically); attrs travel in its metadata, with
        the first :data:`~backend.latent.paging.TOP_ROWS` of the ranking by ``anomaly`` and
        by each scorer (:func:`~backend.latent.paging.top_metadata`: a list's first pages)."""
        import json

        import pyarrow as pa
        import pyarrow.parquet as pq

        def write(tmp: Path) -> None:
            table = pa.Table.from_pandas(self.scores, preserve_index=False)
            meta = dict(table.schema.metadata or {})
            if self.scores.attrs:
                meta[b"PANDAS_ATTRS"] = json.dumps(self.scores.attrs).encode()
            meta[TOP_KEY.encode()] = top_metadata(self.scores, ["anomaly", *self.scorers])
            table = table.replace_schema_metadata(meta)
            pq.write_table(table, tmp, row_group_size=ROW_GROUP)

        atomic_write(Path(path), write)

    @classmethod
    def load(cls, path: Path, embeddings: np.ndarray | None = None) -> AnomalyRanker:
        path = Path(path)
        if not path.is_file():
            raise MissingProductError(f"no anomaly scores at {path}; run `python -m backend score`")
        return cls(None, embeddings, path=path)


def combine(
    raw: dict[str, np.ndarray], object_ids: np.ndarray | None = None, how: str = "mean"
) -> pd.DataFrame:
    """Table of normalised and raw scores, their mean (or max, or a formula of
    :mod:`backend.latent.combination`) ``anomaly`` and its ``rank``."""
    if not raw:
        raise LatentError("no anomaly scorer ran")
    if how not in COMBINE_WITH:
        if "(" not in how:
            raise LatentError(
                f"scores combine with 'mean', 'max' or a formula such as "
                f"'{DEFAULT_FORMULA}', not {how!r}"
            )
        missing = set(parse(how).scorers) - set(raw)
        if missing:
            raise LatentError(f"anomaly combination {how!r} needs scorers {sorted(missing)}")
    n = len(next(iter(raw.values())))
    table = pd.DataFrame({"index": np.arange(n, dtype=np.int64)})
    if object_ids is not None:  # Arrow strings stay so (10^8 ids as Python strings: ~7 GB)
        extension = isinstance(object_ids, pd.api.extensions.ExtensionArray)
        table["object_id"] = object_ids if extension else np.asarray(object_ids)
    norm = {name: rank_normalise(values) for name, values in raw.items()}
    for name in SCORERS:
        if name in raw:
            table[name] = norm[name]
            table[f"{name}_raw"] = np.asarray(raw[name], dtype=np.float32)
    stacked = np.vstack([norm[name] for name in SCORERS if name in norm])
    finite = np.isfinite(stacked)
    if how not in COMBINE_WITH:  # a formula (checked above)
        combined = evaluate(parse(how), norm)
    elif how == "max":  # as a percentile again: the re-ranking blends it with interest / 5
        combined = rank_normalise(np.where(finite, stacked, 0.0).max(axis=0))
    else:
        combined = np.where(finite, stacked, 0.0).sum(axis=0) / np.maximum(finite.sum(axis=0), 1)
    table["anomaly"] = combined.astype(np.float32)
    table["rank"] = _ranks(table["anomaly"].to_numpy())
    table.attrs["scorers"] = [name for name in SCORERS if name in raw]
    table.attrs["combined_with"] = how
    return table


def _as_formula(how: str, scorers: tuple[str, ...]) -> str:
    """``how`` ("max", "mean" or a formula) over ``scorers`` as a formula."""
    if how in COMBINE_WITH:
        return f"{how}({','.join(scorers)})"
    return how


def predict_interest(
    unit: np.ndarray, rows: np.ndarray, scores: np.ndarray, params: RerankParams
) -> tuple[np.ndarray, np.ndarray]:
    """(predicted interest 0-5, distance to the nearest scored object, support) for every row.

    ``support`` counts the scored objects behind a row's prediction: the closeness (as in
    :func:`combine_interest`) of its ``k`` nearest scored objects, summed; one scored object
    lends at most 1.
    """
    k = max(1, min(params.k, len(rows)))
    index = small_ip_index(unit[rows])
    sims, nearest = search_chunked(index, unit, k)
    dist = chord_from_cosine(sims)
    nearest_dist = dist[:, 0].copy()
    scale = float(nearest_dist.mean()) or 1.0
    reach = np.where(nearest >= 0, np.exp(-params.alpha * (dist / scale) ** 2), 0.0)
    support = reach.sum(axis=1).astype(np.float32)
    if params.regressor == "knn":
        valid = nearest >= 0
        weights = np.where(valid, 1.0 / (dist + 1e-3) ** 2, 0.0)
        values = scores[np.where(valid, nearest, 0)]
        predicted = (weights * values).sum(axis=1) / weights.sum(axis=1)
    elif params.regressor == "forest":
        from sklearn.ensemble import RandomForestRegressor

        forest = RandomForestRegressor(
            n_estimators=50, random_state=params.seed, n_jobs=cpu_threads()
        ).fit(unit[rows], scores)
        predicted = forest.predict(unit)
    else:
        raise LatentError(f"unknown regressor {params.regressor!r} (knn, forest)")
    return np.clip(predicted, 0, MAX_INTEREST).astype(np.float32), nearest_dist, support


def combine_interest(
    anomaly: np.ndarray,
    predicted: np.ndarray,
    dist: np.ndarray,
    params: RerankParams,
    support: np.ndarray | None = None,
) -> np.ndarray:
    """Final score from the anomaly score, predicted interest and nearest-label distance.

    With ``support`` (see :func:`predict_interest`) the blend trusts a prediction in
    proportion ``support / (support + prior)``: the look-alikes of a single score move at most
    80% of the way to it (prior 0.25), those of several agreeing scores nearly all the way.
    """
    scale = float(dist.mean()) or 1.0
    if params.method == "blend":
        closeness = np.exp(-params.alpha * (dist / scale) ** 2)
        if support is not None and params.prior > 0:
            closeness = closeness * support / (support + params.prior)
        final = (1.0 - closeness) * anomaly + closeness * predicted / MAX_INTEREST
    elif params.method == "astronomaly":
        f_u = 0.1 + 0.85 * predicted / MAX_INTEREST
        penalty = np.exp(np.minimum(params.alpha * dist / scale, 50.0))
        final = anomaly * np.tanh(penalty - 1.0 + np.arctanh(f_u))
    else:
        raise LatentError(f"unknown re-ranking method {params.method!r} (blend, astronomaly)")
    return final.astype(np.float32)


def _ranks(score: np.ndarray) -> np.ndarray:
    """1-based ranks, highest score first (ties keep object order)."""
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = np.arange(1, len(order) + 1)
    return ranks
