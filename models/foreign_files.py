"""Reading encoders made elsewhere: timm (state dicts, Hugging Face hub cache folders).

Nothing here touches the network: timm models are built with ``pretrained=False`` and their
weights come from a local file. Errors are :class:`ForeignModelError` whose message names the
file and says what is wrong.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from models.errors import ModelError

STATE_DICT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
HUB_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module")
_PREFIXES = ("module.", "model.", "encoder.", "_orig_mod.")
_OPTIONAL_KEYS = ("num_batches_tracked",)  # BatchNorm counters: absent from some checkpoints


class ForeignModelError(ModelError):
    """An encoder file or embeddings that cannot be used (the message names the file)."""


def import_timm() -> Any:
    """``import timm`` without any network access.

    timm imports torchvision, and a PyPI torchvision built for CUDA beside a CPU-only torch
    cannot load its C++ operators, which makes ``import torchvision`` fail on the two operators
    it registers unconditionally (``nms``, ``qnms``). timm needs none of them: when that is the
    failure, their schemas are declared (calling them still fails) and the import is retried.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import timm
    except RuntimeError as exc:
        if "torchvision::" not in str(exc):
            raise
        _declare_missing_torchvision_ops()
        import timm
    return timm


_TORCHVISION_LIBS: list[Any] = []  # keeps the operator definitions alive


def _declare_missing_torchvision_ops() -> None:
    for name in [m for m in sys.modules if m.split(".")[0] in ("torchvision", "timm")]:
        del sys.modules[name]
    lib = torch.library.Library("torchvision", "FRAGMENT")
    for op in ("nms", "qnms"):
        if not _has_schema(op):
            lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _TORCHVISION_LIBS.append(lib)


def _has_schema(op: str) -> bool:
    try:
        getattr(torch.ops.torchvision, op)
    except (AttributeError, RuntimeError):
        return False
    return True


def create_timm_model(arch: str, model_args: Mapping[str, Any] | None = None) -> nn.Module:
    """``timm.create_model(arch, pretrained=False, num_classes=0, **model_args)``."""
    timm = import_timm()
    if not timm.is_model(arch):
        near = timm.list_models(f"*{arch}*")[:5]
        hint = f" (similar: {', '.join(near)})" if near else ""
        raise ForeignModelError(f"unknown timm architecture {arch!r}{hint}")
    args = {
        k: v for k, v in dict(model_args or {}).items() if k not in ("num_classes", "pretrained")
    }
    try:
        return timm.create_model(arch, pretrained=False, num_classes=0, **args)
    except (TypeError, ValueError, RuntimeError, AssertionError) as exc:
        raise ForeignModelError(f"timm cannot build {arch!r} with {args}: {exc}") from exc


@dataclass
class HubSnapshot:
    """A timm model folder as the Hugging Face hub cache lays it out."""

    folder: Path
    weights: Path
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def architecture(self) -> str | None:
        return self.config.get("architecture")

    @property
    def pretrained_cfg(self) -> dict[str, Any]:
        return dict(self.config.get("pretrained_cfg") or {})

    @property
    def model_args(self) -> dict[str, Any]:
        return dict(self.config.get("model_args") or {})


