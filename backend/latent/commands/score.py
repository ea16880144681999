"""``python -m backend score``: see :mod:`backend.latent.cli`."""

from backend.latent.cli import add_score_parser as add_parser

__all__ = ["add_parser"]
