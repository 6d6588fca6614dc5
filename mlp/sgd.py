"""One mini-batch SGD step (gather, normalise, forward, backward, update) on preallocated buffers.

Every array a step touches is allocated once here; the loop itself allocates nothing
of mini-batch size, and the GEMMs read row-major samples and the study-shaped weights
through transposed views (BLAS flags), never through transposed copies.

What the profiler showed (benchmarks: `python runners/benchmark.py --parts step`) and
what this module does about it:
- the two 100×3072×50 GEMMs are the step; everything else is overhead to remove;
- forming the W1 gradient and then applying it (g += 2λW, g *= η, W −= g) cost three
  extra passes over a 3072×50 array per step: `step` instead folds the update into the
  backward GEMM itself, W1 ← (1 − 2ηλ)·W1 − (η/b)·Ghᵀ X, with BLAS's own α and β
  (SciPy's gemm wrappers; NumPy's matmul has no β);
- NumPy and SciPy each load their own OpenBLAS with its own thread pool; with more than
  one BLAS thread, alternating between the two made the step 4× slower (idle threads of
  one pool spin while the other works), so every GEMM of the step goes through SciPy's;
- a ufunc that broadcasts a (3072,) row over the batch runs at about half the speed of
  one on two full arrays, so the normalisation uses full batch-shaped mean/σ⁻¹ rows.
`gradients` stays the plain, separately tested ∂cost/∂θ (gradient checks call it);
`step` is the same update up to rounding.
"""
from __future__ import annotations

import numpy as np

try:  # SciPy's BLAS wrappers expose gemm's α/β; without SciPy the step falls back to NumPy.
    from scipy.linalg import blas as _blas
except ImportError:  # pragma: no cover - exercised only where SciPy is absent
    _blas = None

_GEMM_NAMES = {np.dtype(np.float64): "dgemm", np.dtype(np.float32): "sgemm"}


def fused_gemm(dtype):
    """SciPy's gemm for dtype (float32/float64), or None when it is not available."""
    name = _GEMM_NAMES.get(np.dtype(dtype))
    return getattr(_blas, name) if (_blas is not None and name) else None


