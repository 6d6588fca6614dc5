"""One mini-batch SGD step (gather, normalise, forward, backward, update) on preallocated buffers.

`step` folds the weight update and the input normalisation into SciPy's BLAS GEMMs (α/β, an
extra "offset" row for the mean); `gradients` stays the plain ∂cost/∂θ the gradient check
calls, and `step` equals it up to rounding. Why each trick, and what it bought:
docs/performance.md#the-training-step.
"""

from __future__ import annotations

import numpy as np

try:  # SciPy's BLAS wrappers expose gemm's α/β; without SciPy the step falls back to NumPy.
    from scipy.linalg import blas as _blas
except ImportError:  # pragma: no cover - exercised only where SciPy is absent
    _blas = None

_GEMM_NAMES = {np.dtype(np.float64): "dgemm", np.dtype(np.float32): "sgemm"}
# W1's memory order for the fused step, per dtype: the order whose forward + W1-update
# GEMM pair is faster here (OpenBLAS 0.3.30, 1 thread, 100 × 3072 × 50; `mlp-bench
# --parts step` measures the result): float64 row-major
# 1525 µs vs column-major 1633 µs; float32 column-major 784 µs vs row-major 850 µs.
W1_ORDER = {np.dtype(np.float64): "C", np.dtype(np.float32): "F"}


def fused_gemm(dtype):
    """SciPy's gemm for dtype (float32/float64), or None when it is not available."""
    name = _GEMM_NAMES.get(np.dtype(dtype))
    return getattr(_blas, name) if (_blas is not None and name) else None


def times_w1t(gemm, w1: np.ndarray, x: np.ndarray, out: np.ndarray) -> None:
    """out ← X W1ᵀ (row-major, n × m) through BLAS, read straight from W1 in either memory order."""
    if w1.flags.c_contiguous:  # row-major out is column-major outᵀ = W1 Xᵀ
        gemm(1.0, w1.T, x.T, 0.0, out.T, trans_a=1, overwrite_c=1)
    else:
        gemm(1.0, w1, x.T, 0.0, out.T, overwrite_c=1)


def update_w1(
    gemm, w1: np.ndarray, gh: np.ndarray, x: np.ndarray, alpha: float, beta: float
) -> None:
    """W1 ← β W1 + α Ghᵀ X in place, for W1 in either memory order."""
    if w1.flags.c_contiguous:  # row-major W1 is column-major W1ᵀ ← β W1ᵀ + α Xᵀ Gh
        gemm(alpha, x.T, gh.T, beta, w1.T, trans_b=1, overwrite_c=1)
    else:
        gemm(alpha, gh.T, x.T, beta, w1, trans_b=1, overwrite_c=1)


