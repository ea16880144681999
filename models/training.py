"""The one training loop shared by every model kind.

A model only has to implement ``training_loss(batch) -> scalar tensor`` (batch: the dict of
:class:`~models.data.ArrayDataset`); :func:`fit` does the rest: seeding, device choice, AdamW
with warm-up and cosine decay, mixed precision (autocast + GradScaler, on CUDA only), gradient
clipping, validation with early stopping, a wall-clock budget, atomic checkpoints, a progress
callback and a tqdm bar.

The learning-rate schedule follows the planned optimiser steps (``epochs`` x batches, or
``max_steps``), never the time: ``max_seconds`` only caps the run. :func:`fit` runs a private
``_Run`` in readable steps: set-up (seed, device, optimiser, scaler, loader, step plan, resume
from the checkpoint), one optimiser step, one epoch with its validation, the stopping rules
(step budget, cancel, wall-clock cap, patience), checkpoints and the result.

The progress callback receives a dict (``phase``, ``epoch``, ``epochs``, ``step``,
``total_steps``, ``loss``, ``lr``, ``elapsed_seconds``, ``eta_seconds``,
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
    return _Run(model, train, cfg, val, progress).run()


def _plan_steps(cfg: TrainConfig, steps_per_epoch: int) -> tuple[int, int]:
    """``(epochs, optimiser steps)`` of a run: ``max_steps`` when set (the epochs follow from
    it, the last one possibly cut short), else ``epochs`` full passes."""
    if cfg.max_steps:
        return math.ceil(cfg.max_steps / steps_per_epoch), int(cfg.max_steps)
    return cfg.epochs, cfg.epochs * steps_per_epoch


class _Run:
    """One call of :func:`fit`, in steps: :meth:`__init__` sets up (seed, device, optimiser,
    scaler, loader, step plan) and resumes from the checkpoint; :meth:`run` loops over epochs
    (:meth:`_epoch`, made of :meth:`_step`), validates, applies the stopping rules, checkpoints
    and returns the :class:`TrainResult`."""

    def __init__(
        self,
        model: nn.Module,
        train: ArrayDataset,
        cfg: TrainConfig,
        val: ArrayDataset | None,
        progress: ProgressCallback | None,
    ) -> None:
        self.model, self.cfg, self.val, self.progress = model, cfg, val, progress
        seed_everything(cfg.seed)
        self.device = pick_device(cfg.device)
        if self.device.type == "cpu" and cfg.tune_allocator:
            tune_cpu_allocator()
        self.use_amp = amp_enabled(self.device, cfg.amp)
        model.to(self.device)
        self.optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.loader = make_loader(
            train,
            cfg.batch_size,
            shuffle=True,
            block_size=cfg.block_size,
            drop_last=len(train) > cfg.batch_size,  # no ragged last batch (BatchNorm needs > 1)
            num_workers=cfg.num_workers,
            seed=cfg.seed,
            pin_memory=self.device.type == "cuda",
        )
        self.steps_per_epoch = max(len(self.loader), 1)
        self.n_epochs, self.total_steps = _plan_steps(cfg, self.steps_per_epoch)
        # what a checkpoint carries
        self.start_epoch, self.step, self.history = 0, 0, []
        self.best_val = math.inf
        # what this call tracks
        self.best_epoch: int | None = None
        self.best_state: dict[str, Tensor] | None = None
        self.bad_epochs, self.run_steps, self.samples, self.nonfinite = 0, 0, 0, 0
        self.val_seconds: float | None = None
        self.stopped, self.train_loss = "completed", math.nan
        self.val_loss: float | None = None
        self.lr = cfg.lr
        self.ckpt = Path(cfg.checkpoint_path) if cfg.checkpoint_path else None
        if cfg.resume and self.ckpt is not None and self.ckpt.exists():
            self._resume(self.ckpt)
        self.t0 = 0.0

    # -- checkpoints ---------------------------------------------------------------------------

    def _resume(self, ckpt: Path) -> None:
        """Continue from ``ckpt``: weights, optimiser state, step, epoch, history, best loss."""
        payload = load_checkpoint(ckpt, map_location=self.device)
        self.model.load_state_dict(payload["state_dict"])
        if payload.get("optimizer"):
            self.optimizer.load_state_dict(payload["optimizer"])
        extra = payload.get("extra", {})
        self.step = int(extra.get("step", 0))
        self.start_epoch = int(extra.get("epoch", 0))
        if self.cfg.max_steps:  # step checkpoints may fall inside an epoch
            self.start_epoch = self.step // self.steps_per_epoch
        self.history = list(extra.get("history", []))
        self.best_val = float(extra.get("best_val_loss") or math.inf)

    def _save(self, epoch: int) -> None:
        """Checkpoint (atomically) as of ``epoch`` completed epochs, when a path is set."""
        if self.ckpt is None:
            return
        extra = {
            "epoch": epoch,
            "step": self.step,
            "history": self.history,
            "best_val_loss": self._best_val_loss(),
            "train_config": self.cfg.to_dict(),
        }
        save_checkpoint(self.ckpt, self.model, optimizer=self.optimizer, extra=extra)

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        """Every epoch left, then the best weights back, a last checkpoint and the result."""
        self.t0 = time.perf_counter()
        bar = tqdm(
            total=self.total_steps,
            initial=self.step,
            disable=not self.cfg.progress_bar,
            unit="step",
            desc=_name(self.model),
        )
        epochs_done = self.start_epoch
        try:
            for epoch in range(self.start_epoch, self.n_epochs):
                self._epoch(epoch, bar)
                epochs_done = epoch + 1
                if self._stop_after_epoch(epoch):
                    break
                if epochs_done % max(self.cfg.checkpoint_every, 1) == 0 and (
                    epochs_done < self.n_epochs
                ):
                    self._save(epochs_done)
        finally:
            bar.close()
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        self.model.eval()
        self._save(epochs_done)
        return self._result(epochs_done)

    def _epoch(self, epoch: int, bar: tqdm) -> None:
        """Train one epoch (the rest of it, when resumed mid-epoch), then validate and record
        it; sets :attr:`stopped` when the callback cancels or the time is up."""
        cfg = self.cfg
        self.model.train()
        self.loader.sampler.set_epoch(epoch)
        running, seen = 0.0, 0
        skip = self.step - epoch * self.steps_per_epoch if cfg.max_steps else 0
        for batch in self.loader:
            if skip > 0:  # resumed mid-epoch: these batches were trained on before
                skip -= 1
                continue
            if self.step >= self.total_steps:
                break
            loss = self._step(batch)
            if loss is None:
                continue
            n = len(batch["inputs"])
            running, seen = running + loss * n, seen + n
            bar.update(1)
            bar.set_postfix(loss=f"{running / seen:.4f}", refresh=False)
            if self.step % max(cfg.progress_every, 1) == 0 and not self._report(
                "train", epoch + 1, running / seen
            ):
                self.stopped = "cancelled"
                break
            if cfg.checkpoint_every_steps and self.step % cfg.checkpoint_every_steps == 0:
                self._save(epoch)
            if self._out_of_time():
                self.stopped = "time_budget"
                break
        self.train_loss = running / seen if seen else math.nan
        record: dict[str, Any] = {"epoch": epoch + 1, "train_loss": self.train_loss, "lr": self.lr}
        if self.val is not None and len(self.val) > 0 and self.stopped != "cancelled":
            record["val_loss"] = self._validate(epoch)
        record["seconds"] = time.perf_counter() - self.t0
        self.history.append(record)

    def _step(self, batch: Batch) -> float | None:
        """One optimiser step on ``batch``; its loss, or None when the loss is not finite (the
        step is skipped; :data:`MAX_NONFINITE_STEPS` in a row raise ``FloatingPointError``)."""
        self.lr = learning_rate(self.cfg, self.step, self.total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        batch = _to_device(batch, self.device)
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.use_amp):
            loss = self.model.training_loss(batch)
        if not torch.isfinite(loss):
            self.nonfinite += 1
            if self.nonfinite >= MAX_NONFINITE_STEPS:
                raise FloatingPointError(
                    f"training diverged: {self.nonfinite} steps with a non-finite loss"
                )
            return None
        self.nonfinite = 0
        self.scaler.scale(loss).backward()
        if self.cfg.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step, self.run_steps = self.step + 1, self.run_steps + 1
        self.samples += len(batch["inputs"])
        return float(loss.detach())

    def _validate(self, epoch: int) -> float:
        """Validation loss after ``epoch``; keeps the best weights and counts bad epochs."""
        assert self.val is not None
        cfg = self.cfg
        tv = time.perf_counter()
        self.val_loss = evaluate(
            self.model, self.val, batch_size=cfg.batch_size, device=self.device, amp=cfg.amp,
            seed=cfg.seed, block_size=cfg.block_size,
        )  # fmt: skip
        self.val_seconds = time.perf_counter() - tv
        if self.val_loss < self.best_val - cfg.min_delta:
            self.best_val, self.best_epoch, self.bad_epochs = self.val_loss, epoch + 1, 0
            if cfg.restore_best:
                state = self.model.state_dict()
                self.best_state = {k: v.detach().clone() for k, v in state.items()}
        else:
            self.bad_epochs += 1
        return self.val_loss

    # -- stopping rules ------------------------------------------------------------------------

    def _out_of_time(self) -> bool:
        """The wall-clock cap is reached, keeping time for one validation (the last one's
        duration, or an estimate from the training speed before the first)."""
        if not self.cfg.max_seconds:
            return False
        elapsed = time.perf_counter() - self.t0
        reserve = 0.0
        if self.val is not None:
            reserve = self.val_seconds or len(self.val) / max(self.samples, 1) * elapsed / 3
        return elapsed + reserve >= self.cfg.max_seconds

    def _stop_after_epoch(self, epoch: int) -> bool:
        """Report the epoch; stop when cancelled (now or during it), out of time, or out of
        patience. The step budget needs no rule: the loader stops at it."""
        if not self._report("epoch", epoch + 1, self.train_loss) and self.stopped == "completed":
            self.stopped = "cancelled"
        patience = self.cfg.patience
        if patience is not None and self.bad_epochs >= patience and self.stopped == "completed":
            self.stopped = "early_stopping"
        return self.stopped != "completed"

    # -- reporting -----------------------------------------------------------------------------

    def _best_val_loss(self) -> float | None:
        return None if math.isinf(self.best_val) else self.best_val

    def _report(self, phase: str, epoch: int, loss: float) -> bool:
        """Tell the progress callback; False when it asks to cancel."""
        if self.progress is None:
            return True
        elapsed = time.perf_counter() - self.t0
        per_step = elapsed / max(self.run_steps, 1)
        eta = max(self.total_steps - self.step, 0) * per_step
        if self.cfg.max_seconds:
            eta = min(eta, max(self.cfg.max_seconds - elapsed, 0.0))
        info = {
            "phase": phase,
            "epoch": epoch,
            "epochs": self.n_epochs,
            "step": self.step,
            "total_steps": self.total_steps,
            "loss": loss,
            "lr": self.lr,
            "elapsed_seconds": elapsed,
            "eta_seconds": 0.0 if phase == "done" else eta,
            "samples_per_second": self.samples / elapsed if elapsed > 0 else 0.0,
            "val_loss": self.val_loss,
            "best_val_loss": self._best_val_loss(),
        }
        return self.progress(info) is not False

    def _result(self, epochs_done: int) -> TrainResult:
        """Report ``done`` and say what happened."""
        seconds = time.perf_counter() - self.t0
        self._report("done", epochs_done, self.train_loss)
        return TrainResult(
            stopped=self.stopped,
            epochs=epochs_done,
            steps=self.step,
            seconds=seconds,
            train_loss=self.train_loss,
            val_loss=self.val_loss,
            best_epoch=self.best_epoch,
            best_val_loss=self._best_val_loss(),
            device=str(self.device),
            history=self.history,
            planned_steps=self.total_steps,
        )


def _name(model: nn.Module) -> str:
    return str(getattr(model, "kind", type(model).__name__))
