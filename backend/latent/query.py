"""Similarity queries on one survey: by object, sky position, uploaded image or examples.

Every query returns a :class:`pandas.DataFrame` with ``rank`` (1 = most similar), ``index``
(row in the survey), ``object_id``, ``similarity`` (cosine), ``distance`` (1 - cosine) and the
survey's catalog columns; ``df.attrs["query"]`` describes the query. ``dedupe_arcsec`` drops a
result lying within that many arcsec of a better-ranked one (several detections of one galaxy)
and fetches more so ``k`` rows still come back when the survey has them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from astropy.coordinates import SkyCoord

from backend.latent.errors import LatentError
from backend.latent.images import EmbedFn, check_embeddings, validate_cutouts
from backend.latent.search import MAX_K, SimilarityIndex, check_k
from backend.latent.sky import PagedSkyIndex, SkyIndex, dedupe_on_sky, parse_position
from backend.latent.vectors import normalize
from backend.survey import Survey
from backend.survey.meta import SurveyError

DEFAULT_RADIUS_ARCSEC = 5.0
ObjectRef = int | str | np.integer


class SimilaritySearch:
    """Queries against one (survey, encoder version). Thread-safe for concurrent queries."""

    def __init__(self, survey: Survey, embeddings: np.ndarray, index: SimilarityIndex) -> None:
        if len(embeddings) != len(survey) or len(index) != len(survey):
            raise LatentError(
                f"survey {survey.name} has {len(survey):,} objects but the embeddings have "
                f"{len(embeddings):,} rows and the index {len(index):,}; re-embed and reindex"
            )
        self.survey = survey
        self.embeddings = embeddings
        self.index = index
        self._sky: SkyIndex | PagedSkyIndex | None = None

    @property
    def sky(self) -> SkyIndex | PagedSkyIndex:
        """The sky look-ups: a tree of the catalog's positions, or for a paged (big) survey
        cone searches over its catalog file's row groups (:class:`PagedSkyIndex`)."""
        if self._sky is None:  # a benign race: two threads may both build it once
            name = f"survey {self.survey.name}"
            if self.survey.paged:
                self._sky = PagedSkyIndex(self.survey.path / "catalog.parquet", name)
            else:
                self._sky = SkyIndex.from_catalog(self.survey.catalog, name)
        return self._sky

    # -- object references -------------------------------------------------------------------
    def resolve(self, ref: ObjectRef) -> int:
        """Row index of an object given by row number (int) or object id (str)."""
        if isinstance(ref, bool):
            raise LatentError(f"not an object reference: {ref!r}")
        if isinstance(ref, int | np.integer):
            if not 0 <= int(ref) < len(self.survey):
                raise LatentError(
                    f"survey {self.survey.name}: index {ref} out of range 0..{len(self.survey) - 1}"
                )
            return int(ref)
        try:
            return self.survey.index_of(str(ref))
        except SurveyError as exc:
            raise LatentError(str(exc)) from None

    # -- queries -----------------------------------------------------------------------------
    def by_object(
        self, ref: ObjectRef, k: int = 20, dedupe_arcsec: float | None = None
    ) -> pd.DataFrame:
        """Objects most similar to one of the survey's (itself excluded)."""
        i = self.resolve(ref)
        query = {"type": "object", "index": i, "object_id": self._object_id(i)}
        return self.by_vector(self.embeddings[i], k, dedupe_arcsec, exclude=[i], query=query)

    def by_position(
        self,
        position: str | Sequence[float | str] | SkyCoord,
        k: int = 20,
        radius_arcsec: float = DEFAULT_RADIUS_ARCSEC,
        dedupe_arcsec: float | None = None,
    ) -> pd.DataFrame:
        """Objects most similar to the survey object nearest ``position`` within the radius."""
        coord = parse_position(position)
        hit = self.sky.nearest(coord, radius_arcsec)
        if hit is None:
            where = coord.to_string("hmsdms", precision=1)
            closest = self.sky.nearest_any(coord)
            hint = (
                f"; the closest is {self._object_id(closest[0])} at {closest[1]:.1f} arcsec"
                if closest
                else ""
            )
            raise LatentError(f"no object within {radius_arcsec:g} arcsec of {where}{hint}")
        i, sep = hit
        result = self.by_object(i, k, dedupe_arcsec)
        result.attrs["query"].update(type="position", separation_arcsec=sep)
        result.attrs["query"]["ra"], result.attrs["query"]["dec"] = coord.ra.deg, coord.dec.deg
        return result

    def by_image(
        self,
        image: np.ndarray,
        embed: EmbedFn,
        k: int = 20,
        dedupe_arcsec: float | None = None,
        nonfinite: str = "error",
    ) -> pd.DataFrame:
        """Objects most similar to an uploaded cutout (C, H, W), embedded by ``embed``."""
        cutouts = validate_cutouts(image, self.survey.meta, nonfinite)
        vectors = check_embeddings(embed(cutouts), len(cutouts), self.index.dim)
        query = {"type": "image", "n_images": len(cutouts)}
        return self.by_vector(vectors.mean(axis=0), k, dedupe_arcsec, query=query)

    def by_examples(
        self,
        positive: Sequence[ObjectRef],
        negative: Sequence[ObjectRef] = (),
        k: int = 20,
        alpha: float = 0.5,
        dedupe_arcsec: float | None = None,
    ) -> pd.DataFrame:
        """Objects like the ``positive`` examples and unlike the ``negative`` ones.

        Query vector: mean of the unit positive vectors minus ``alpha`` times the mean of the
        unit negative ones (Rocchio feedback); the examples themselves are left out.
        """
        if not len(positive):
            raise LatentError("give at least one positive example")
        pos = [self.resolve(r) for r in positive]
        neg = [self.resolve(r) for r in negative]
        if set(pos) & set(neg):
            raise LatentError("an object cannot be both a positive and a negative example")
        vector = normalize(self.embeddings[np.sort(pos)]).mean(axis=0)
        if neg:
            vector = vector - alpha * normalize(self.embeddings[np.sort(neg)]).mean(axis=0)
        if not np.linalg.norm(vector) > 1e-6:
            raise LatentError("the positive and negative examples cancel out; pick others")
        query = {"type": "examples", "positive": pos, "negative": neg, "alpha": alpha}
        return self.by_vector(vector, k, dedupe_arcsec, exclude=pos + neg, query=query)

    def by_vector(
        self,
        vector: np.ndarray,
        k: int = 20,
        dedupe_arcsec: float | None = None,
        exclude: Sequence[int] = (),
        query: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Objects most similar to an embedding vector (D,)."""
        k = check_k(k, len(self.survey))
        if dedupe_arcsec is not None and not dedupe_arcsec >= 0:
            raise LatentError(f"dedupe radius must be >= 0 arcsec, got {dedupe_arcsec}")
        excluded = np.unique(np.asarray(exclude, dtype=np.int64))
        wanted = min(k, len(self.survey) - len(excluded))
        fetch = min(len(self.survey), wanted + len(excluded))
        if dedupe_arcsec:
            fetch = min(len(self.survey), 2 * fetch + 10)
        while True:
            sims, ids = self.index.search(vector, min(fetch, MAX_K))
            sims, ids = sims[0], ids[0]
            keep = (ids >= 0) & ~np.isin(ids, excluded)
            sims, ids = sims[keep], ids[keep]
            if dedupe_arcsec:
                rows = self.survey.catalog_rows(ids)
                if not {"ra", "dec"} <= set(rows.columns):
                    raise LatentError(f"survey {self.survey.name} has no ra/dec to dedupe on")
                mask = dedupe_on_sky(rows["ra"].to_numpy(), rows["dec"].to_numpy(), dedupe_arcsec)
                sims, ids = sims[mask], ids[mask]
            if len(ids) >= wanted or fetch >= min(len(self.survey), MAX_K):
                break
            fetch = min(len(self.survey), MAX_K, 4 * fetch)
        return self._table(ids[:wanted], sims[:wanted], query or {"type": "vector"})

    # -- results -----------------------------------------------------------------------------
    def _object_id(self, i: int) -> str:
        return str(self.survey.catalog_rows([i])["object_id"].iat[0])

    def _table(self, ids: np.ndarray, sims: np.ndarray, query: dict[str, Any]) -> pd.DataFrame:
        rows = self.survey.catalog_rows(ids)
        rows.insert(0, "rank", np.arange(1, len(ids) + 1))
        at = rows.columns.get_loc("object_id") + 1
        rows.insert(at, "similarity", sims.astype(np.float32))
        rows.insert(at + 1, "distance", (1.0 - sims).astype(np.float32))
        order = ["rank", "index", "object_id", "similarity", "distance"]
        rows = rows[order + [c for c in rows.columns if c not in order]]
        rows.attrs["query"] = query
        rows.attrs["survey"] = self.survey.name
        return rows
