"""Loss, cost and accuracy over a whole split, in cache-sized chunks of the raw uint8 rows.

Normalisation is folded into the first layer instead of applied to the data:
((x − μ)·σ⁻¹) W1ᵀ + b1 = x (W1·σ⁻¹)ᵀ + (b1 − (W1·σ⁻¹) μ), so each chunk only needs
one uint8 → float conversion.
"""
from __future__ import annotations

import numpy as np

from mlp import model
from mlp.data import Split

EVAL_CHUNK = 1000


def folded_params(params: dict[str, np.ndarray], mean: np.ndarray, inv_std: np.ndarray) -> dict[str, np.ndarray]:
    """First-layer weights that act on raw pixel values and give the same scores."""
    dtype = params["W1"].dtype
    w1 = params["W1"] * inv_std.astype(dtype)
    b1 = params["b1"] - w1 @ mean.astype(dtype)
    return {"W1": w1, "b1": b1, "W2": params["W2"], "b2": params["b2"]}


def evaluate(params: dict[str, np.ndarray], split: Split, mean: np.ndarray, inv_std: np.ndarray,
             lam: float, penalty: float | None = None) -> dict[str, float]:
    folded = folded_params(params, mean, inv_std)
    buf = np.empty((min(EVAL_CHUNK, len(split)), split.x.shape[1]), dtype=params["W1"].dtype)
    loss_sum, correct = 0.0, 0
    for lo in range(0, len(split), EVAL_CHUNK):
        y = split.y[lo:lo + EVAL_CHUNK]
        x = buf[:len(y)]
        np.copyto(x, split.x[lo:lo + EVAL_CHUNK], casting="unsafe")
        s = model.scores(folded, x)
        loss_sum += float(model.cross_entropy_sum(s, y))
        correct += int((s.argmax(axis=1) == y).sum())
    loss = loss_sum / len(split)
    if penalty is None:
        penalty = float(model.l2_penalty(params))
    return {"loss": loss, "cost": loss + lam * penalty, "acc": correct / len(split)}
