"""Encoders made elsewhere, behind the interface of a LatentSky encoder.

A wrapper reads a survey's raw cutouts (``bands``: the survey's bands, as a trained encoder
does) and maps them to the network's native input: channels picked by band name, or an RGB
colour composite of the survey's bands (:class:`~models.adapter.InputAdapter`), resampled to
``input_size`` (area average when shrinking, bilinear when enlarging), then ``(x - mean) / std``
per channel. ``embed(x)`` gives (B, embedding_dim) vectors, so ``models.embed`` and the
backend's ``embed_survey`` treat it like a SimCLR encoder.

Kinds (``config["kind"]``): ``timm_encoder`` (a timm architecture; weights in the registry's
state dict), ``torchscript_encoder`` and ``onnx_encoder`` (the network is a file in the model
version's folder: :func:`build` needs that folder), and ``imported_embeddings`` (vectors
computed elsewhere for one survey's objects: nothing to run, so it cannot embed new images).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.adapter import AdapterConfig, InputAdapter
from models.errors import BandMismatchError, InputShapeError, band_indices
from models.foreign_files import ForeignModelError, create_timm_model

FILE_KINDS = ("torchscript_encoder", "onnx_encoder")


def _per_channel(
    values: float | Sequence[float] | None, n: int, default: float, what: str
) -> list[float]:
    if values is None:
        return [default] * n
    out = [float(values)] * n if isinstance(values, int | float) else [float(v) for v in values]
    if len(out) == 1:
        out = out * n
    if len(out) != n:
        raise ForeignModelError(f"{what} has {len(out)} values for {n} input channels")
    if not all(np.isfinite(out)):
        raise ForeignModelError(f"{what} must be finite numbers, got {out}")
    return out


class ForeignEncoder(nn.Module):
    """Survey cutouts -> native input (channels, size, mean/std) -> a foreign network."""

    kind: ClassVar[str] = "foreign_encoder"

    def __init__(
        self,
        bands: Sequence[str],
        adapter: AdapterConfig | Mapping[str, Any],
        *,
        mean: float | Sequence[float] | None = None,
        std: float | Sequence[float] | None = None,
        embedding_dim: int | None = None,
        source: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.bands = [str(b) for b in bands]
        cfg = (
            adapter
            if isinstance(adapter, AdapterConfig)
            else AdapterConfig.from_dict(dict(adapter))
        )
        if cfg.mode == "bands":
            self._select = band_indices(cfg.bands, self.bands)  # a subset, in the model's order
        elif cfg.bands != self.bands:
            raise BandMismatchError(cfg.bands, self.bands)
        else:
            self._select = list(range(len(self.bands)))
        if cfg.size is None:
            raise ForeignModelError("a foreign encoder needs its native input size")
        self.adapter = InputAdapter(cfg)
        n = len(cfg.channels)
        mean_ = _per_channel(mean, n, 0.0, "mean")
        std_ = _per_channel(std, n, 1.0, "std")
        if not all(s > 0 for s in std_):
            raise ForeignModelError(f"std must be positive, got {std_}")
        self.register_buffer("mean", torch.tensor(mean_).view(1, n, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std_).view(1, n, 1, 1), persistent=False)
        self.embedding_dim = None if embedding_dim is None else int(embedding_dim)
        self.source = dict(source or {})

    # -- input -----------------------------------------------------------------------------
    @property
    def input_channels(self) -> list[str]:
        """The network's input channels: band names, or R, G, B for a colour composite."""
        return self.adapter.cfg.channels

    @property
    def input_size(self) -> int:
        return int(self.adapter.cfg.size or 0)

    def network_input(self, x: Tensor) -> Tensor:
        """(B, n_bands, H, W) raw cutouts -> (B, channels, size, size) normalised input."""
        if x.ndim != 4 or x.shape[1] != len(self.bands):
            raise InputShapeError(
                f"{self.kind} expects (batch, {len(self.bands)} bands ({', '.join(self.bands)}), "
                f"height, width) cutouts, got shape {tuple(x.shape)}"
            )
        if self._select != list(range(len(self.bands))):
            x = x[:, self._select]
        x = self.adapter(x.float())
        return (x - self.mean) / self.std

    # -- output ----------------------------------------------------------------------------
    def features(self, x: Tensor) -> Tensor:
        """The network on its native input."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        out = self.features(self.network_input(x))
        if isinstance(out, tuple | list):
            out = out[0]
        return out.flatten(1) if out.ndim > 2 else out

    def embed(self, x: Tensor, l2_normalize: bool = False) -> Tensor:
        """(B, embedding_dim) vectors of raw cutouts, optionally scaled to unit length."""
        h = self(x)
        return F.normalize(h.float(), dim=1) if l2_normalize else h

    # -- persistence -----------------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "bands": list(self.bands),
            "adapter": self.adapter.cfg.to_dict(),
            "input_size": self.input_size,
            "input_channels": self.input_channels,
            "mean": self.mean.flatten().tolist(),
            "std": self.std.flatten().tolist(),
            "embedding_dim": self.embedding_dim,
            "source": dict(self.source),
        }

    @staticmethod
    def _common(config: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "bands": config["bands"],
            "adapter": config["adapter"],
            "mean": config.get("mean"),
            "std": config.get("std"),
            "embedding_dim": config.get("embedding_dim"),
            "source": config.get("source"),
        }


class TimmEncoder(ForeignEncoder):
    """A timm architecture without its classifier (``num_classes=0``): pooled features."""

    kind = "timm_encoder"

    def __init__(
        self,
        bands: Sequence[str],
        adapter: Any,
        *,
        arch: str,
        model_args: Mapping[str, Any] | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(bands, adapter, **kw)
        self.arch = str(arch)
        self.model_args = {**dict(model_args or {}), "in_chans": len(self.input_channels)}
        self.net = create_timm_model(self.arch, self.model_args)

    def features(self, x: Tensor) -> Tensor:
        return self.net(x.contiguous(memory_format=torch.channels_last))

    @property
    def config(self) -> dict[str, Any]:
        return {**super().config, "arch": self.arch, "model_args": dict(self.model_args)}

    @classmethod
    def from_config(cls, config: Mapping[str, Any], directory: Path | None = None) -> TimmEncoder:
        return cls(arch=config["arch"], model_args=config.get("model_args"), **cls._common(config))


class _FileEncoder(ForeignEncoder):
    """A network stored as a file in the model version's folder (not in the state dict)."""

    def __init__(self, bands: Sequence[str], adapter: Any, *, file: str | Path, **kw: Any) -> None:
        super().__init__(bands, adapter, **kw)
        self.file = Path(file)
        if not self.file.is_file():
            raise ForeignModelError(f"{self.file}: no such file")

    @property
    def config(self) -> dict[str, Any]:
        return {**super().config, "file": self.file.name}

    @classmethod
    def from_config(cls, config: Mapping[str, Any], directory: Path | None = None) -> _FileEncoder:
        if directory is None:
            raise ForeignModelError(
                f"a {config.get('kind')} is built from its model folder (file {config.get('file')})"
            )
        return cls(file=Path(directory) / str(config["file"]), **cls._common(config))

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        """The weights are in the file: an empty state dict (the registry's placeholder) is
        accepted as is."""
        if not state_dict:
            return nn.modules.module._IncompatibleKeys([], [])
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


