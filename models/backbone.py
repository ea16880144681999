"""Compact residual CNN: (B, C, H, W) cutouts of any size -> (B, embedding_dim) features.

Stem 3x3 conv (stride 2), then one basic residual block per stage (each stride 2 by default),
global average pooling and a linear layer. At 64x64x4 the default is ~0.3 M parameters and
~13 M multiply-adds per image: > 1,000 images/s on two CPU cores (bench/bench_inference.py).
With ``input_pool=2`` (the encoder ``prepare`` trains) the same weights see a 2x2-averaged
cutout: ~3.5 M multiply-adds per image.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


@dataclass
class BackboneConfig:
    """Architecture of :class:`ResidualBackbone`.

    in_channels: input bands.
    embedding_dim: size of the output representation (linear layer after global pooling).
    stem_width: channels of the 3x3 stem convolution.
    widths, strides: output channels and stride of each residual stage.
    blocks_per_stage: basic residual blocks per stage (only the first one strides).
    stem_stride: stride of the stem convolution.
    input_pool: average-pool the (normalised) input by this factor before the stem: an
        anti-aliased downsampling that divides the convolution cost by about
        ``input_pool**2`` (1 = full resolution).
    """

    in_channels: int = 4
    embedding_dim: int = 128
    stem_width: int = 32
    widths: tuple[int, ...] = (32, 64, 128)
    strides: tuple[int, ...] = (2, 2, 2)
    blocks_per_stage: int = 1
    stem_stride: int = 2
    input_pool: int = 1

    def __post_init__(self) -> None:
        self.widths = tuple(int(w) for w in self.widths)
        self.strides = tuple(int(s) for s in self.strides)
        if len(self.widths) != len(self.strides) or not self.widths:
            raise ValueError("backbone widths and strides must be non-empty and of equal length")
        if min(self.in_channels, self.embedding_dim, self.stem_width, *self.widths) < 1:
            raise ValueError("backbone sizes must be positive")
        if min(self.stem_stride, self.input_pool, *self.strides) < 1:
            raise ValueError("backbone strides and input_pool must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["widths"], data["strides"] = list(self.widths), list(self.strides)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackboneConfig:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown backbone parameters: {sorted(unknown)}")
        return cls(**data)


class ConvBN(nn.Module):
    """Conv (no bias) + BatchNorm (+ ReLU); :meth:`fuse` folds the BN in for inference."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, relu: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)
        self.bn: nn.Module = nn.BatchNorm2d(cout)
        self.relu = relu

    def forward(self, x: Tensor) -> Tensor:
        x = self.bn(self.conv(x))
        return F.relu(x, inplace=True) if self.relu else x

    def fuse(self) -> None:
        if isinstance(self.bn, nn.BatchNorm2d):
            self.conv = fuse_conv_bn_eval(self.conv.eval(), self.bn.eval())
            self.bn = nn.Identity()


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity (or 1x1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = ConvBN(cin, cout, 3, stride, relu=True)
        self.conv2 = ConvBN(cout, cout, 3, 1, relu=False)
        nn.init.zeros_(self.conv2.bn.weight)  # each block starts as the identity
        self.shortcut = (
            ConvBN(cin, cout, 1, stride, relu=False) if (cin != cout or stride != 1) else None
        )

    def forward(self, x: Tensor) -> Tensor:
        skip = x if self.shortcut is None else self.shortcut(x)
        return F.relu(self.conv2(self.conv1(x)) + skip, inplace=True)


class ResidualBackbone(nn.Module):
    """The shared image encoder; ``forward`` expects already normalised input."""

    def __init__(self, config: BackboneConfig | None = None) -> None:
        super().__init__()
        self.cfg = config or BackboneConfig()
        c = self.cfg
        self.stem = ConvBN(c.in_channels, c.stem_width, 3, c.stem_stride, relu=True)
        blocks: list[nn.Module] = []
        width = c.stem_width
        for out, stride in zip(c.widths, c.strides, strict=True):
            for i in range(c.blocks_per_stage):
                blocks.append(BasicBlock(width, out, stride if i == 0 else 1))
                width = out
        self.stages = nn.Sequential(*blocks)
        self.head = nn.Linear(width, c.embedding_dim)

    @property
    def embedding_dim(self) -> int:
        return self.cfg.embedding_dim

    def feature_map(self, x: Tensor) -> Tensor:
        """Last convolutional feature map (B, widths[-1], H', W')."""
        if self.cfg.input_pool > 1:
            x = F.avg_pool2d(x, self.cfg.input_pool, ceil_mode=True)
        # Channels-last activations take oneDNN's fast convolutions on CPU (a SimCLR training
        # step ~12% faster); a no-op for input that already is (models.inference does that).
        x = x.contiguous(memory_format=torch.channels_last)
        return self.stages(self.stem(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.feature_map(x).mean(dim=(-2, -1)))


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with every :class:`ConvBN` folded (faster inference)."""
    fused = copy.deepcopy(model).eval()
    for module in fused.modules():
        if isinstance(module, ConvBN):
            module.fuse()
    return fused


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
