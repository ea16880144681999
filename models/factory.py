"""Model kinds by name: build any model from its stored ``config`` dict."""

from __future__ import annotations

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


def build_model(config: dict[str, Any]) -> nn.Module:
    """A freshly initialised model of ``config["kind"]`` (load its ``state_dict`` next)."""
    kind = config.get("kind")
    if kind not in MODEL_CLASSES:
        raise ValueError(f"unknown model kind {kind!r}; known: {sorted(MODEL_CLASSES)}")
    return MODEL_CLASSES[kind].from_config(config)
