"""Lazy datasets, block sampling and chunked inference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from models import (
    ArrayDataset,
    BackboneConfig,
    BandMismatchError,
    BlockBatchSampler,
    ConvAutoencoder,
    EmbeddingClassifier,
    Emulator,
    InferenceCancelled,
    SimCLREncoder,
    batched_apply,
    embed,
    make_loader,
    predict_classes,
    predict_targets,
    read_rows,
    reconstruction_errors,
)
from models.data import contiguous_runs, sample_rows

TINY = BackboneConfig(embedding_dim=16, stem_width=8, widths=(8, 16), strides=(2, 2))


class CountingArray:
    """A NumPy array that only allows slices and counts the reads."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.reads = data, 0
        self.shape, self.dtype = data.shape, data.dtype

    def __getitem__(self, key: slice) -> np.ndarray:
        assert isinstance(key, slice), "only contiguous slices are read"
        self.reads += 1
        return self.data[key]


def _images(n: int = 100, c: int = 3, size: int = 16) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, c, size, size)).astype(np.float32)


def test_read_rows_keeps_order_and_reads_slices() -> None:
    data = _images(50)
    arr = CountingArray(data)
    rows = np.array([7, 3, 4, 5, 40, 3])
    np.testing.assert_array_equal(read_rows(arr, rows), data[rows])
    assert arr.reads == 3  # [3:6], [7:8], [40:41]
    assert contiguous_runs(np.array([1, 2, 3, 9])) == [(1, 4), (9, 10)]
    with pytest.raises(IndexError):
        read_rows(arr, [50])


def test_dataset_items_batches_and_targets() -> None:
    data = _images(20)
    labels = np.arange(20) % 3
    ds = ArrayDataset(data, labels)
    item = ds[4]
    assert item["inputs"].shape == (3, 16, 16) and int(item["targets"]) == 1
    batch = ds[np.array([5, 1])]
    assert batch["inputs"].dtype == torch.float32 and batch["targets"].dtype == torch.int64
    assert batch["index"].tolist() == [5, 1]
    sub = ds.subset([2, 3])
    assert len(sub) == 2 and sub[0]["index"] == 2
    with pytest.raises(ValueError, match="targets"):
        ArrayDataset(data, labels[:5])


def test_split_is_blockwise_and_disjoint() -> None:
    ds = ArrayDataset(_images(100))
    train, val = ds.split(0.2, block_size=10, seed=1)
    assert len(train) + len(val) == 100 and len(val) == 20
    assert not set(train.rows) & set(val.rows)
    assert set(val.rows // 10 * 10) == set(val.rows[::10])  # whole blocks


def test_block_sampler_covers_everything_once_and_is_reproducible() -> None:
    sampler = BlockBatchSampler(103, 16, block_size=8, seed=3)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 7
    assert sorted(np.concatenate(batches).tolist()) == list(range(103))
    assert all(len(np.unique(b // 8)) <= 3 for b in batches[:-1])  # a few blocks per batch
    again = [b.tolist() for b in BlockBatchSampler(103, 16, block_size=8, seed=3)]
    assert again == [b.tolist() for b in batches]
    sampler.set_epoch(1)
    assert [b.tolist() for b in sampler] != again
    assert len(BlockBatchSampler(103, 16, drop_last=True)) == 6


def test_loader_with_zarr_and_workers(tmp_path: Path) -> None:
    data = _images(64)
    z = zarr.create_array(tmp_path / "x.zarr", shape=data.shape, chunks=(16, 3, 16, 16),
                          dtype="float32")  # fmt: skip
    z[:] = data
    for workers in (0, 1):
        loader = make_loader(ArrayDataset(z), 32, block_size=16, num_workers=workers)
        seen = []
        for batch in loader:
            rows = batch["index"].numpy()
            np.testing.assert_array_equal(batch["inputs"].numpy(), data[rows])
            seen.extend(rows.tolist())
        assert sorted(seen) == list(range(64))
    assert sample_rows(z, 20, block_size=16).shape == (20, 3, 16, 16)


def test_batched_apply_writes_into_memmap(tmp_path: Path) -> None:
    data = _images(70)
    out = np.lib.format.open_memmap(tmp_path / "o.npy", mode="w+", dtype=np.float32,
                                    shape=(70, 3))  # fmt: skip
    calls = []
    result = batched_apply(lambda x: x.mean(dim=(-2, -1)), CountingArray(data), batch_size=32,
                           device="cpu", out=out, progress=calls.append)  # fmt: skip
    assert result is out
    np.testing.assert_allclose(out, data.mean(axis=(-2, -1)), rtol=1e-5, atol=1e-6)
    assert [c["done"] for c in calls] == [32, 64, 70] and calls[-1]["total"] == 70
    with pytest.raises(InferenceCancelled):
        batched_apply(lambda x: x.sum(1), data, batch_size=16, progress=lambda info: False)
    with pytest.raises(ValueError, match="shape"):
        batched_apply(lambda x: x.mean(dim=(-2, -1)), data, out=np.zeros((70, 4), np.float32))
    store = zarr.create_array(tmp_path / "o.zarr", shape=(70, 3), chunks=(32, 3), dtype="f4")
    batched_apply(lambda x: x.mean(dim=(-2, -1)), data, batch_size=32, out=store)
    np.testing.assert_allclose(store[:], out, atol=1e-6)
    both = batched_apply(lambda x: {"a": x[:, 0, 0, 0], "b": x[:, :, 0, 0]}, data, batch_size=64)
    assert both["a"].shape == (70,) and both["b"].shape == (70, 3)


def test_embed_matches_the_model_and_reorders_bands() -> None:
    data = _images(40)
    model = SimCLREncoder(["g", "r", "i"], backbone=TINY).eval()
    with torch.no_grad():
        ref = model.embed(torch.from_numpy(data)).numpy()
    got = embed(model, data, batch_size=16, device="cpu")
    assert got.dtype == np.float32 and got.shape == (40, 16)
    np.testing.assert_allclose(got, ref, atol=1e-4)
    shuffled = data[:, [2, 0, 1]]
    reordered = embed(model, shuffled, bands=["i", "g", "r"], device="cpu")
    np.testing.assert_allclose(reordered, ref, atol=1e-4)
    unit = embed(model, data, l2_normalize=True, device="cpu")
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-5)
    with pytest.raises(BandMismatchError):
        embed(model, np.zeros((2, 3, 16, 16), np.float32), bands=["g", "r", "z"])
    with pytest.raises(BandMismatchError, match="4-band"):
        embed(model, np.zeros((2, 4, 16, 16), np.float32))


def test_prediction_helpers() -> None:
    data = _images(30)
    ae = ConvAutoencoder(["g", "r", "i"], image_size=16, widths=(8, 16)).eval()
    errors = reconstruction_errors(ae, data, batch_size=8)
    assert errors.shape == (30,) and np.all(errors > 0)
    emu = Emulator(["g", "r", "i"], ["z"], backbone=TINY).eval()
    post = predict_targets(emu, data)
    assert post["mean"].shape == (30, 1) and np.all(post["std"] > 0)
    head = EmbeddingClassifier(16, 3, dropout=0.5)
    out = predict_classes(head, np.random.default_rng(0).normal(size=(30, 16)).astype(np.float32),
                          mc_samples=8)  # fmt: skip
    assert out["probs"].shape == (30, 3) and np.all(out["bald"] >= 0)
