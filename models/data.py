"""Lazy, chunk-friendly datasets over array-likes (zarr, h5py, np.memmap, NumPy).

Nothing here loads a whole survey: rows are read as contiguous slices, so a zarr chunk is
decoded once per slice rather than once per object. :class:`BlockBatchSampler` yields whole
batches of positions made of a few random contiguous blocks; with ``DataLoader(batch_size=None)``
the dataset receives the whole index array at once and reads it in a handful of slices.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

Batch = dict[str, Tensor]


def array_length(array: Any) -> int:
    """Number of rows of an array-like (``shape[0]``, else ``len``)."""
    shape = getattr(array, "shape", None)
    return int(shape[0]) if shape is not None else len(array)


def contiguous_runs(sorted_rows: np.ndarray) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering sorted unique ``rows`` with maximal contiguous slices."""
    if sorted_rows.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(sorted_rows) != 1) + 1
    starts = np.concatenate(([0], breaks))
    stops = np.concatenate((breaks, [sorted_rows.size]))
    return [
        (int(sorted_rows[a]), int(sorted_rows[b - 1]) + 1)
        for a, b in zip(starts, stops, strict=True)
    ]


def read_rows(array: Any, rows: Sequence[int] | np.ndarray) -> np.ndarray:
    """Rows of ``array`` in the order given, read as few contiguous slices as possible."""
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    n = array_length(array)
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        raise IndexError(f"row index out of range 0..{n - 1}")
    if isinstance(array, np.ndarray) and not isinstance(array, np.memmap):
        return array[rows]  # in memory: one fancy-indexing copy is fastest
    unique, inverse = np.unique(rows, return_inverse=True)
    runs = contiguous_runs(unique)
    if len(runs) == 1:
        block = np.asarray(array[runs[0][0] : runs[0][1]])
    elif runs:
        block = np.concatenate([np.asarray(array[a:b]) for a, b in runs])
    else:
        block = np.asarray(array[0:0])
    return block if np.array_equal(unique, rows) else block[inverse]


def sample_rows(array: Any, size: int, *, block_size: int = 64, seed: int = 0) -> np.ndarray:
    """About ``size`` rows drawn as random contiguous blocks (all rows when fewer)."""
    n = array_length(array)
    if n <= size:
        return np.asarray(array[0:n])
    rng = np.random.default_rng(seed)
    starts = np.arange(0, n, block_size)
    chosen = np.sort(
        rng.choice(starts, size=min(len(starts), -(-size // block_size)), replace=False)
    )
    rows = np.concatenate([np.arange(s, min(s + block_size, n)) for s in chosen])[:size]
    return read_rows(array, rows)


def _to_tensor(values: np.ndarray) -> Tensor:
    values = np.asarray(values)
    if values.dtype.kind in "iub":
        return torch.from_numpy(values.astype(np.int64, copy=False))
    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))


class ArrayDataset(Dataset):
    """Rows of ``inputs`` (and ``targets``), optionally restricted to a subset ``rows``.

    ``dataset[i]`` returns one item; ``dataset[array_of_positions]`` or ``dataset[a:b]``
    returns a whole batch, read in contiguous slices. Items and batches are dicts:
    ``{"inputs": float32, "targets": float32 or int64 (when given), "index": int64 row}``.
    """

    def __init__(self, inputs: Any, targets: Any = None, rows: Sequence[int] | None = None) -> None:
        self.inputs = inputs
        self.targets = targets
        n = array_length(inputs)
        if targets is not None and array_length(targets) != n:
            raise ValueError(f"{array_length(targets)} targets for {n} inputs")
        self.rows = np.arange(n, dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
        if self.rows.size and (self.rows.min() < 0 or self.rows.max() >= n):
            raise IndexError(f"subset rows out of range 0..{n - 1}")

    def __len__(self) -> int:
        return int(self.rows.size)

    @property
    def item_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.inputs.shape[1:])

    def __getitem__(self, key: int | slice | Sequence[int] | np.ndarray | Tensor) -> Batch:
        if isinstance(key, (int, np.integer)):
            batch = self[np.array([int(key)])]
            return {k: v[0] for k, v in batch.items()}
        if isinstance(key, slice):
            positions = np.arange(len(self))[key]
        else:
            positions = np.asarray(key, dtype=np.int64).reshape(-1)
        rows = self.rows[positions]
        batch: Batch = {"inputs": _to_tensor(read_rows(self.inputs, rows)).float()}
        if self.targets is not None:
            batch["targets"] = _to_tensor(read_rows(self.targets, rows))
        batch["index"] = torch.from_numpy(rows.copy())
        return batch

    def subset(self, positions: Sequence[int] | np.ndarray) -> ArrayDataset:
        """A dataset over some positions of this one (same underlying arrays)."""
        return ArrayDataset(self.inputs, self.targets, self.rows[np.asarray(positions, np.int64)])

    def split(
        self, val_fraction: float, *, block_size: int = 64, seed: int = 0
    ) -> tuple[ArrayDataset, ArrayDataset]:
        """Random (train, validation) split by whole contiguous blocks of ``block_size``."""
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        n = len(self)
        blocks = np.arange(0, n, block_size)
        rng = np.random.default_rng(seed)
        n_val = max(1, round(len(blocks) * val_fraction))
        if n_val >= len(blocks):
            raise ValueError(f"{n} items in {len(blocks)} blocks are too few to split")
        val_blocks = set(rng.choice(blocks, size=n_val, replace=False).tolist())
        is_val = np.isin(np.arange(n) // block_size * block_size, list(val_blocks))
        return self.subset(np.flatnonzero(~is_val)), self.subset(np.flatnonzero(is_val))


class BlockBatchSampler(Sampler[np.ndarray]):
    """Batches of positions built from random contiguous blocks of ``block_size``.

    With ``shuffle=False`` batches are consecutive slices. Each epoch's order depends only on
    ``seed`` and the epoch set by :meth:`set_epoch`, so runs are reproducible.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        *,
        block_size: int = 32,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
    ) -> None:
        if batch_size < 1 or block_size < 1:
            raise ValueError("batch_size and block_size must be positive")
        self.n, self.batch_size, self.block_size = int(n), int(batch_size), int(block_size)
        self.shuffle, self.drop_last, self.seed = shuffle, drop_last, int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        return full if (self.drop_last or rest == 0) else full + 1

    def __iter__(self) -> Iterator[np.ndarray]:
        positions = np.arange(self.n, dtype=np.int64)
        rng = np.random.default_rng((self.seed, self.epoch))
        if self.shuffle:
            blocks = [positions[i : i + self.block_size] for i in range(0, self.n, self.block_size)]
            positions = np.concatenate([blocks[i] for i in rng.permutation(len(blocks))])
        for b in range(len(self)):
            batch = positions[b * self.batch_size : (b + 1) * self.batch_size]
            yield rng.permutation(batch) if self.shuffle else batch


def make_loader(
    dataset: ArrayDataset,
    batch_size: int = 256,
    *,
    shuffle: bool = True,
    block_size: int = 32,
    drop_last: bool = False,
    num_workers: int = 0,
    seed: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A ``DataLoader`` whose every item is a whole batch read by block slices."""
    sampler = BlockBatchSampler(
        len(dataset),
        batch_size,
        block_size=block_size,
        shuffle=shuffle,
        drop_last=drop_last,
        seed=seed,
    )
    return DataLoader(
        dataset,
        batch_size=None,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )
