"""Importing encoders made elsewhere (timm, TorchScript, ONNX) into the model registry.

Everything is checked before anything is registered: the file is read, the wrapper built
(:mod:`models.foreign`) and run on a few of the survey's cutouts through the same code path as
``embed``. A problem raises :class:`ImportModelError` (one ``error:`` line naming the file).
TorchScript and ONNX files are copied into the version folder; timm weights go in its state dict.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from backend.errors import UserError
from backend.latent import ood
from backend.registry import ModelRegistry, ModelVersion
from backend.survey import Survey

if TYPE_CHECKING:
    from models.adapter import AdapterConfig
    from models.foreign import ForeignEncoder

FORMATS = ("timm", "torchscript", "onnx")
STORED_FILES = {"torchscript": "encoder.pt", "onnx": "encoder.onnx"}
PROBE_OBJECTS = 2  # cutouts run through the imported encoder before it is registered


class ImportModelError(UserError):
    """An encoder or embeddings file that cannot be imported (nothing is registered)."""


@dataclass
class EncoderRequest:
    """What the user declared about the encoder (None: take it from the file or a default)."""

    path: Path
    fmt: str
    survey: str
    arch: str | None = None
    input_size: int | None = None
    channels: list[str] | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    embedding_dim: int | None = None
    reference_survey: str | None = None  # OOD reference drawn from it (default: ``survey``)
    reference_size: int | None = None  # objects in it (default: ood_product.IMPORT_SAMPLE)


@dataclass
class Declared:
    """Native input found in the file (hub config.json, timm defaults, ONNX input shape)."""

    n_channels: int | None = None
    size: int | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    origin: str = "the file"
    notes: list[str] = field(default_factory=list)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def import_encoder(
    req: EncoderRequest, *, activate: bool = False
) -> tuple[ModelVersion, list[str]]:
    """Validate, register (and optionally activate) an encoder; returns (version, notes)."""
    from models.foreign_files import ForeignModelError

    survey = Survey.open(req.survey)
    path = Path(req.path).expanduser()
    if not path.exists():
        raise ImportModelError(f"{path}: no such file or folder")
    if req.fmt not in FORMATS:
        raise ImportModelError(f"unknown format {req.fmt!r} (formats: {', '.join(FORMATS)})")
    if req.fmt != "timm" and not path.is_file():
        raise ImportModelError(f"{path}: a {req.fmt} encoder is one file, not a folder")
    try:
        if req.fmt == "timm":
            model, state, provenance = _timm(req, path, survey)
        else:
            model, state, provenance = _file_encoder(req, path, survey)
        dim = _probe(model, survey, path, req.fmt)
    except ForeignModelError as exc:
        raise ImportModelError(str(exc)) from None
    if req.embedding_dim is not None and req.embedding_dim != dim:
        raise ImportModelError(
            f"{path}: the encoder gives {dim}-dimensional embeddings, not {req.embedding_dim} "
            "(--embedding-dim)"
        )
    model.embedding_dim = dim
    model.source = provenance
    config = model.config
    extra = {}
    if req.fmt in STORED_FILES:
        config["file"] = STORED_FILES[req.fmt]
        extra[STORED_FILES[req.fmt]] = path
    reference, reference_record = _reference(req, model, survey)
    registry = ModelRegistry()
    with tempfile.TemporaryDirectory() as tmp:
        extra[ood.REFERENCE_FILE] = Path(tmp) / ood.REFERENCE_FILE
        ood.save_reference(reference, extra[ood.REFERENCE_FILE])
        version = registry.save(
            "encoder", state, config, survey=survey.name, extra_files=extra,
            training={"imported": provenance, "ood_reference": reference_record},
        )  # fmt: skip
    if activate:
        registry.set_active(survey.name, "encoder", version.version)
    return version, list(provenance.get("notes", []))


def _reference(req: EncoderRequest, model: Any, survey: Survey) -> tuple[Any, dict[str, Any]]:
    """The OOD reference stored with the imported encoder: a stratified sample of the survey it
    is imported for, or of ``--reference-survey`` (its training data is unknown)."""
    from backend.latent.ood_product import IMPORT_SAMPLE, survey_reference

    size = IMPORT_SAMPLE if req.reference_size is None else int(req.reference_size)
    if size < 2:
        raise ImportModelError(f"--reference-size {size}: an OOD reference needs 2 or more")
    if req.reference_survey in (None, survey.name):
        return survey_reference(model, survey, role="the survey it was imported for", max_rows=size)
    return survey_reference(
        model, Survey.open(req.reference_survey), role="given as --reference-survey", max_rows=size
    )


# -- timm --------------------------------------------------------------------------------------
def _timm(req: EncoderRequest, path: Path, survey: Survey) -> tuple[Any, dict, dict]:
    from models.foreign import TimmEncoder
    from models.foreign_files import find_hub_snapshot, match_state_dict, read_state_dict

    hub = find_hub_snapshot(path) if path.is_dir() else None
    arch = req.arch or (hub.architecture if hub else None)
    if not arch:
        raise ImportModelError(f"{path}: say which timm architecture it is with --arch NAME")
    if hub and hub.architecture and req.arch and hub.architecture != req.arch:
        raise ImportModelError(
            f"{hub.folder / 'config.json'} declares architecture {hub.architecture!r}, "
            f"not {req.arch!r} (--arch)"
        )
    timm = _timm_module(arch)
    weights = hub.weights if hub else path
    state = read_state_dict(weights)
    declared = _timm_declared(timm, arch, state, hub)
    adapter, mean, std = _native_input(req, survey, path, declared)
    model = TimmEncoder(
        survey.bands, adapter, arch=arch, model_args=hub.model_args if hub else None,
        mean=mean, std=std,
    )  # fmt: skip
    matched, dropped = match_state_dict(model.net, state, weights, f"timm architecture {arch!r}")
    model.net.load_state_dict(matched)
    notes = declared.notes
    if dropped:
        shown = ", ".join(dropped[:4]) + (", ..." if len(dropped) > 4 else "")
        notes.append(f"{len(dropped)} weight(s) of the file not used (classifier head): {shown}")
    provenance = {
        "format": "timm",
        "file": str(path.resolve()),
        "weights_file": str(weights.resolve()),
        "sha256": sha256(weights),
        "arch": arch,
        "hub_config": hub.config if hub else None,
        "notes": notes,
    }
    return model, model.state_dict(), provenance


def _timm_module(arch: str) -> Any:
    """timm, once ``arch`` is known to be one of its architectures."""
    from models.foreign_files import import_timm

    timm = import_timm()
    if not timm.is_model(arch):
        near = timm.list_models(f"*{arch}*")[:5]
        hint = f" (similar: {', '.join(near)})" if near else ""
        raise ImportModelError(f"unknown timm architecture {arch!r}{hint}")
    return timm


def _timm_declared(timm: Any, arch: str, state: dict, hub: Any) -> Declared:
    """Input channels, size, mean and std from config.json, else timm's defaults for ``arch``,
    with the channel count read off the checkpoint's first convolution when it can be."""
    defaults = _timm_default_cfg(timm, arch)
    cfg = {**defaults, **(hub.pretrained_cfg if hub else {})}
    source = "config.json" if hub and hub.pretrained_cfg else f"timm's defaults for {arch}"
    declared = Declared(origin=source)
    size = cfg.get("input_size")
    if isinstance(size, list | tuple) and len(size) == 3:
        declared.n_channels, declared.size = int(size[0]), int(size[1])
    first = cfg.get("first_conv")
    firsts = [first] if isinstance(first, str) else list(first or ())
    for name in firsts:
        weight = state.get(f"{name}.weight")
        if weight is not None and weight.ndim == 4:
            declared.n_channels = int(weight.shape[1])
    if hub and "in_chans" in hub.model_args:
        declared.n_channels = int(hub.model_args["in_chans"])
    declared.mean = list(cfg["mean"]) if cfg.get("mean") else None
    declared.std = list(cfg["std"]) if cfg.get("std") else None
    return declared


