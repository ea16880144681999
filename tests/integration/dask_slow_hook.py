"""Dask worker preload for the tests (``dask worker --preload THIS_FILE``): every image
partition takes ``SLOW_PARTITION_S`` longer, so a test can kill a worker mid-embedding.
(Dask may import a preload file more than once: the patch is applied once.)"""

from __future__ import annotations

import time

from backend.modelling import infer

SLOW_PARTITION_S = 0.5

if not hasattr(infer.ImagePartition, "_fast_call"):
    infer.ImagePartition._fast_call = infer.ImagePartition.__call__  # type: ignore[attr-defined]

    def _slow_call(self: infer.ImagePartition, rows: tuple[int, int]) -> object:
        time.sleep(SLOW_PARTITION_S)
        return self._fast_call(rows)  # type: ignore[attr-defined]

    infer.ImagePartition.__call__ = _slow_call  # type: ignore[method-assign]
