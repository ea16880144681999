"""Self-supervised pretraining of the general encoder on a corpus, and its shipped files.

The general encoder is a :class:`models.SimCLREncoder` that reads 64x64 colour composites
(channels R, G, B in [0, 1]). Its files (``weights.pt``, ``model.json``, ``card.json``) live in
a folder such as ``assets/encoders/general-v1``; :mod:`backend.modelling.general` takes it to a
survey through an input adapter.
"""

from __future__ import annotations

import json
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from backend.atomic import atomic_write, atomic_write_json
from backend.pretrain.card import write_card
from backend.pretrain.corpus import load_corpus

CHANNELS = ["R", "G", "B"]
NATIVE_SIZE = 64


def build_general_encoder(images: np.ndarray, *, embedding_dim: int = 128, seed: int = 0) -> Any:
    """A fresh general encoder with normalisation fitted on ``images`` (N, 3, 64, 64)."""
    from models import AugmentConfig, BackboneConfig, SimCLREncoder, seed_everything
    from models.adapter import AdapterConfig
    from models.normalize import fit_normalization

    seed_everything(seed)
    return SimCLREncoder(
        CHANNELS,
        backbone=BackboneConfig(embedding_dim=embedding_dim, stem_width=48, widths=(48, 96, 192)),
        normalization=fit_normalization(images, CHANNELS, seed=seed),
        augment=AugmentConfig.composite(flip=False),
        adapter=AdapterConfig(bands=CHANNELS, size=NATIVE_SIZE),
    )


def pretrain(
    corpus: Path,
    out: Path,
    *,
    steps: int,
    batch_size: int = 256,
    lr: float = 2e-3,
    seed: int = 0,
    resume: bool = True,
    max_seconds: float | None = None,
    checkpoint_every_steps: int = 100,
    progress_bar: bool = True,
    command: str = "",
) -> Path:
    """Train on the corpus for ``steps`` optimiser steps and write the encoder into ``out``.

    Checkpoints go to ``out/checkpoint.pt`` every ``checkpoint_every_steps``; with ``resume`` a
    killed run continues from there (same schedule, same data order).
    """
    import torch

    from models import ArrayDataset, TrainConfig, fit

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    images, catalog = load_corpus(corpus)
    model = build_general_encoder(images, seed=seed)
    data = ArrayDataset(images)
    cfg = TrainConfig(
        max_steps=steps, batch_size=batch_size, lr=lr, seed=seed, warmup_fraction=0.03,
        block_size=1, checkpoint_path=str(out / "checkpoint.pt"),
        checkpoint_every_steps=checkpoint_every_steps, resume=resume, restore_best=False,
        max_seconds=max_seconds, progress_bar=progress_bar,
        device="cuda" if torch.cuda.is_available() else "cpu",
    )  # fmt: skip
    started = time.perf_counter()
    result = fit(model, data, cfg)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_write(out / "weights.pt", lambda tmp: torch.save(state, tmp))
    atomic_write_json(out / "model.json", model.config)
    card = {
        "name": out.name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "architecture": "SimCLR ResidualBackbone (models.backbone), projection head 128-256-64",
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "input": {"channels": CHANNELS, "size": NATIVE_SIZE, "range": "[0, 1] colour composite"},
        "corpus": {
            "path": str(corpus),
            "n_images": len(images),
            "by_source": catalog.groupby(["source", "preset"]).size().rename("n")
            .reset_index().to_dict(orient="records"),
        },
        "augmentations": model.augmenter.config,
        "training": {
            "steps": result.steps, "planned_steps": result.planned_steps,
            "stopped": result.stopped, "batch_size": batch_size, "lr": lr, "seed": seed,
            "seconds_this_run": time.perf_counter() - started, "final_loss": result.train_loss,
            "device": result.device, "torch": torch.__version__,
            "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
        },
        "command": command,
        "corpus_command": corpus_command(corpus),
    }  # fmt: skip
    write_card(out, card)
    return out


def corpus_command(corpus: Path) -> str:
    """The ``pretrain corpus`` command that made ``corpus`` (recorded by it), if known."""
    path = Path(corpus) / "command.txt"
    return path.read_text().strip() if path.is_file() else ""


def load_card(folder: Path) -> dict[str, Any]:
    return json.loads((Path(folder) / "card.json").read_text())
