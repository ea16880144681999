"""``python -m backend train encoder|autoencoder|classifier|emulator --survey NAME``."""

from __future__ import annotations

import argparse
import json

from backend.errors import UserError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model on a survey and register a new version")
    p.add_argument("kind", choices=("encoder", "autoencoder", "classifier", "emulator"))
    p.add_argument("--survey", required=True)
    p.add_argument("--steps", type=int, help="optimiser steps (the training budget)")
    p.add_argument("--epochs", type=int, help="epochs, when no --steps is given")
    p.add_argument(
        "--max-seconds", type=float, help="optional wall-clock cap (reported when it cuts training)"
    )
    p.add_argument(
        "--init",
        choices=("general", "scratch"),
        default="general",
        help="encoder: continue the shipped general encoder (default) or start from random weights",
    )
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--label-column", help="classifier: catalog column holding class names")
    p.add_argument("--label-fraction", type=float, default=1.0, help="classifier: labels used")
    p.add_argument("--encoder", help="classifier/emulator: encoder version (default: active)")
    p.add_argument(
        "--targets",
        default="redshift,sersic_n,half_light_radius,ellipticity",
        help="emulator: comma-separated numeric catalog columns",
    )
    p.add_argument("--no-activate", action="store_true", help="register without activating")
    p.add_argument(
        "--force",
        action="store_true",
        help="classifier: activate even if the gate finds it worse than the active one",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from backend.modelling import train

    lowest = 0 if (args.kind == "encoder" and args.init == "general") else 1
    if args.steps is not None and args.steps < lowest:
        raise UserError(
            f"--steps must be at least {lowest}"
            + (" (0 registers the general encoder as shipped)" if lowest == 0 else "")
        )
    common = {"seed": args.seed, "activate": not args.no_activate}
    if args.epochs is not None:
        common["epochs"] = args.epochs
    if args.kind == "classifier":
        if not args.label_column:
            raise UserError("train classifier needs --label-column (e.g. true_class)")
        from backend.jobs.kinds import gate_catalog_classifier
        from backend.modelling.infer import predict_version

        version = train.train_classifier(
            args.survey, label_column=args.label_column, encoder_version=args.encoder,
            label_fraction=args.label_fraction, batch_size=args.batch_size,
            **{**common, "activate": False},
        )  # fmt: skip
        if not args.no_activate:
            predict_version(args.survey, "classifier", version.version)
            decision = gate_catalog_classifier(
                args.survey, version.version, args.label_column, force=args.force
            )
            state = "activated" if decision.activate else "NOT activated"
            print(f"classifier {version.version} {state}: {decision.reason}")
        from backend.labels.adopt import adopt_column_classes

        classes = [str(c) for c in version.config.get("classes", [])]
        print(adopt_column_classes(args.survey, classes, args.label_column).message)
    elif args.kind == "emulator":
        version = train.train_emulator(
            args.survey, targets=args.targets.split(","), encoder_version=args.encoder,
            steps=args.steps, max_seconds=args.max_seconds, batch_size=args.batch_size, **common,
        )  # fmt: skip
    elif args.kind == "encoder":
        version = train.train_encoder(
            args.survey, init=args.init, steps=args.steps, max_seconds=args.max_seconds,
            batch_size=args.batch_size, **common,
        )  # fmt: skip
    else:
        version = train.train_autoencoder(
            args.survey, steps=args.steps, max_seconds=args.max_seconds,
            batch_size=args.batch_size, **common,
        )  # fmt: skip
    warning = version.meta.get("training", {}).get("budget", {}).get("warning")
    if warning:
        print(f"warning: {warning}")
    headline = {k: v for k, v in version.metrics.items() if isinstance(v, int | float)}
    print(f"{args.kind} {version.version} saved to {version.path}")
    print(json.dumps(headline, indent=2))
    return 0
