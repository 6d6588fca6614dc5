"""Loss, cost and accuracy over a whole split, in cache-sized chunks of the raw uint8 rows.

Normalisation is folded into the first layer instead of applied to the data:
((x − μ)·σ⁻¹) W1ᵀ + b1 = x (W1·σ⁻¹)ᵀ + (b1 − (W1·σ⁻¹) μ), so each chunk only needs
one uint8 → float conversion.
"""

from __future__ import annotations

import numpy as np

from mlp import model
from mlp.data import Split
from mlp.sgd import fused_gemm, times_w1t

# Rows per chunk: the float chunk is ~4 MiB, so the conversion's output is still in cache
# when the GEMM reads it (1,000 rows = 24 MiB of float64 ran 20 % slower: 94k vs 114k
# samples/s at 1 thread; float32 205k vs 240k).
EVAL_CHUNK_BYTES = 4 * 1024 * 1024


def chunk_rows(d: int, dtype) -> int:
    return max(1, EVAL_CHUNK_BYTES // (d * np.dtype(dtype).itemsize))


def folded_params(
    params: dict[str, np.ndarray], mean: np.ndarray, inv_std: np.ndarray
) -> dict[str, np.ndarray]:
    """First-layer weights that act on raw pixel values and give the same scores."""
    dtype = params["W1"].dtype
    w1 = params["W1"] * inv_std.astype(dtype)
    b1 = params["b1"] - np.einsum(
        "ij,j->i", w1, mean.astype(dtype)
    )  # not matmul: keeps NumPy's BLAS pool asleep
    return {"W1": w1, "b1": b1, "W2": params["W2"], "b2": params["b2"]}


class ChunkScores:
    """Class scores of a chunk through the training step's BLAS (SciPy's gemm), so training
    never alternates between NumPy's and SciPy's OpenBLAS thread pools: with 2 BLAS threads,
    a run that evaluated through NumPy's matmul took 15.6 to 26.4 s for cyclic_3cycles
    (one pool's idle threads spinning while the other works). NumPy's matmul without SciPy."""

    def __init__(self, folded: dict[str, np.ndarray], rows: int):
        self.p = dict(folded, W2=np.ascontiguousarray(folded["W2"]))
        dtype = folded["W1"].dtype
        self.gemm = fused_gemm(dtype)
        self.h = np.empty((rows, folded["W1"].shape[0]), dtype=dtype)
        self.s = np.empty((rows, folded["W2"].shape[0]), dtype=dtype)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        p, g, n = self.p, self.gemm, len(x)
        if g is None:
            return model.scores(p, x)
        h, s = self.h[:n], self.s[:n]
        times_w1t(g, p["W1"], x, h)
        h += p["b1"]
        np.maximum(h, 0, out=h)
        g(1.0, p["W2"].T, h.T, 0.0, s.T, trans_a=1, overwrite_c=1)
        s += p["b2"]
        return s


def evaluate(
    params: dict[str, np.ndarray],
    split: Split,
    mean: np.ndarray,
    inv_std: np.ndarray,
    lam: float,
    penalty: float | None = None,
) -> dict[str, float]:
    folded = folded_params(params, mean, inv_std)
    chunk = chunk_rows(split.x.shape[1], params["W1"].dtype)
    rows = min(chunk, len(split))
    buf = np.empty((rows, split.x.shape[1]), dtype=params["W1"].dtype)
    scores = ChunkScores(folded, rows)
    loss_sum, correct = 0.0, 0
    for lo in range(0, len(split), chunk):
        y = split.y[lo : lo + chunk]
        x = buf[: len(y)]
        np.copyto(x, split.x[lo : lo + chunk], casting="unsafe")
        s = scores(x)
        loss_sum += float(model.cross_entropy_sum(s, y))
        correct += int((s.argmax(axis=1) == y).sum())
    loss = loss_sum / len(split)
    if penalty is None:
        penalty = float(model.l2_penalty(params))
    return {"loss": loss, "cost": loss + lam * penalty, "acc": correct / len(split)}
