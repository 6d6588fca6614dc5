"""The machine's GEMM peak: best time of a large square matmul, per dtype and thread count."""

from __future__ import annotations

import time

import numpy as np
from threadpoolctl import threadpool_limits


def gemm_peak(dtype, threads: int, n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of the fastest of `repeats` n×n×n products (2n³ flops), after one warm-up."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    c = np.empty((n, n), dtype=dtype)
    best = float("inf")
    with threadpool_limits(limits=threads):
        np.matmul(a, b, out=c)
        for _ in range(repeats):
            t0 = time.perf_counter()
            np.matmul(a, b, out=c)
            best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9
