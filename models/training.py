"""The one training loop shared by every model kind.

A model only has to implement ``training_loss(batch) -> scalar tensor`` (batch: the dict of
:class:`~models.data.ArrayDataset`); :func:`fit` does the rest: seeding, device choice, AdamW
with warm-up and cosine decay, mixed precision (autocast + GradScaler, on CUDA only), gradient
clipping, validation with early stopping, a wall-clock budget, atomic checkpoints, a progress
callback and a tqdm bar.

The learning-rate schedule follows whichever ends first, the epochs or ``max_seconds``, so a
time-boxed run still anneals. The progress callback receives a dict (``phase``, ``epoch``,
``epochs``, ``step``, ``total_steps``, ``loss``, ``lr``, ``elapsed_seconds``, ``eta_seconds``,
``samples_per_second``, ``val_loss``, ``best_val_loss``); returning ``False`` cancels the run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from models.checkpoint import load_checkpoint, save_checkpoint
from models.data import ArrayDataset, Batch, make_loader
from models.device import (
    amp_enabled,
    autocast,
    pick_device,
    seed_everything,
    tune_cpu_allocator,
)

ProgressCallback = Callable[[dict[str, Any]], bool | None]
MAX_NONFINITE_STEPS = 10


class Trainable(Protocol):
    def training_loss(self, batch: Batch) -> Tensor: ...


@dataclass
class TrainConfig:
    """Options of :func:`fit` (JSON-ready with :meth:`to_dict`)."""

    epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.05  # of the run (steps or time), linear warm-up
    schedule: str = "cosine"  # "cosine" or "constant"
    min_lr_ratio: float = 0.01  # cosine floor, as a fraction of lr
    max_steps: int | None = None  # optimiser steps; when set, the budget (epochs follow from it)
    max_seconds: float | None = None  # optional wall-clock cap; reported when it cuts training
    patience: int | None = None  # epochs without validation improvement before stopping
    min_delta: float = 0.0  # improvement needed to reset the patience
    grad_clip: float | None = 5.0  # max global gradient norm
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # mixed precision; only ever used on CUDA
    num_workers: int = 0  # DataLoader worker processes
    block_size: int = 32  # contiguous rows per read (see models.data.BlockBatchSampler)
    checkpoint_path: str | None = None
    checkpoint_every: int = 1  # epochs
    checkpoint_every_steps: int | None = None  # also checkpoint every N steps (long runs)
    resume: bool = False  # continue from checkpoint_path when it exists
    restore_best: bool = True  # end with the weights of the best validation epoch
    progress_bar: bool = True
    progress_every: int = 1  # steps between progress callbacks
    tune_allocator: bool = True  # on CPU: models.device.tune_cpu_allocator() (process-wide)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule {self.schedule!r}: use 'cosine' or 'constant'")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    """What happened: why it stopped, how long, the loss history and the best epoch."""

    stopped: str  # "completed", "time_budget", "early_stopping" or "cancelled"
    epochs: int
    steps: int
    seconds: float
    train_loss: float
    val_loss: float | None
    best_epoch: int | None
    best_val_loss: float | None
    device: str
    history: list[dict[str, Any]] = field(default_factory=list)
    planned_steps: int = 0  # the step budget (epochs x batches, or max_steps)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def learning_rate(cfg: TrainConfig, step: int, total_steps: int) -> float:
    """Learning rate at ``step``: linear warm-up then cosine decay over the planned steps.

    The schedule depends on steps only, never on time, so a model trained on a busy machine is
    the same model as on an idle one (``max_seconds`` only caps the run).
    """
    frac = min(step / max(total_steps, 1), 1.0)
    warm = 1.0
    if cfg.warmup_fraction > 0:
        warm = min(1.0, (frac + 1.0 / max(total_steps, 1)) / cfg.warmup_fraction)
    decay = 1.0
    if cfg.schedule == "cosine":
        decay = cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac))
    return cfg.lr * warm * decay


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on weight matrices and kernels only (not on biases and norm scales)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    if not decay and not no_decay:
        raise ValueError("model has no trainable parameters")
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _to_device(batch: Batch, device: torch.device) -> Batch:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: ArrayDataset,
    *,
    batch_size: int = 256,
    device: str | torch.device = "auto",
    amp: bool = True,
    seed: int = 0,
    block_size: int = 32,
) -> float:
    """Mean ``training_loss`` over ``data`` in eval mode, with fixed augmentation randomness."""
    dev = pick_device(device)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    fork_devices = [dev] if dev.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=fork_devices):
            torch.manual_seed(seed)
            loader = make_loader(data, batch_size, shuffle=False, block_size=block_size)
            for batch in loader:
                batch = _to_device(batch, dev)
                with autocast(dev, amp):
                    loss = model.training_loss(batch)
                n = len(batch["inputs"])
                total += float(loss) * n
                count += n
    finally:
        model.train(was_training)
    return total / max(count, 1)


def fit(
    model: nn.Module,
    train: ArrayDataset,
    config: TrainConfig | None = None,
    *,
    val: ArrayDataset | None = None,
    progress: ProgressCallback | None = None,
) -> TrainResult:
    """Train ``model`` (anything with ``training_loss``) on ``train``; see the module docstring."""
    cfg = config or TrainConfig()
    if len(train) == 0:
        raise ValueError("cannot train on an empty dataset")
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    if device.type == "cpu" and cfg.tune_allocator:
        tune_cpu_allocator()
    use_amp = amp_enabled(device, cfg.amp)
    model.to(device)
    optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    loader = make_loader(
        train,
        cfg.batch_size,
        shuffle=True,
        block_size=cfg.block_size,
        drop_last=len(train) > cfg.batch_size,  # no ragged last batch (BatchNorm needs > 1)
        num_workers=cfg.num_workers,
        seed=cfg.seed,
        pin_memory=device.type == "cuda",
    )
    steps_per_epoch = max(len(loader), 1)
    if cfg.max_steps:
        total_steps = int(cfg.max_steps)
        n_epochs = math.ceil(total_steps / steps_per_epoch)
    else:
        n_epochs = cfg.epochs
        total_steps = n_epochs * steps_per_epoch
    start_epoch, step, history = 0, 0, []
    best_val, best_epoch, best_state, bad_epochs = math.inf, None, None, 0
    ckpt = Path(cfg.checkpoint_path) if cfg.checkpoint_path else None
    if cfg.resume and ckpt is not None and ckpt.exists():
        payload = load_checkpoint(ckpt, map_location=device)
        model.load_state_dict(payload["state_dict"])
        if payload.get("optimizer"):
            optimizer.load_state_dict(payload["optimizer"])
        extra = payload.get("extra", {})
        step = int(extra.get("step", 0))
        start_epoch = int(extra.get("epoch", 0))
        if cfg.max_steps:  # step checkpoints may fall inside an epoch
            start_epoch = step // steps_per_epoch
        history = list(extra.get("history", []))
        best_val = float(extra.get("best_val_loss") or math.inf)

    def save(epoch: int) -> None:
        if ckpt is not None:
            extra = {
                "epoch": epoch,
                "step": step,
                "history": history,
                "best_val_loss": None if math.isinf(best_val) else best_val,
                "train_config": cfg.to_dict(),
            }
            save_checkpoint(ckpt, model, optimizer=optimizer, extra=extra)

    t0 = time.perf_counter()
    run_steps, samples, nonfinite = 0, 0, 0
    val_seconds: float | None = None
    stopped, train_loss, val_loss = "completed", math.nan, None
    lr = cfg.lr
    bar = tqdm(
        total=total_steps,
        initial=step,
        disable=not cfg.progress_bar,
        unit="step",
        desc=_name(model),
    )

    def report(phase: str, epoch: int, loss: float) -> bool:
        elapsed = time.perf_counter() - t0
        per_step = elapsed / max(run_steps, 1)
        eta = max(total_steps - step, 0) * per_step
        if cfg.max_seconds:
            eta = min(eta, max(cfg.max_seconds - elapsed, 0.0))
        info = {
            "phase": phase,
            "epoch": epoch,
            "epochs": n_epochs,
            "step": step,
            "total_steps": total_steps,
            "loss": loss,
            "lr": lr,
            "elapsed_seconds": elapsed,
            "eta_seconds": 0.0 if phase == "done" else eta,
            "samples_per_second": samples / elapsed if elapsed > 0 else 0.0,
            "val_loss": val_loss,
            "best_val_loss": None if math.isinf(best_val) else best_val,
        }
        return progress is None or progress(info) is not False

    epochs_done = start_epoch
    try:
        for epoch in range(start_epoch, n_epochs):
            model.train()
            loader.sampler.set_epoch(epoch)
            running, seen = 0.0, 0
            skip = step - epoch * steps_per_epoch if cfg.max_steps else 0  # resumed mid-epoch
            for batch in loader:
                if skip > 0:
                    skip -= 1
                    continue
                if step >= total_steps:
                    break
                lr = learning_rate(cfg, step, total_steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                batch = _to_device(batch, device)
                optimizer.zero_grad(set_to_none=True)
                with autocast(device, use_amp):
                    loss = model.training_loss(batch)
                if not torch.isfinite(loss):
                    nonfinite += 1
                    if nonfinite >= MAX_NONFINITE_STEPS:
                        raise FloatingPointError(
                            f"training diverged: {nonfinite} steps with a non-finite loss"
                        )
                    continue
                nonfinite = 0
                scaler.scale(loss).backward()
                if cfg.grad_clip:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                n = len(batch["inputs"])
                step, run_steps, samples = step + 1, run_steps + 1, samples + n
                running, seen = running + float(loss.detach()) * n, seen + n
                bar.update(1)
                bar.set_postfix(loss=f"{running / seen:.4f}", refresh=False)
                if step % max(cfg.progress_every, 1) == 0 and not report(
                    "train", epoch + 1, running / seen
                ):
                    stopped = "cancelled"
                    break
                if cfg.checkpoint_every_steps and step % cfg.checkpoint_every_steps == 0:
                    save(epoch)
                if cfg.max_seconds:
                    elapsed = time.perf_counter() - t0
                    reserve = 0.0
                    if val is not None:
                        reserve = val_seconds or len(val) / max(samples, 1) * elapsed / 3
                    if elapsed + reserve >= cfg.max_seconds:
                        stopped = "time_budget"
                        break
            train_loss = running / seen if seen else math.nan
            record: dict[str, Any] = {"epoch": epoch + 1, "train_loss": train_loss, "lr": lr}
            if val is not None and len(val) > 0 and stopped != "cancelled":
                tv = time.perf_counter()
                val_loss = evaluate(
                    model, val, batch_size=cfg.batch_size, device=device, amp=cfg.amp,
                    seed=cfg.seed, block_size=cfg.block_size,
                )  # fmt: skip
                val_seconds = time.perf_counter() - tv
                record["val_loss"] = val_loss
                if val_loss < best_val - cfg.min_delta:
                    best_val, best_epoch, bad_epochs = val_loss, epoch + 1, 0
                    if cfg.restore_best:
                        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                else:
                    bad_epochs += 1
            record["seconds"] = time.perf_counter() - t0
            history.append(record)
            epochs_done = epoch + 1
            if not report("epoch", epoch + 1, train_loss) and stopped == "completed":
                stopped = "cancelled"
            if cfg.patience is not None and bad_epochs >= cfg.patience and stopped == "completed":
                stopped = "early_stopping"
            if stopped != "completed":
                break
            if (epoch + 1) % max(cfg.checkpoint_every, 1) == 0 and epoch + 1 < n_epochs:
                save(epoch + 1)
    finally:
        bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    save(epochs_done)
    seconds = time.perf_counter() - t0
    report("done", epochs_done, train_loss)
    return TrainResult(
        stopped=stopped,
        epochs=epochs_done,
        steps=step,
        seconds=seconds,
        train_loss=train_loss,
        val_loss=val_loss,
        best_epoch=best_epoch,
        best_val_loss=None if math.isinf(best_val) else best_val,
        device=str(device),
        history=history,
        planned_steps=total_steps,
    )


def _name(model: nn.Module) -> str:
    return str(getattr(model, "kind", type(model).__name__))
