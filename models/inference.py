"""Batched inference over array-likes, chunk by chunk, into NumPy float32 outputs.

:func:`batched_apply` reads contiguous chunks of the input (zarr, memmap, NumPy...), runs a
function under ``torch.inference_mode`` on the chosen device, and writes each chunk's result
into ``out`` (e.g. an ``np.memmap`` or zarr array) as soon as it is ready, so a survey of any
size streams through a fixed amount of memory. The next chunk is read in a background thread
while the current one runs. The helpers below wrap it for each model kind.

Long batch jobs on the CPU run faster after :func:`models.device.tune_cpu_allocator` (a
process-wide malloc setting, so it is left to the caller, e.g. the worker process).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from models.backbone import fold_batchnorm
from models.data import array_length
from models.device import autocast, pick_device
from models.errors import band_indices

InferenceProgress = Callable[[dict[str, Any]], bool | None]
Output = np.ndarray | dict[str, np.ndarray]


class InferenceCancelled(RuntimeError):
    """The progress callback returned ``False``."""


def report_progress(progress: InferenceProgress, done: int, total: int, started: float) -> None:
    """Call ``progress`` with {done, total, elapsed_seconds, eta_seconds, items_per_second};
    raise :class:`InferenceCancelled` when it answers False."""
    elapsed = time.perf_counter() - started
    rate = done / elapsed if elapsed > 0 else 0.0
    info = {
        "done": done,
        "total": total,
        "elapsed_seconds": elapsed,
        "eta_seconds": (total - done) / rate if rate > 0 else None,
        "items_per_second": rate,
    }
    if progress(info) is False:
        raise InferenceCancelled(f"cancelled after {done} of {total} objects")


def prepare_for_inference(model: nn.Module, device: str | torch.device = "auto") -> nn.Module:
    """Eval-mode copy on ``device`` with BatchNorm folded into the convolutions, in channels-last
    memory format (oneDNN's and cuDNN's fast path). The original model is not modified."""
    dev = pick_device(device)
    return fold_batchnorm(model).to(dev).to(memory_format=torch.channels_last)


def _as_dict(result: Tensor | dict[str, Tensor]) -> dict[str, Tensor]:
    return result if isinstance(result, dict) else {"": result}


def batched_apply(
    fn: Callable[[Tensor], Tensor | dict[str, Tensor]],
    inputs: Any,
    *,
    batch_size: int = 512,
    device: str | torch.device = "auto",
    out: Any = None,
    start: int = 0,
    stop: int | None = None,
    channels: Sequence[int] | None = None,
    progress: InferenceProgress | None = None,
    progress_bar: bool = False,
    desc: str = "inference",
    amp: bool = True,
) -> Output:
    """Apply ``fn`` to rows ``start:stop`` of ``inputs`` in chunks; float32 NumPy results.

    ``fn`` returns a tensor (result: an array) or a dict of tensors (result: a dict of arrays).
    ``out`` (same structure, rows ``stop - start``) receives the results chunk by chunk;
    otherwise arrays are allocated. ``channels`` selects/reorders input channels first.
    ``progress`` gets ``{done, total, elapsed_seconds, eta_seconds, items_per_second}`` after
    each chunk; returning ``False`` raises :class:`InferenceCancelled`. ``amp`` runs ``fn``
    under float16 autocast on CUDA (ignored on the CPU); results are float32 either way.
    """
    dev = pick_device(device)
    n_total = array_length(inputs)
    stop = n_total if stop is None else min(stop, n_total)
    total = max(stop - start, 0)
    starts = list(range(start, stop, batch_size))

    def read(lo: int) -> np.ndarray:
        block = np.asarray(inputs[lo : min(lo + batch_size, stop)])
        return block[:, list(channels)] if channels is not None else block

    outputs: dict[str, Any] | None = None
    if out is not None:
        outputs = dict(out) if isinstance(out, dict) else {"": out}
    t0 = time.perf_counter()
    bar = tqdm(total=total, disable=not progress_bar, unit="obj", desc=desc)
    done = 0
    try:
        with ThreadPoolExecutor(max_workers=1) as pool, torch.inference_mode():
            pending = pool.submit(read, starts[0]) if starts else None
            for i, lo in enumerate(starts):
                block = pending.result()
                pending = pool.submit(read, starts[i + 1]) if i + 1 < len(starts) else None
                x = torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32)).to(dev)
                if x.ndim == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                with autocast(dev, amp):
                    result = _as_dict(fn(x))
                if outputs is None:
                    outputs = {
                        k: np.empty((total, *v.shape[1:]), dtype=np.float32)
                        for k, v in result.items()
                    }
                for key, value in result.items():
                    target = outputs[key]
                    hi = lo - start + len(value)
                    shape = tuple(target.shape)
                    if shape[1:] != tuple(value.shape[1:]) or array_length(target) < total:
                        raise ValueError(
                            f"output {key or 'array'} has shape {shape}, need "
                            f"({total}, {', '.join(map(str, value.shape[1:]))})"
                        )
                    target[lo - start : hi] = value.float().cpu().numpy()
                done += len(block)
                bar.update(len(block))
                if progress is not None:
                    report_progress(progress, done, total, t0)
    finally:
        bar.close()
    if outputs is None:  # empty input: no chunk told us the output shape
        outputs = {"": np.zeros((0,), dtype=np.float32)}
    return outputs[""] if set(outputs) == {""} else outputs


def _channels(model: nn.Module, bands: Sequence[str] | None, inputs: Any) -> list[int] | None:
    """Channel selection that maps data ``bands`` onto the model's bands (None: as is)."""
    if bands is None:
        return None
    bands = [str(b) for b in bands]
    shape = getattr(inputs, "shape", None)
    if shape is not None and len(shape) == 4 and int(shape[1]) != len(bands):
        raise ValueError(f"{len(bands)} band names {bands} for {shape[1]}-channel images")
    model_bands = list(getattr(model, "bands", []))
    return None if bands == model_bands else band_indices(model_bands, bands)


