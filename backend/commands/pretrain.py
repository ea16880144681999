"""``python -m backend pretrain corpus|encoder``: the general encoder LatentSky ships."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from backend.errors import UserError

DEFAULT_PRESETS = "sdss,sdss-zoom,decals,hsc,euclid"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pretrain", help="build the pretraining corpus / pretrain the encoder")
    what = p.add_subparsers(dest="what", required=True)
    c = what.add_parser("corpus", help="render GalSim galaxies like several surveys + real images")
    c.add_argument("--out", type=Path, required=True, help="corpus folder (replaced atomically)")
    c.add_argument("--presets", default=DEFAULT_PRESETS, help="survey styles to render")
    c.add_argument("--n-per-preset", type=int, default=3000)
    c.add_argument("--real", type=Path, action="append", default=[],
                   help="folder of PNG/JPEG galaxy pictures to add (repeatable)")  # fmt: skip
    c.add_argument("--real-crop", type=int, default=128, help="centre crop of real pictures (px)")
    c.add_argument("--seed", type=int, default=0)
    c.set_defaults(func=run_corpus)
    e = what.add_parser("encoder", help="self-supervised pretraining on a corpus (steps budget)")
    e.add_argument("--corpus", type=Path, required=True)
    e.add_argument("--out", type=Path, required=True, help="e.g. assets/encoders/general-v1")
    e.add_argument("--steps", type=int, default=4000, help="optimiser steps (the budget)")
    e.add_argument("--batch-size", type=int, default=256)
    e.add_argument("--lr", type=float, default=2e-3)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--max-seconds", type=float, help="optional wall-clock cap (reported)")
    e.add_argument("--fresh", action="store_true", help="ignore a checkpoint in --out")
    e.set_defaults(func=run_encoder)


def run_corpus(args: argparse.Namespace) -> int:
    from backend.pretrain.corpus import build_corpus
    from backend.pretrain.presets import PRESETS

    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    unknown = [p for p in presets if p not in PRESETS]
    if unknown:
        raise UserError(f"unknown preset(s) {unknown} (known: {', '.join(PRESETS)})")
    for folder in args.real:
        if not folder.is_dir():
            raise UserError(f"--real {folder}: not a folder")
    if args.n_per_preset < 1:
        raise UserError("--n-per-preset must be at least 1")
    out = build_corpus(
        args.out, presets=presets, n_per_preset=args.n_per_preset, real=args.real,
        seed=args.seed, real_crop=args.real_crop,
        command="python -m backend " + shlex.join(sys.argv[1:]),
    )  # fmt: skip
    print(f"corpus written to {out}")
    return 0


def run_encoder(args: argparse.Namespace) -> int:
    from backend.pretrain.train import pretrain

    if not (args.corpus / "images.npy").is_file():
        raise UserError(f"--corpus {args.corpus}: no images.npy (make one with `pretrain corpus`)")
    if args.steps < 1:
        raise UserError("--steps must be at least 1")
    out = pretrain(
        args.corpus, args.out, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
        seed=args.seed, resume=not args.fresh, max_seconds=args.max_seconds,
        command="python -m backend " + shlex.join(sys.argv[1:]),
    )  # fmt: skip
    print(f"general encoder written to {out}")
    return 0