def find_hub_snapshot(path: Path) -> HubSnapshot:
    """The snapshot in ``models--ORG--NAME`` (``refs/main``, else the newest), or ``path``
    itself when it holds ``config.json`` and the weights."""
    folder = path
    if not (path / "config.json").is_file() and (path / "snapshots").is_dir():
        ref = path / "refs" / "main"
        wanted = ref.read_text().strip() if ref.is_file() else ""
        snapshots = sorted(
            (p for p in (path / "snapshots").iterdir() if p.is_dir()),
            key=lambda p: p.stat().st_mtime,
        )
        chosen = [p for p in snapshots if p.name == wanted] or snapshots[-1:]
        if not chosen:
            raise ForeignModelError(f"{path}: no snapshot in {path / 'snapshots'}")
        folder = chosen[0]
    weights = next((folder / n for n in HUB_WEIGHT_FILES if (folder / n).is_file()), None)
    if weights is None:
        raise ForeignModelError(
            f"{folder}: no weights file ({' or '.join(HUB_WEIGHT_FILES)}) in this folder"
        )
    config: dict[str, Any] = {}
    if (folder / "config.json").is_file():
        try:
            config = json.loads((folder / "config.json").read_text())
        except (OSError, ValueError) as exc:
            raise ForeignModelError(f"{folder / 'config.json'}: cannot read it ({exc})") from exc
        if not isinstance(config, dict):
            raise ForeignModelError(f"{folder / 'config.json'}: not a JSON object")
    return HubSnapshot(folder, weights, config)


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """Tensors of a checkpoint file (safetensors or ``torch.save``; no pickled code runs).

    Lightning-style wrappers (``{"state_dict": ...}``, ``{"model": ...}``) are unwrapped.
    """
    try:
        if path.name.endswith(".safetensors"):
            from safetensors.torch import load_file

            payload: Any = load_file(str(path), device="cpu")
        else:
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch/safetensors raise many types for bad files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ForeignModelError(
            f"{path}: cannot read it as a state dict ({type(exc).__name__}: {reason})"
        ) from exc
    for _ in range(2):
        if isinstance(payload, Mapping):
            inner = next(
                (payload[k] for k in _WRAPPER_KEYS if isinstance(payload.get(k), Mapping)), None
            )
            if inner is not None and not any(isinstance(v, Tensor) for v in payload.values()):
                payload = inner
    if not isinstance(payload, Mapping) or not payload:
        raise ForeignModelError(
            f"{path}: not a state dict (a mapping of parameter names to tensors)"
        )
    tensors = {str(k): v for k, v in payload.items() if isinstance(v, Tensor)}
    if not tensors:
        raise ForeignModelError(f"{path}: holds no tensors")
    return tensors


def match_state_dict(
    model: nn.Module, state: Mapping[str, Tensor], path: Path, what: str
) -> tuple[dict[str, Tensor], list[str]]:
    """``state`` fitted to ``model``: a wrapper prefix stripped, classifier weights (and keys
    outside the prefix) dropped. Returns (state, dropped keys); any other difference raises
    with the details."""
    expected = model.state_dict()
    state, outside = _strip_prefix(dict(state), set(expected))
    heads = [k for k in state if k not in expected and _is_head(model, k)]
    state = {k: v for k, v in state.items() if k not in heads}
    dropped = outside + heads
    missing = [k for k in expected if k not in state and not k.endswith(_OPTIONAL_KEYS)]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: file {tuple(state[k].shape)}, model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s) ({_few(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s) ({_few(unexpected)})")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatch(es) ({_few(shapes)})")
    if problems:
        raise ForeignModelError(f"{path} does not match {what}: {'; '.join(problems)}")
    for k in expected:
        if k not in state:  # optional counters
            state[k] = expected[k]
    return state, dropped


def _strip_prefix(
    state: dict[str, Tensor], expected: set[str]
) -> tuple[dict[str, Tensor], list[str]]:
    """The keys under the wrapper prefix (``module.``, ``encoder.``, ...) that best match the
    model, prefix removed, and the keys left out. A prefix that only some keys carry (e.g. a
    Lightning module's ``encoder.`` beside its ``head.``) is taken only when its keys cover
    every weight of the model."""
    required = {k for k in expected if not k.endswith(_OPTIONAL_KEYS)}
    best, hits, left = state, len(expected & set(state)), []
    for prefix in _PREFIXES:
        inside = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        n = len(expected & set(inside))
        if n <= hits or (len(inside) < len(state) and not required <= set(inside)):
            continue
        best, hits = inside, n
        left = [k for k in state if not k.startswith(prefix)]
    return best, left


def _is_head(model: nn.Module, key: str) -> bool:
    """Whether ``key`` belongs to the classifier timm removed (``num_classes=0``)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    heads = cfg.get("classifier") or ()
    heads = [heads] if isinstance(heads, str) else list(heads)
    return any(key.startswith(f"{h}.") for h in heads)


def _few(items: list[str], n: int = 3) -> str:
    shown = ", ".join(items[:n])
    return shown + (", ..." if len(items) > n else "")


def check_no_external_data(path: Path) -> None:
    """Refuse ONNX files whose weights live in separate files (they are copied alone)."""
    try:
        import onnx
    except ImportError:  # pragma: no cover - onnx is a dependency
        return
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ForeignModelError(
            f"{path}: cannot read it as ONNX ({type(exc).__name__}: {exc})"
        ) from exc
    external = [
        t.name for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL
    ]
    if external:
        raise ForeignModelError(
            f"{path}: weights stored in external data files ({_few(external)}); save the model "
            "as one file (onnx.save(model, path, save_as_external_data=False))"
        )
