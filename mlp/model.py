"""The two-layer network 3072 → m (ReLU) → 10 (softmax): parameters, scores, loss and cost.

Samples are rows (n × d), matching the uint8 rows of the data layer; weights keep the
study's shapes W1 (m × d), W2 (K × m) so the GEMMs read both operands without copies.
"""

from __future__ import annotations

import numpy as np

PARAM_NAMES = ("W1", "b1", "W2", "b2")


def init_params(
    d_in: int, hidden: int, n_classes: int, rng: np.random.Generator, dtype
) -> dict[str, np.ndarray]:
    """W ~ N(0, 1/d_in) for each layer's own fan-in; biases zero."""
    return {
        "W1": (rng.standard_normal((hidden, d_in)) / np.sqrt(d_in)).astype(dtype),
        "b1": np.zeros(hidden, dtype=dtype),
        "W2": (rng.standard_normal((n_classes, hidden)) / np.sqrt(hidden)).astype(dtype),
        "b2": np.zeros(n_classes, dtype=dtype),
    }


def scores(params: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Class scores (n × K) for normalised inputs x (n × d)."""
    h = x @ params["W1"].T
    h += params["b1"]
    np.maximum(h, 0, out=h)
    s = h @ params["W2"].T
    s += params["b2"]
    return s


def log_softmax(s: np.ndarray) -> np.ndarray:
    shifted = s - s.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _acc_dtype(a: np.ndarray):
    """Accumulate in at least float64; extended precision stays extended (gradient checks)."""
    return np.result_type(a.dtype, np.float64)


def cross_entropy_sum(s: np.ndarray, y: np.ndarray):
    """Summed (not mean) cross-entropy, so chunks can be added up exactly."""
    return -log_softmax(s)[np.arange(len(y)), y].sum(dtype=_acc_dtype(s))


def l2_penalty(params: dict[str, np.ndarray]):
    """‖W1‖² + ‖W2‖² (biases are not regularised)."""
    return sum(np.square(params[w], dtype=_acc_dtype(params[w])).sum() for w in ("W1", "W2"))


def loss_and_cost(params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, lam: float):
    """loss = mean cross-entropy; cost = loss + λ(‖W1‖² + ‖W2‖²)."""
    loss = cross_entropy_sum(scores(params, x), y) / len(y)
    return loss, loss + lam * l2_penalty(params)