class TorchScriptEncoder(_FileEncoder):
    """A ``torch.jit`` file, run in float32 (autocast off: traced graphs fix their dtypes)."""

    kind = "torchscript_encoder"

    def __init__(self, bands: Sequence[str], adapter: Any, *, file: str | Path, **kw: Any) -> None:
        super().__init__(bands, adapter, file=file, **kw)
        try:
            with warnings.catch_warnings():  # deprecated in torch 2.9+, still what people ship
                warnings.simplefilter("ignore", DeprecationWarning)
                net = torch.jit.load(str(self.file), map_location="cpu")
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ForeignModelError(
                f"{self.file}: not a TorchScript file ({type(exc).__name__}: {reason})"
            ) from exc
        self.net = net.eval()

    def features(self, x: Tensor) -> Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return self.net(x.float())

    def _apply(self, fn: Any, recurse: bool = True) -> TorchScriptEncoder:
        with warnings.catch_warnings():  # script modules warn about .grad on .to()
            warnings.simplefilter("ignore", UserWarning)
            return super()._apply(fn, recurse)


class _Shared:
    """Holds an object every deep copy shares (an ONNX Runtime session cannot be copied)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __deepcopy__(self, memo: dict) -> _Shared:
        return self


def onnx_providers() -> list[str]:
    """CUDA first when ONNX Runtime has it and torch sees a GPU, then the CPU."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    wanted = ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in available and torch.cuda.is_available():
        wanted.insert(0, "CUDAExecutionProvider")
    return wanted