def _timm_default_cfg(timm: Any, arch: str) -> dict[str, Any]:
    try:
        cfg = timm.models.get_pretrained_cfg(arch)
    except Exception:  # older/newer timm: fall back to nothing
        return {}
    if cfg is None:
        return {}
    return dict(cfg.to_dict() if hasattr(cfg, "to_dict") else vars(cfg))


# -- TorchScript and ONNX ----------------------------------------------------------------------
def _file_encoder(req: EncoderRequest, path: Path, survey: Survey) -> tuple[Any, dict, dict]:
    from models.foreign import OnnxEncoder, TorchScriptEncoder

    declared = _onnx_declared(req, path) if req.fmt == "onnx" else Declared()
    adapter, mean, std = _native_input(req, survey, path, declared)
    cls = OnnxEncoder if req.fmt == "onnx" else TorchScriptEncoder
    model = cls(survey.bands, adapter, file=path, mean=mean, std=std)
    provenance = {
        "format": req.fmt,
        "file": str(path.resolve()),
        "sha256": sha256(path),
        "notes": declared.notes,
    }
    return model, {}, provenance


def _onnx_declared(req: EncoderRequest, path: Path) -> Declared:
    """The ONNX input's channels and size; declared ones must agree with it."""
    from models.foreign import onnx_session
    from models.foreign_files import check_no_external_data

    check_no_external_data(path)
    first = onnx_session(path).get_inputs()[0]
    shape = list(first.shape)
    if len(shape) != 4:
        raise ImportModelError(
            f"{path}: ONNX input {first.name!r} has shape {shape}; an image encoder reads "
            "(batch, channels, height, width)"
        )
    _, c, h, w = (d if isinstance(d, int) and d > 0 else None for d in shape)
    if h is not None and w is not None and h != w:
        raise ImportModelError(
            f"{path}: ONNX input {first.name!r} is {h}x{w}; only square inputs are supported"
        )
    if c is not None and req.channels is not None and len(req.channels) != c:
        raise ImportModelError(
            f"{path}: ONNX input {first.name!r} has shape {shape} ({c} channels), but "
            f"--channels names {len(req.channels)} ({','.join(req.channels)})"
        )
    if h is not None and req.input_size is not None and req.input_size != h:
        raise ImportModelError(
            f"{path}: ONNX input {first.name!r} has shape {shape} ({h}x{w} pixels), but "
            f"--input-size is {req.input_size}"
        )
    return Declared(n_channels=c, size=h, origin="the ONNX input shape")


