"""Measuring helpers shared by the benchmarks: call latencies and peak memory."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable

import numpy as np


def latencies_ms(fn: Callable[[int], object], n: int, warmup: int = 5) -> np.ndarray:
    """Wall time (ms) of each of ``n`` calls ``fn(i)``, after ``warmup`` calls not counted."""
    for i in range(warmup):
        fn(i)
    times = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        times[i] = time.perf_counter() - t0
    return times * 1e3


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
