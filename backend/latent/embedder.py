"""An :data:`~backend.latent.images.EmbedFn` from a registered encoder (torch, loaded lazily).

The web app and the CLI pass this to :meth:`SimilaritySearch.by_image`; the latent services
themselves never import torch.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from backend.latent.errors import LatentError
from backend.latent.images import EmbedFn


@lru_cache(maxsize=4)
def encoder_embedder(version: str, bands: tuple[str, ...]) -> EmbedFn:
    """Embed (n, C, H, W) cutouts whose channels are ``bands`` with encoder ``version``."""
    try:
        from backend.modelling.common import device, load_model
        from backend.registry import ModelRegistry
        from models import embed
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise LatentError(f"embedding an image needs the model code ({exc})") from None
    registered = ModelRegistry().get("encoder", version)
    if registered.config.get("kind") == "imported_embeddings":
        source = registered.config.get("source", {})
        raise LatentError(
            f"encoder {version} is embeddings imported from {source.get('file', 'a file')}: it "
            "cannot embed new images (uploads); search by object or position, or activate an "
            "encoder with weights"
        )
    model = load_model(registered)

    def run(images: np.ndarray) -> np.ndarray:
        return embed(model, images, bands=list(bands), device=device(), batch_size=256)

    return run