# -- native input ------------------------------------------------------------------------------
def _native_input(
    req: EncoderRequest, survey: Survey, path: Path, declared: Declared
) -> tuple[AdapterConfig, list[float] | None, list[float] | None]:
    """(adapter, mean, std): the command line first, then the file's declarations, then the
    survey's bands and cutout size. What was not given is noted in ``declared.notes``."""
    channels = req.channels or _default_channels(survey, declared.n_channels, path)
    size = req.input_size or declared.size or int(survey.meta.image_shape[-1])
    adapter = make_adapter(survey, channels, size)
    n = len(adapter.channels)
    mean = req.mean if req.mean is not None else _fits(declared.mean, n)
    std = req.std if req.std is not None else _fits(declared.std, n)
    notes = declared.notes
    if req.channels is None:
        notes.append(f"channels {','.join(channels)} (--channels not given)")
    if req.input_size is None:
        origin = declared.origin if declared.size else f"the cutouts of survey {survey.name}"
        notes.append(f"input size {size} px from {origin} (--input-size not given)")
    if req.mean is None and req.std is None and mean is None and std is None:
        notes.append("no mean/std scaling (--mean/--std not given, none in the file)")
    for what, given, value in (("mean", req.mean, mean), ("std", req.std, std)):
        if given is None and value is not None:
            notes.append(f"{what} {value} from {declared.origin} (--{what} not given)")
    return adapter, mean, std