class SGDStep:
    """Buffers and GEMM calls of one step. May replace params["W1"] by a copy in the memory
    order W1_ORDER picks for its dtype (same values), so callers read params["W1"] afresh."""

    def __init__(
        self,
        params: dict[str, np.ndarray],
        batch_size: int,
        mean: np.ndarray,
        inv_std: np.ndarray,
        fused: bool = True,
        w1_order: str | None = None,
    ):
        self.params = params
        dtype = params["W1"].dtype
        self.gemm = fused_gemm(dtype) if fused else None
        if self.gemm is not None:  # the in-place updates need the weights' own, contiguous memory
            order = w1_order or W1_ORDER.get(dtype, "C")
            params["W1"] = np.asarray(params["W1"], order=order)  # type: ignore[call-overload]
            params["W2"] = np.ascontiguousarray(params["W2"])
        w1, w2 = params["W1"], params["W2"]
        hidden, d_in = w1.shape
        n_classes = w2.shape[0]
        self.scale = np.asarray(inv_std, dtype=np.float64).astype(dtype)
        self.scale2 = np.ascontiguousarray(np.broadcast_to(self.scale, (2, d_in)))
        self.offset = (np.asarray(mean, dtype=np.float64) * inv_std).astype(dtype)
        self.raw = np.empty((batch_size, d_in), dtype=np.uint8)
        self.x = np.empty((batch_size + 1, d_in), dtype=dtype)  # + the offset row
        self.s1 = np.empty((batch_size + 1, hidden), dtype=dtype)  # + o·W1ᵀ
        self.gh = np.empty((batch_size + 1, hidden), dtype=dtype)  # + (−Σ Gh)
        self.bias = np.empty(hidden, dtype=dtype)
        self.active = np.empty((batch_size, hidden), dtype=bool)
        self.grads = {name: np.empty_like(p) for name, p in params.items()}
        self.n_classes, self.dtype = n_classes, dtype
        self._scores: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def scores_buffer(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        """(b × K scores, column-major; the row indices 0..b−1), one pair per batch size.

        Column-major, the softmax's reductions over the K classes of each row run as
        elementwise operations over whole columns instead of K-long row reductions."""
        if b not in self._scores:
            self._scores[b] = (
                np.empty((b, self.n_classes), dtype=self.dtype, order="F"),
                np.arange(b),
            )
        return self._scores[b]

    def load_batch(self, x_rows: np.ndarray, idx: np.ndarray) -> int:
        """Gather rows idx of uint8 x_rows into self.x as x·σ⁻¹, offset row μ·σ⁻¹ after them."""
        b = len(idx)
        raw, x = self.raw[:b], self.x[:b]
        np.take(x_rows, idx, axis=0, out=raw, mode="clip")  # "raise" buffers the copy (profiled)
        np.copyto(x, raw, casting="unsafe")
        if b % 2:
            x *= self.scale
        else:  # two rows per σ⁻¹ row: NumPy's multiply broadcasting one row ran at ~half speed
            x.reshape(b // 2, 2, -1).__imul__(self.scale2)
        self.x[b] = self.offset
        return b

    def set_batch(self, x: np.ndarray) -> int:
        """Use already-normalised inputs (gradient checks, tests): the offset row is zero."""
        b = len(x)
        self.x[:b] = x
        self.x[b] = 0
        return b

    def _forward(self, b: int, y: np.ndarray) -> None:
        """s1 ← H = ReLU(Xₙ W1ᵀ + b1), s ← P − Y (softmax minus one-hot), for the first b rows."""
        x, s1 = self.x[: b + 1], self.s1[: b + 1]
        if self.gemm is None:
            np.matmul(x, self.params["W1"].T, out=s1)
        else:
            times_w1t(self.gemm, self.params["W1"], x, s1)
        self._head(b, y)

    def _head(self, b: int, y: np.ndarray) -> None:
        """Everything of the forward pass after the W1 GEMM (self.s1 holds X W1ᵀ and o·W1ᵀ)."""
        p, gemm = self.params, self.gemm
        s1 = self.s1[: b + 1]
        s, rows = self.scores_buffer(b)
        h = s1[:b]
        np.subtract(p["b1"], s1[b], out=self.bias)  # b1 − o·W1ᵀ
        h += self.bias
        np.maximum(h, 0, out=h)
        if gemm is None:
            np.matmul(h, p["W2"].T, out=s)
        else:
            gemm(1.0, h.T, p["W2"].T, 0.0, s, trans_a=1, overwrite_c=1)
        s += p["b2"]
        s -= s.max(axis=1, keepdims=True)
        np.exp(s, out=s)
        s /= s.sum(axis=1, keepdims=True)
        s.T[y, rows] -= 1.0  # P − Y: one entry per row

    def _hidden_grad(self, b: int) -> np.ndarray:
        """Gh = (G W2) ⊙ ReLU'(S1) (W2 before any update), then the row −Σᵢ Ghᵢ; returns b + 1 rows."""
        gh, active = self.gh[:b], self.active[:b]
        s = self.scores_buffer(b)[0]
        if self.gemm is None:
            np.matmul(s, self.params["W2"], out=gh)
        else:  # Ghᵀ = W2ᵀ Gᵀ
            self.gemm(1.0, self.params["W2"].T, s, 0.0, gh.T, trans_b=1, overwrite_c=1)
        np.greater(self.s1[:b], 0, out=active)
        gh *= active
        total = self.gh[b]
        gh.sum(axis=0, out=total)
        np.negative(total, out=total)
        return self.gh[: b + 1]

    def gradients(self, b: int, y: np.ndarray, lam: float) -> dict[str, np.ndarray]:
        """∂cost/∂θ for the first b rows of self.x with labels y, into self.grads."""
        p, g = self.params, self.grads
        self._forward(b, y)
        h, s = self.s1[:b], self.scores_buffer(b)[0]
        s *= 1.0 / b  # G = (P − Y) / b
        gh = self._hidden_grad(b)
        np.matmul(s.T, h, out=g["W2"])
        g["W2"] += (2.0 * lam) * p["W2"]
        s.sum(axis=0, out=g["b2"])
        np.matmul(gh.T, self.x[: b + 1], out=g["W1"])  # Ghᵀ(X − 1·o) through the extra rows
        g["W1"] += (2.0 * lam) * p["W1"]
        np.negative(gh[b], out=g["b1"])
        return g

    def update(self, eta: float) -> None:
        """θ ← θ − η·grads (after `gradients`)."""
        for name, p in self.params.items():
            g = self.grads[name]
            g *= eta
            p -= g

    def step(
        self, x_rows: np.ndarray, y_rows: np.ndarray, idx: np.ndarray, lam: float, eta: float
    ) -> None:
        """One SGD step on rows idx: θ ← θ − η ∂cost/∂θ, the weight updates fused into the GEMMs."""
        b = self.load_batch(x_rows, idx)
        if self.gemm is None:
            self.gradients(b, y_rows[idx], lam)
            self.update(eta)
            return
        self._forward(b, y_rows[idx])
        alpha, beta = -eta / b, 1.0 - 2.0 * eta * lam
        gh = self._update_head(b, alpha, beta)
        update_w1(self.gemm, self.params["W1"], gh, self.x[: b + 1], alpha, beta)

    def _update_head(self, b: int, alpha: float, beta: float) -> np.ndarray:
        """After `_forward`: W2, b2, b1 updated in place (fused); returns Gh (b + 1 rows) for W1."""
        p, h, s = self.params, self.s1[:b], self.scores_buffer(b)[0]  # s: P − Y, not divided by b
        gh = self._hidden_grad(b)
        assert self.gemm is not None, "the fused update needs SciPy's BLAS (callers check)"
        # Row-major W (k × n) is column-major Wᵀ (n × k): BLAS updates Wᵀ ← β Wᵀ + α Aᵀ G in place.
        self.gemm(alpha, h.T, s, beta, p["W2"].T, overwrite_c=1)
        p["b2"] += alpha * s.sum(axis=0)
        p["b1"] -= alpha * gh[b]
        return gh
