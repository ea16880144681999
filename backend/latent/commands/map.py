"""``python -m backend map``: see :mod:`backend.latent.cli`."""

from backend.latent.cli import add_map_parser as add_parser

__all__ = ["add_parser"]
