"""``python -m backend index``: see :mod:`backend.latent.cli`."""

from backend.latent.cli import add_index_parser as add_parser

__all__ = ["add_parser"]