def onnx_session(path: Path) -> Any:
    """An ONNX Runtime session on ``path`` using as many threads as torch does."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = max(torch.get_num_threads(), 1)
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=onnx_providers())
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ForeignModelError(
            f"{path}: cannot load it as ONNX ({type(exc).__name__}: {reason})"
        ) from exc


class OnnxEncoder(_FileEncoder):
    """An ONNX file run by ONNX Runtime; a fixed batch size is served by padded chunks."""

    kind = "onnx_encoder"

    def __init__(self, bands: Sequence[str], adapter: Any, *, file: str | Path, **kw: Any) -> None:
        super().__init__(bands, adapter, file=file, **kw)
        session = onnx_session(self.file)
        self._session = _Shared(session)
        first = session.get_inputs()[0]
        self.input_name = first.name
        self.input_shape = list(first.shape)
        batch = self.input_shape[0] if self.input_shape else None
        self.fixed_batch = batch if isinstance(batch, int) and batch > 0 else None

    def features(self, x: Tensor) -> Tensor:
        arr = np.ascontiguousarray(x.detach().float().cpu().numpy())
        session = self._session.value
        step = self.fixed_batch or len(arr)
        outs = []
        for lo in range(0, len(arr), max(step, 1)):
            chunk = arr[lo : lo + step]
            n = len(chunk)
            if self.fixed_batch and n < step:
                pad = np.zeros((step - n, *chunk.shape[1:]), dtype=chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            out = np.asarray(session.run(None, {self.input_name: chunk})[0], dtype=np.float32)
            outs.append(out[:n])
        result = (
            np.concatenate(outs) if outs else np.zeros((0, self.embedding_dim or 0), np.float32)
        )
        return torch.from_numpy(result).to(x.device)


class ImportedEmbeddings(nn.Module):
    """Vectors computed elsewhere for the objects of one survey: nothing to run.

    It stands in the registry as an encoder (its ``embeddings.npy`` product was written at
    import), so maps, indexes and rankings use it; embedding new images raises.
    """

    kind = "imported_embeddings"

    def __init__(
        self,
        bands: Sequence[str],
        embedding_dim: int,
        *,
        name: str = "",
        survey: str = "",
        source: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.bands = [str(b) for b in bands]
        self.embedding_dim = int(embedding_dim)
        self.name = str(name)
        self.survey = str(survey)
        self.source = dict(source or {})

    def embed(self, x: Tensor, l2_normalize: bool = False) -> Tensor:
        raise ForeignModelError(self.cannot_embed_message())

    def forward(self, x: Tensor) -> Tensor:
        return self.embed(x)

    def cannot_embed_message(self) -> str:
        origin = self.source.get("file", "a file")
        return (
            f"embeddings {self.name or origin!r} were imported from {origin} for the objects of "
            f"survey {self.survey!r}; they cannot embed new images (uploads, other surveys): "
            "use a trained or imported encoder for that"
        )

    @property
    def config(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "bands": list(self.bands),
            "embedding_dim": self.embedding_dim,
            "name": self.name,
            "survey": self.survey,
            "source": dict(self.source),
        }

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], directory: Path | None = None
    ) -> ImportedEmbeddings:
        return cls(
            config["bands"],
            config["embedding_dim"],
            name=config.get("name", ""),
            survey=config.get("survey", ""),
            source=config.get("source"),
        )


FOREIGN_CLASSES: dict[str, Any] = {
    cls.kind: cls for cls in (TimmEncoder, TorchScriptEncoder, OnnxEncoder, ImportedEmbeddings)
}


def build(config: Mapping[str, Any], directory: Path | None = None) -> nn.Module:
    """The wrapper ``config`` describes (``directory``: the model version's folder)."""
    return FOREIGN_CLASSES[config["kind"]].from_config(config, directory)
