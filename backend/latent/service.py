"""Per-process access to the latent products, for the web app's thread pool.

:func:`latent_services` returns one :class:`LatentServices` per (data root, survey, encoder
version, lineage of its products): each product is opened on first use under a lock and then
shared (memory-mapped arrays, read-only FAISS indexes). The key holds the content hash of each
product's lineage record (:func:`backend.pipeline.lineage.stamp`), so a product remade in place
or a new active encoder gives a fresh instance, and the survey's previous instance is dropped
then (one instance per survey and data root is kept).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

from backend.config import get_settings
from backend.latent.anomaly import AnomalyRanker
from backend.latent.errors import MissingProductError
from backend.latent.projection import LatentMap
from backend.latent.query import SimilaritySearch
from backend.latent.search import EXACT_THRESHOLD, SimilarityIndex
from backend.latent.source import (
    ANOMALY_FILE,
    INDEX_FILE,
    latent_dir,
    resolve_encoder_version,
)
from backend.pipeline.kinds import Target
from backend.pipeline.lineage import stamp
from backend.pipeline.storage import open_embeddings
from backend.survey import Survey

log = logging.getLogger(__name__)


class LatentServices:
    """The map, similarity search and anomaly ranking of one (survey, encoder version)."""

    def __init__(self, survey: Survey, version: str) -> None:
        self.survey = survey
        self.version = version
        self.directory = latent_dir(survey.name, version)
        self.embeddings = open_embeddings(survey.name, "encoder", version)
        self._lock = threading.Lock()
        self._cache: dict[str, Any] = {}

    def _get(self, name: str, load: Any) -> Any:
        with self._lock:
            if name not in self._cache:
                self._cache[name] = load()
            return self._cache[name]

    def map(self) -> LatentMap:
        """The 2-D map (``python -m backend map`` makes it)."""
        return self._get("map", lambda: LatentMap.load(self.directory))

    def search(self) -> SimilaritySearch:
        """Similarity search; without a saved index, small surveys get one built in memory."""
        return self._get("search", self._open_search)

    def anomalies(self) -> AnomalyRanker:
        """The anomaly ranking (``python -m backend score`` makes it)."""
        return self._get(
            "anomalies", lambda: AnomalyRanker.load(self.directory / ANOMALY_FILE, self.embeddings)
        )

    def _open_search(self) -> SimilaritySearch:
        if (self.directory / INDEX_FILE).is_file():
            index = SimilarityIndex.load(self.directory, self.embeddings)
        elif len(self.embeddings) <= EXACT_THRESHOLD:
            log.info(
                "no saved index for %s/%s: exact index in memory", self.survey.name, self.version
            )
            index = SimilarityIndex.build(np.asarray(self.embeddings), kind="flat")
        else:
            raise MissingProductError(
                f"no similarity index for survey {self.survey.name!r} ({self.version}); run "
                f"`python -m backend index --survey {self.survey.name}`"
            )
        return SimilaritySearch(self.survey, self.embeddings, index)


_instances: dict[tuple[str, ...], LatentServices] = {}
_instances_lock = threading.Lock()
LATENT_PRODUCTS = ("embeddings", "map", "index", "scores")


def services_key(survey: str, version: str) -> tuple[str, ...]:
    """(data root, survey, encoder version, the stamp of each of its products)."""
    stamps = [
        stamp(Target(product, survey, "encoder", version)) or "-" for product in LATENT_PRODUCTS
    ]
    return (str(get_settings().home), survey, version, *stamps)


def latent_services(survey: str, version: str | None = None) -> LatentServices:
    """The shared :class:`LatentServices` of ``survey`` (default: its active encoder)."""
    resolved = resolve_encoder_version(survey, version)
    key = services_key(survey, resolved)
    with _instances_lock:
        if key not in _instances:
            for old in [k for k in _instances if k[:2] == key[:2]]:
                del _instances[old]  # an older version or older products of this survey
            _instances[key] = LatentServices(Survey.open(survey), resolved)
        return _instances[key]


def cached_keys() -> list[tuple[str, ...]]:
    """Keys of the instances held (tests, diagnostics)."""
    with _instances_lock:
        return list(_instances)


def clear_cache() -> None:
    """Forget every instance (tests)."""
    with _instances_lock:
        _instances.clear()
