"""``python -m backend import encoder|embeddings``: bring in models and vectors made elsewhere.

``import encoder PATH --format timm|torchscript|onnx --survey S`` registers a community encoder
(e.g. Zoobot's timm encoders) as an encoder version; ``import embeddings FILE --survey S``
registers precomputed vectors as one. Both check everything before registering anything.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="import a foreign encoder or precomputed embeddings")
    what = p.add_subparsers(dest="what", metavar="WHAT", required=True)

    enc = what.add_parser(
        "encoder",
        help="a timm, TorchScript or ONNX encoder",
        description="Register an encoder made elsewhere; `embed` then works with it.",
    )
    enc.add_argument("path", type=Path, help="weights file, hub cache folder, .pt or .onnx file")
    enc.add_argument("--format", required=True, choices=("timm", "torchscript", "onnx"))
    enc.add_argument("--survey", required=True, help="survey whose cutouts it will embed")
    enc.add_argument("--arch", help="timm architecture (e.g. resnet18, convnext_nano)")
    enc.add_argument("--input-size", type=int, help="native input side in pixels")
    enc.add_argument(
        "--channels",
        help="input channels: survey band names (g,r,i) or R,G,B for the survey's colour composite",
    )
    enc.add_argument("--mean", help="per-channel mean subtracted (comma-separated, or one value)")
    enc.add_argument("--std", help="per-channel std divided by (comma-separated, or one value)")
    enc.add_argument("--embedding-dim", type=int, help="expected embedding size (checked)")
    enc.add_argument(
        "--reference-survey",
        help="survey whose bulk the OOD score measures distance to (default: --survey); a "
        "stratified sample of it is embedded and stored with the model",
    )
    enc.add_argument(
        "--reference-size", type=int, metavar="N",
        help="objects in that sample (default 2000; fewer: a quicker import, a coarser reference)",
    )  # fmt: skip
    enc.add_argument("--activate", action="store_true", help="make it the survey's encoder")
    enc.set_defaults(func=run_encoder)

    emb = what.add_parser(
        "embeddings",
        help="precomputed vectors (parquet, npy, HDF5)",
        description="Register precomputed embeddings of a survey's objects as an encoder version.",
    )
    emb.add_argument("path", type=Path, help=".parquet, .npy or .h5/.hdf5 file")
    emb.add_argument("--survey", required=True)
    emb.add_argument("--id-column", help="column (HDF5: dataset) holding the object ids")
    emb.add_argument("--match-radius", type=float, help="match by RA/Dec within ARCSEC instead")
    emb.add_argument("--ra-column", help="RA column/dataset (degrees) for --match-radius")
    emb.add_argument("--dec-column", help="Dec column/dataset (degrees) for --match-radius")
    emb.add_argument("--vector-column", help="list column (HDF5: 2-D dataset) of the vectors")
    emb.add_argument("--ids", type=Path, help=".npy only: ids, one per line (or an .npy array)")
    emb.add_argument("--name", help="label shown for these embeddings (default: file name)")
    emb.add_argument("--embedding-dim", type=int, help="expected dimension (checked)")
    emb.add_argument(
        "--dtype", choices=("auto", "float32", "float16"), default="auto",
        help="how the product stores them (auto: float16 above "
        "LATENTSKY_FLOAT16_EMBEDDINGS_ABOVE objects, default 50M)",
    )  # fmt: skip
    emb.add_argument("--activate", action="store_true", help="make it the survey's encoder")
    emb.set_defaults(func=run_embeddings)


def _floats(text: str | None, option: str) -> list[float] | None:
    from backend.errors import UserError

    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{option} {text!r}: give numbers separated by commas") from None


def run_encoder(args: argparse.Namespace) -> int:
    from backend.modelling.foreign import EncoderRequest, import_encoder

    req = EncoderRequest(
        path=args.path,
        fmt=args.format,
        survey=args.survey,
        arch=args.arch,
        input_size=args.input_size,
        channels=[c.strip() for c in args.channels.split(",") if c.strip()]
        if args.channels
        else None,
        mean=_floats(args.mean, "--mean"),
        std=_floats(args.std, "--std"),
        embedding_dim=args.embedding_dim,
        reference_survey=args.reference_survey,
        reference_size=args.reference_size,
    )
    version, notes = import_encoder(req, activate=args.activate)
    cfg = version.config
    side = cfg["input_size"]
    print(
        f"imported {args.format} encoder {args.path} as encoder {version.version} for survey "
        f"{args.survey}: input {','.join(cfg['input_channels'])} at {side}x{side} px, "
        f"{cfg['embedding_dim']}-d embeddings{' (active)' if args.activate else ''}"
    )
    ref = version.meta["training"]["ood_reference"]
    print(
        f"  OOD reference: {ref['survey']} itself ({ref['objects']} of {ref['of']} objects, "
        "stratified): OOD scores measure distance to that survey's bulk"
    )
    for note in notes:
        print(f"  note: {note}")
    print(f"next: python -m backend embed --survey {args.survey} --model {version.version}")
    print("then " + next_step(args.survey, version.version, args.activate).removeprefix("next: "))
    return 0


def run_embeddings(args: argparse.Namespace) -> int:
    """Import the vectors as an encoder version's embeddings product, with its lineage record
    (the pipeline's ``ensure`` then takes them as current, and makes map, index and scores)."""
    from backend.modelling.imported import EmbeddingsRequest, import_embeddings
    from backend.pipeline.build import record
    from backend.pipeline.kinds import Target
    from backend.pipeline.lineage import Timer

    req = EmbeddingsRequest(
        path=args.path,
        survey=args.survey,
        id_column=args.id_column,
        match_radius=args.match_radius,
        ra_column=args.ra_column,
        dec_column=args.dec_column,
        vector_column=args.vector_column,
        ids_file=args.ids,
        name=args.name,
        embedding_dim=args.embedding_dim,
        dtype=args.dtype,
    )
    timer = Timer()
    version, path, notes = import_embeddings(req, activate=args.activate)
    record(Target("embeddings", args.survey, "encoder", version.version), None, timer.seconds)
    print(
        f"imported {version.config['embedding_dim']}-d embeddings {version.config['name']!r} "
        f"as encoder {version.version} for survey {args.survey}"
        f"{' (active)' if args.activate else ''}: {path}"
        f"{' (stored as float16)' if version.config['source']['stored_dtype'] == 'float16' else ''}"
    )
    for note in notes:
        print(f"  note: {note}")
    print(next_step(args.survey, version.version, args.activate))
    return 0


def next_step(survey: str, version: str, active: bool) -> str:
    """What to run after importing encoder ``version``'s embeddings of ``survey``: the default
    products (map, index, anomaly and OOD scores; map tiles for a big survey)."""
    from backend.pipeline.kinds import default_products

    made = ", ".join(p for p in default_products(survey) if p not in ("embeddings", "predictions"))
    if active:
        return f"next: python -m backend products --survey {survey} --ensure ({made})"
    return (
        f"next: python -m backend map --survey {survey} --model {version}, then "
        f"`ood --survey {survey} --encoder {version}` (or activate it and run `products "
        f"--survey {survey} --ensure`: {made})"
    )
