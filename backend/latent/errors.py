"""Errors of the latent services; their messages are meant for the user as they are."""

from __future__ import annotations

from backend.errors import UserError
from backend.products import ProductError


class LatentError(UserError, ValueError):
    """A query or an input the latent services cannot use (the message says why)."""


class MissingProductError(ProductError):
    """A latent product (embeddings, map, index, scores) has not been computed yet."""