def embed(
    model: nn.Module,
    images: Any,
    *,
    bands: Sequence[str] | None = None,
    l2_normalize: bool = False,
    mirror: bool = False,
    **kwargs: Any,
) -> np.ndarray:
    """(N, D) float32 embeddings of (N, C, H, W) ``images`` with any model that has ``embed``;
    with ``mirror``, of their left-right mirror images (for mirror-equivariant classifiers).

    ``bands`` names the input channels: they are selected/reordered to the model's bands, and
    a missing band raises :class:`~models.errors.BandMismatchError`. Other keyword arguments go
    to :func:`batched_apply` (``batch_size``, ``device``, ``out``, ``progress``...).
    """
    fast = prepare_for_inference(model, kwargs.get("device", "auto"))
    return batched_apply(
        lambda x: fast.embed(torch.flip(x, dims=[-1]) if mirror else x, l2_normalize=l2_normalize),
        images,
        channels=_channels(model, bands, images),
        desc="embed",
        **kwargs,
    )


def reconstruction_errors(
    model: nn.Module, images: Any, *, bands: Sequence[str] | None = None, **kwargs: Any
) -> np.ndarray:
    """(N,) autoencoder reconstruction errors (anomaly scores)."""
    fast = prepare_for_inference(model, kwargs.get("device", "auto"))
    return batched_apply(
        fast.reconstruction_error,
        images,
        channels=_channels(model, bands, images),
        desc="reconstruct",
        **kwargs,
    )


def reconstruction_scores(
    model: nn.Module, images: Any, *, bands: Sequence[str] | None = None, **kwargs: Any
) -> dict[str, np.ndarray]:
    """Autoencoder residual scores per object, ``{"recon_error", "recon_peak",
    "recon_excess"}`` each (N,) (:meth:`~models.autoencoder.ConvAutoencoder.residual_scores`)."""
    fast = prepare_for_inference(model, kwargs.get("device", "auto"))
    return batched_apply(
        fast.residual_scores,
        images,
        channels=_channels(model, bands, images),
        desc="reconstruct",
        **kwargs,
    )


def predict_targets(
    model: nn.Module, images: Any, *, bands: Sequence[str] | None = None, **kwargs: Any
) -> dict[str, np.ndarray]:
    """Emulator posterior ``{"mean": (N, T), "std": (N, T)}`` in original units."""
    fast = prepare_for_inference(model, kwargs.get("device", "auto"))
    return batched_apply(
        fast.predict, images, channels=_channels(model, bands, images), desc="emulate", **kwargs
    )


def predict_classes(
    model: nn.Module,
    inputs: Any,
    *,
    mc_samples: int = 0,
    bands: Sequence[str] | None = None,
    **kwargs: Any,
) -> dict[str, np.ndarray]:
    """Classifier ``{"probs", "entropy", "bald"}`` (BALD = 0 when ``mc_samples`` is 0), from
    embeddings (:class:`EmbeddingClassifier`) or images (:class:`ImageClassifier`)."""
    fast = prepare_for_inference(model, kwargs.get("device", "auto"))
    if len(getattr(inputs, "shape", ())) == 2:  # embeddings: large chunks amortise overheads
        kwargs.setdefault("batch_size", 8192)

    def run(x: Tensor) -> dict[str, Tensor]:
        pred = fast.mc_predict(x, n_samples=mc_samples)
        return {"probs": pred.probs, "entropy": pred.entropy, "bald": pred.bald}

    return batched_apply(
        run, inputs, channels=_channels(model, bands, inputs), desc="classify", **kwargs
    )