def _fits(values: list[float] | None, n: int) -> list[float] | None:
    return values if values is not None and len(values) in (1, n) else None


def _default_channels(survey: Survey, n: int | None, path: Path) -> list[str]:
    bands = list(survey.bands)
    if n is None or n == len(bands):
        return bands
    if n == 3:
        return ["R", "G", "B"]
    raise ImportModelError(
        f"{path}: the model reads {n} channels and survey {survey.name} has {len(bands)} bands "
        f"({', '.join(bands)}); name the {n} channels with --channels"
    )


def make_adapter(survey: Survey, channels: Sequence[str], size: int) -> AdapterConfig:
    """Band names pick survey bands; R,G,B (not the survey's own band names) asks for the
    colour composite the survey is displayed with."""
    from models.adapter import AdapterConfig

    bands = list(survey.bands)
    channels = [str(c).strip() for c in channels]
    if size < 4:
        raise ImportModelError(f"--input-size must be at least 4 pixels, got {size}")
    if len(set(channels)) != len(channels):
        raise ImportModelError(f"--channels {','.join(channels)}: a channel is named twice")
    if all(c in bands for c in channels):
        return AdapterConfig(bands=channels, mode="bands", size=size)
    if [c.upper() for c in channels] == ["R", "G", "B"]:
        display = survey.meta.display or _display(survey)
        if display.mode == "linear":  # already colour pictures: their channels as they are
            return AdapterConfig(bands=list(display.rgb_bands), mode="bands", size=size)
        return AdapterConfig(
            bands=bands, mode="composite", size=size, rgb_bands=list(display.rgb_bands),
            band_scales=dict(display.band_scales or {}), stretch=float(display.stretch),
            q=float(display.q), minimum=float(display.minimum),
        )  # fmt: skip
    unknown = [c for c in channels if c not in bands]
    raise ImportModelError(
        f"--channels {','.join(channels)}: {', '.join(unknown)} not a band of survey "
        f"{survey.name} ({', '.join(bands)}); name bands, or R,G,B for a colour composite"
    )


def _display(survey: Survey) -> Any:
    from backend.survey.render import default_display

    sample = survey.cutouts(np.arange(min(len(survey), 256)))
    return default_display(list(survey.bands), sample)


# -- the check run -----------------------------------------------------------------------------
def _probe(model: ForeignEncoder, survey: Survey, path: Path, fmt: str) -> int:
    """Embed a few real cutouts exactly as ``embed`` will; returns the embedding size."""
    from models import embed

    n = min(PROBE_OBJECTS, len(survey))
    cutouts = survey.cutouts(np.arange(n))
    native = f"{len(model.input_channels)}x{model.input_size}x{model.input_size}"
    try:
        vectors = embed(model.eval(), cutouts, bands=survey.bands, device="cpu", batch_size=n)
    except Exception as exc:  # whatever the foreign network raises
        text = str(exc).strip()
        reason = text.splitlines()[0] if text else ""
        raise ImportModelError(
            f"{path}: the {fmt} encoder fails on {native} input "
            f"({', '.join(model.input_channels)}): {type(exc).__name__}: {reason[:300]}"
        ) from None
    if vectors.ndim != 2 or vectors.shape[0] != n or vectors.shape[1] < 1:
        raise ImportModelError(
            f"{path}: the {fmt} encoder returned shape {tuple(vectors.shape)} for {n} cutouts; "
            "an encoder returns one vector per image"
        )
    if not np.isfinite(vectors).all():
        raise ImportModelError(f"{path}: the {fmt} encoder returned NaN or infinite values")
    return int(vectors.shape[1])
