"""Latent services over a survey's encoder embeddings: 2-D map, similarity search, anomalies.

Importing this package is cheap; the heavy libraries (FAISS, umap-learn, scikit-learn) load with
the module that needs them. The main entry points:

- :class:`backend.latent.projection.LatentMap`: landmark UMAP of all embeddings, placement of
  new points;
- :class:`backend.latent.search.SimilarityIndex` (FAISS) and
  :class:`backend.latent.query.SimilaritySearch` (queries by id, sky position, image, examples);
- :class:`backend.latent.anomaly.AnomalyRanker`: combined anomaly scores and personalised
  re-ranking from users' interest scores;
- :func:`backend.latent.service.latent_services`: the per-process cache the web app uses.
"""

import logging

from backend.latent.errors import LatentError, MissingProductError

# faiss-cpu >= 1.12 dispatches SIMD at run time inside one library, yet its loader logs at INFO
# the failed imports of the old per-ISA modules: keep that noise out of the CLI's output.
logging.getLogger("faiss.loader").setLevel(logging.WARNING)

__all__ = ["LatentError", "MissingProductError"]
