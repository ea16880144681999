"""``python -m backend <command>``: each command lives in its own module with ``add_parser``.

A command module defines ``add_parser(subparsers) -> None`` that registers its sub-parser and
sets ``func=<callable(args) -> int>`` as the parser default. Modules are imported lazily by name
so ``python -m backend surveys`` does not pay for torch or GalSim.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import sys

from backend.config import missing_driver_message
from backend.errors import UserError

# (command name, module) in the order ``--help`` lists them.
COMMANDS: list[tuple[str, str]] = [
    ("surveys", "backend.commands.surveys"),
    ("simulate", "backend.simulate.cli"),
    ("ingest", "backend.ingest.cli"),
    ("prepare", "backend.commands.prepare"),
    ("train", "backend.commands.train"),
    ("pretrain", "backend.commands.pretrain"),
    ("embed", "backend.commands.embed"),
    ("import", "backend.commands.import_models"),
    ("predict", "backend.commands.predict"),
    ("models", "backend.commands.models_list"),
    ("products", "backend.commands.products"),
    ("map", "backend.latent.commands.map"),
    ("index", "backend.latent.commands.index"),
    ("search", "backend.latent.commands.search"),
    ("score", "backend.latent.commands.score"),
    ("evaluate", "backend.commands.evaluate"),
    ("explain", "backend.commands.explain"),
    ("ood", "backend.commands.ood"),
    ("export", "backend.commands.export"),
    ("worker", "backend.commands.worker"),
    ("jobs", "backend.commands.jobs"),
    ("labels", "backend.commands.labels"),
    ("collections", "backend.commands.collections"),
    ("submit", "backend.jobs.cli"),
    ("backup", "backend.commands.backup"),
    ("restore", "backend.commands.restore"),
    ("users", "backend.commands.users"),
]


def add_scheduler_option(p: argparse.ArgumentParser) -> None:
    """``--scheduler`` of a heavy command: where its partitions run
    (:mod:`backend.pipeline.execution`); checked by :func:`main` before the command starts."""
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="SPEC",
        help="sync (this process), local[:N] (a local Dask cluster of N worker processes; "
        "default: one per core, or LATENTSKY_SCHEDULER) or tcp://HOST:PORT (a running Dask "
        "scheduler)",
    )


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m backend",
        description="LatentSky: explore galaxy surveys through the latent spaces of deep models.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in COMMANDS:
        if only is not None and name != only:
            sub.add_parser(name, help=f"(see python -m backend {name} --help)")
            continue
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Import only the module of the command asked for (fast start, fewer heavy imports).
    wanted = next((a for a in argv if not a.startswith("-")), None)
    only = wanted if wanted in dict(COMMANDS) else None
    args = build_parser(only).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        if "scheduler" in vars(args):  # a bad --scheduler fails before any work
            from backend.pipeline.execution import parse_scheduler

            args.scheduler = parse_scheduler(args.scheduler)
        return int(args.func(args) or 0)
    except UserError as exc:  # every user-facing error of backend/ (backend.errors)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        # models/ never imports backend/, so its errors have their own base
        # (models.errors.ModelError: BandMismatchError, InputShapeError, ...), a ValueError whose
        # message is written for the user; a bare ValueError from a library is a bug: re-raise.
        if type(exc).__module__.split(".")[0] not in ("backend", "models"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        print(
            f"error: no space left on device{where} ({exc.strerror or exc}); nothing half-made "
            "was kept: free some space and run the command again",
            file=sys.stderr,
        )
        return 2
    except ModuleNotFoundError as exc:
        message = missing_driver_message(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
