"""``python -m backend restore F``: a backup into an empty data root (see ``backup``)."""

from __future__ import annotations

import argparse

from backend.commands.backup import add_restore_parser


def add_parser(sub: argparse._SubParsersAction) -> None:
    add_restore_parser(sub)