class SGDStep:
    def __init__(self, params: dict[str, np.ndarray], batch_size: int, mean: np.ndarray,
                 inv_std: np.ndarray, fused: bool = True):
        self.params = params
        w1, w2 = params["W1"], params["W2"]
        dtype = w1.dtype
        hidden, d_in = w1.shape
        n_classes = w2.shape[0]
        self.mean = mean.astype(dtype)
        self.inv_std = inv_std.astype(dtype)
        # Full batch-shaped copies: the broadcasting ufunc is the slow path (see module doc).
        self.mean_rows = np.tile(self.mean, (batch_size, 1))
        self.inv_std_rows = np.tile(self.inv_std, (batch_size, 1))
        self.raw = np.empty((batch_size, d_in), dtype=np.uint8)
        self.x = np.empty((batch_size, d_in), dtype=dtype)
        self.s1 = np.empty((batch_size, hidden), dtype=dtype)
        self.s = np.empty((batch_size, n_classes), dtype=dtype)
        self.gh = np.empty((batch_size, hidden), dtype=dtype)
        self.active = np.empty((batch_size, hidden), dtype=bool)
        self.grads = {name: np.empty_like(p) for name, p in params.items()}
        self.rows = np.arange(batch_size)
        self.row_starts = self.rows * n_classes   # flat offsets of each row of s
        self.gemm = fused_gemm(dtype) if fused else None
        if self.gemm is not None and not all(params[w].flags.c_contiguous for w in ("W1", "W2")):
            self.gemm = None  # the in-place update needs the weights' own memory

    def load_batch(self, x_rows: np.ndarray, idx: np.ndarray) -> int:
        """Gather rows idx of uint8 x_rows and normalise them into self.x; returns the batch size."""
        b = len(idx)
        raw, x = self.raw[:b], self.x[:b]
        np.take(x_rows, idx, axis=0, out=raw, mode="clip")  # "raise" buffers the copy (profiled)
        np.copyto(x, raw, casting="unsafe")
        x -= self.mean_rows[:b]
        x *= self.inv_std_rows[:b]
        return b

    def set_batch(self, x: np.ndarray) -> int:
        """Use already-normalised inputs (gradient checks, tests)."""
        b = len(x)
        self.x[:b] = x
        return b

    def _forward(self, b: int, y: np.ndarray) -> None:
        """s1 ← H = ReLU(X W1ᵀ + b1), s ← P − Y (softmax minus one-hot), for the first b rows."""
        p, gemm = self.params, self.gemm
        x, s1, s = self.x[:b], self.s1[:b], self.s[:b]
        if gemm is None:
            np.matmul(x, p["W1"].T, out=s1)
        else:  # row-major S1 is column-major S1ᵀ = W1 Xᵀ
            gemm(1.0, p["W1"].T, x.T, 0.0, s1.T, trans_a=1, overwrite_c=1)
        s1 += p["b1"]
        np.maximum(s1, 0, out=s1)
        if gemm is None:
            np.matmul(s1, p["W2"].T, out=s)
        else:
            gemm(1.0, p["W2"].T, s1.T, 0.0, s.T, trans_a=1, overwrite_c=1)
        s += p["b2"]
        s -= s.max(axis=1, keepdims=True)
        np.exp(s, out=s)
        s /= s.sum(axis=1, keepdims=True)
        s.reshape(-1)[self.row_starts[:b] + y] -= 1.0

    def _hidden_grad(self, b: int) -> np.ndarray:
        """Gh = (G W2) ⊙ ReLU'(S1), read off H > 0 (uses W2 before any update)."""
        gh, active = self.gh[:b], self.active[:b]
        if self.gemm is None:
            np.matmul(self.s[:b], self.params["W2"], out=gh)
        else:  # Ghᵀ = W2ᵀ Gᵀ
            self.gemm(1.0, self.params["W2"].T, self.s[:b].T, 0.0, gh.T, overwrite_c=1)
        np.greater(self.s1[:b], 0, out=active)
        gh *= active
        return gh

    def gradients(self, b: int, y: np.ndarray, lam: float) -> dict[str, np.ndarray]:
        """∂cost/∂θ for the first b rows of self.x with labels y, into self.grads."""
        p, g = self.params, self.grads
        self._forward(b, y)
        x, h, s = self.x[:b], self.s1[:b], self.s[:b]
        s *= 1.0 / b                            # G = (P − Y) / b
        gh = self._hidden_grad(b)
        np.matmul(s.T, h, out=g["W2"])
        g["W2"] += (2.0 * lam) * p["W2"]
        s.sum(axis=0, out=g["b2"])
        np.matmul(gh.T, x, out=g["W1"])
        g["W1"] += (2.0 * lam) * p["W1"]
        gh.sum(axis=0, out=g["b1"])
        return g

    def update(self, eta: float) -> None:
        """θ ← θ − η·grads (after `gradients`)."""
        for name, p in self.params.items():
            g = self.grads[name]
            g *= eta
            p -= g

    def step(self, x_rows: np.ndarray, y_rows: np.ndarray, idx: np.ndarray, lam: float, eta: float) -> None:
        """One SGD step on rows idx: θ ← θ − η ∂cost/∂θ, the weight updates fused into the GEMMs."""
        b = self.load_batch(x_rows, idx)
        if self.gemm is None:
            self.gradients(b, y_rows[idx], lam)
            self.update(eta)
            return
        p = self.params
        self._forward(b, y_rows[idx])
        x, h, s = self.x[:b], self.s1[:b], self.s[:b]  # s holds P − Y, not yet divided by b
        gh = self._hidden_grad(b)
        alpha, beta = -eta / b, 1.0 - 2.0 * eta * lam
        # Row-major W (k × n) is column-major Wᵀ (n × k): BLAS updates Wᵀ ← β Wᵀ + α Aᵀ G in place.
        self.gemm(alpha, h.T, s.T, beta, p["W2"].T, trans_b=1, overwrite_c=1)
        self.gemm(alpha, x.T, gh.T, beta, p["W1"].T, trans_b=1, overwrite_c=1)
        p["b2"] += alpha * s.sum(axis=0)
        p["b1"] += alpha * gh.sum(axis=0)
