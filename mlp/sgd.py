"""One mini-batch SGD step (gather, normalise, forward, backward, update) on preallocated buffers.

Every array a step touches is allocated once here; the loop itself allocates nothing
of mini-batch size, and the GEMMs read row-major samples and the study-shaped weights
through transposed views (BLAS flags), never through transposed copies.
"""
from __future__ import annotations

import numpy as np


class SGDStep:
    def __init__(self, params: dict[str, np.ndarray], batch_size: int, mean: np.ndarray,
                 inv_std: np.ndarray):
        self.params = params
        w1, w2 = params["W1"], params["W2"]
        dtype = w1.dtype
        hidden, d_in = w1.shape
        n_classes = w2.shape[0]
        self.mean = mean.astype(dtype)
        self.inv_std = inv_std.astype(dtype)
        self.raw = np.empty((batch_size, d_in), dtype=np.uint8)
        self.x = np.empty((batch_size, d_in), dtype=dtype)
        self.s1 = np.empty((batch_size, hidden), dtype=dtype)
        self.s = np.empty((batch_size, n_classes), dtype=dtype)
        self.gh = np.empty((batch_size, hidden), dtype=dtype)
        self.grads = {name: np.empty_like(p) for name, p in params.items()}
        self.rows = np.arange(batch_size)

    def load_batch(self, x_rows: np.ndarray, idx: np.ndarray) -> int:
        """Gather rows idx of uint8 x_rows and normalise them into self.x; returns the batch size."""
        b = len(idx)
        raw, x = self.raw[:b], self.x[:b]
        np.take(x_rows, idx, axis=0, out=raw)
        np.subtract(raw, self.mean, out=x)
        x *= self.inv_std
        return b

    def set_batch(self, x: np.ndarray) -> int:
        """Use already-normalised inputs (gradient checks, tests)."""
        b = len(x)
        self.x[:b] = x
        return b

    def gradients(self, b: int, y: np.ndarray, lam: float) -> dict[str, np.ndarray]:
        """∂cost/∂θ for the first b rows of self.x with labels y, into self.grads."""
        p = self.params
        g = self.grads
        x, s1, s, gh = self.x[:b], self.s1[:b], self.s[:b], self.gh[:b]
        np.matmul(x, p["W1"].T, out=s1)
        s1 += p["b1"]
        np.maximum(s1, 0, out=s1)              # s1 now holds H = ReLU(S1)
        np.matmul(s1, p["W2"].T, out=s)
        s += p["b2"]
        s -= s.max(axis=1, keepdims=True)
        np.exp(s, out=s)
        s /= s.sum(axis=1, keepdims=True)       # s now holds P = softmax(S)
        s[self.rows[:b], y] -= 1.0
        s *= 1.0 / b                            # G = (P − Y) / b
        np.matmul(s.T, s1, out=g["W2"])
        g["W2"] += (2.0 * lam) * p["W2"]
        s.sum(axis=0, out=g["b2"])
        np.matmul(s, p["W2"], out=gh)
        gh *= s1 > 0                            # ReLU'(S1), read off H > 0
        np.matmul(gh.T, x, out=g["W1"])
        g["W1"] += (2.0 * lam) * p["W1"]
        gh.sum(axis=0, out=g["b1"])
        return g

    def update(self, eta: float) -> None:
        for name, p in self.params.items():
            g = self.grads[name]
            g *= eta
            p -= g

    def step(self, x_rows: np.ndarray, y_rows: np.ndarray, idx: np.ndarray, lam: float, eta: float) -> None:
        b = self.load_batch(x_rows, idx)
        self.gradients(b, y_rows[idx], lam)
        self.update(eta)
