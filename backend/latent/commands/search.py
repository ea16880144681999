"""``python -m backend search``: see :mod:`backend.latent.cli`."""

from backend.latent.cli import add_search_parser as add_parser

__all__ = ["add_parser"]
