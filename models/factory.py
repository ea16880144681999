"""Model kinds by name: build any model from its stored ``config`` dict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from models.autoencoder import ConvAutoencoder
from models.classifier import EmbeddingClassifier, ImageClassifier
from models.contrastive import SimCLREncoder
from models.emulator import Emulator

MODEL_CLASSES: dict[str, type[nn.Module]] = {
    cls.kind: cls
    for cls in (SimCLREncoder, ConvAutoencoder, EmbeddingClassifier, ImageClassifier, Emulator)
}

# Encoders made elsewhere (models.foreign), imported on demand: timm and ONNX Runtime are heavy.
FOREIGN_KINDS = ("timm_encoder", "torchscript_encoder", "onnx_encoder", "imported_embeddings")


def build_model(config: dict[str, Any], directory: str | Path | None = None) -> nn.Module:
    """A freshly initialised model of ``config["kind"]`` (load its ``state_dict`` next).

    ``directory`` is the model version's folder: TorchScript and ONNX encoders load their
    network file from it.
    """
    kind = config.get("kind")
    if kind in FOREIGN_KINDS:
        from models.foreign import build

        return build(config, None if directory is None else Path(directory))
    if kind not in MODEL_CLASSES:
        known = sorted([*MODEL_CLASSES, *FOREIGN_KINDS])
        raise ValueError(f"unknown model kind {kind!r}; known: {known}")
    return MODEL_CLASSES[kind].from_config(config)
