"""Loss, cost and accuracy over a whole split, in chunks, normalising each chunk on the fly."""
from __future__ import annotations

import numpy as np

from mlp import model
from mlp.data import Split

EVAL_CHUNK = 5000


def evaluate(params: dict[str, np.ndarray], split: Split, mean: np.ndarray, inv_std: np.ndarray,
             lam: float, penalty: float | None = None) -> dict[str, float]:
    dtype = params["W1"].dtype
    mean, inv_std = mean.astype(dtype), inv_std.astype(dtype)
    buf = np.empty((min(EVAL_CHUNK, len(split)), split.x.shape[1]), dtype=dtype)
    loss_sum, correct = 0.0, 0
    for lo in range(0, len(split), EVAL_CHUNK):
        x_u8, y = split.x[lo:lo + EVAL_CHUNK], split.y[lo:lo + EVAL_CHUNK]
        x = buf[:len(y)]
        np.subtract(x_u8, mean, out=x)
        x *= inv_std
        s = model.scores(params, x)
        loss_sum += float(model.cross_entropy_sum(s, y))
        correct += int((s.argmax(axis=1) == y).sum())
    loss = loss_sum / len(split)
    if penalty is None:
        penalty = float(model.l2_penalty(params))
    return {"loss": loss, "cost": loss + lam * penalty, "acc": correct / len(split)}
