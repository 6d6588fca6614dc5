"""Analytic backprop (the training step's own gradient code) against centred finite differences."""

from __future__ import annotations

import numpy as np

from mlp.model import PARAM_NAMES, cross_entropy_sum, init_params
from mlp.sgd import SGDStep


class PerturbedCost:
    """cost(θ) of model.loss_and_cost for θ differing from params_ref in one entry, computed with
    the same NumPy operations on the same values, so to the bit the same number, without redoing
    what that entry leaves unchanged: x·W1ᵀ is kept and only the perturbed W1 row's column is
    recomputed (NumPy's matmul without BLAS sums each output element in its own loop over d, for
    a matrix as for one row), and each weight's ‖W‖² is kept unless that weight is perturbed. The
    extended-precision reference then costs ~1/10 of a full loss_and_cost per entry (the study's
    3072-dimension check took 8.6 s, most of it those two)."""

    def __init__(self, params_ref: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, lam: float):
        self.p, self.x, self.y, self.lam = params_ref, x, y, lam
        self.xw1 = x @ params_ref["W1"].T
        # l2_penalty's squares, into buffers made once (the same values as its temporaries)
        self.buf = {
            w: np.empty_like(params_ref[w], dtype=np.result_type(params_ref[w].dtype, np.float64))
            for w in ("W1", "W2")
        }
        self.squares = {w: self._square_sum(w) for w in ("W1", "W2")}

    def _square_sum(self, w: str):
        return np.square(self.p[w], dtype=self.buf[w].dtype, out=self.buf[w]).sum()

    def __call__(self, name: str, index: int):
        """The cost with params_ref as it is now, of which only entry `index` of `name` may
        differ from the values this object was made with."""
        p, h = self.p, self.xw1
        if name == "W1":
            row = index // p["W1"].shape[1]
            h = h.copy()
            h[:, row] = self.x @ p["W1"][row]
        else:
            h = h.copy()
        h += p["b1"]  # from here on model.scores, loss_and_cost and l2_penalty, step by step
        np.maximum(h, 0, out=h)
        s = h @ p["W2"].T
        s += p["b2"]
        loss = cross_entropy_sum(s, self.y) / len(self.y)
        squares = {w: self._square_sum(w) if w == name else self.squares[w] for w in ("W1", "W2")}
        return loss + self.lam * sum(squares[w] for w in ("W1", "W2"))


def numerical_gradients(
    params_ref: dict[str, np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    lam: float,
    h: float,
    entries: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """(cost(θ+h) − cost(θ−h)) / 2h for the listed flat entries of each parameter.

    Evaluated in the dtype of params_ref (extended precision by default), so that the
    reference's own rounding noise stays far below the 1e-6 bar it is judged by. Each cost is
    model.loss_and_cost's to the bit (PerturbedCost)."""
    cost = PerturbedCost(params_ref, x, y, lam)
    out = {}
    for name in PARAM_NAMES:
        flat = params_ref[name].reshape(-1)
        if not np.shares_memory(flat, params_ref[name]):
            raise ValueError(
                f"{name} must be C-contiguous: perturbing a flattened copy would change nothing"
            )
        grads = np.empty(len(entries[name]))
        for k, i in enumerate(entries[name]):
            keep = flat[i]
            flat[i] = keep + h
            plus = cost(name, int(i))
            flat[i] = keep - h
            minus = cost(name, int(i))
            flat[i] = keep
            grads[k] = (plus - minus) / (2 * h)
        out[name] = grads
    return out


def compare(analytic: np.ndarray, numeric: np.ndarray) -> dict[str, float]:
    """The study's table row: gradient and error magnitudes, and max |ga−gn| / max(1e-12, |ga|+|gn|)."""
    abs_err = np.abs(analytic - numeric)
    rel = abs_err / np.maximum(1e-12, np.abs(analytic) + np.abs(numeric))
    return {
        "n_entries": int(len(analytic)),
        "grad_max": float(np.abs(analytic).max()),
        "grad_mean": float(np.abs(analytic).mean()),
        "grad_std": float(analytic.std()),
        "abs_err_max": float(abs_err.max()),
        "abs_err_mean": float(abs_err.mean()),
        "abs_err_std": float(abs_err.std()),
        "max_rel_error": float(rel.max()),
    }


def check_case(
    x: np.ndarray,
    y: np.ndarray,
    hidden: int,
    n_classes: int,
    lam: float,
    h: float,
    dtype,
    seed: int,
    max_entries: int | None,
) -> dict[str, dict[str, float]]:
    """Gradient check on normalised inputs x (n × dims); returns one table row per parameter."""
    rng = np.random.default_rng(seed)
    params = init_params(x.shape[1], hidden, n_classes, rng, dtype)
    stepper = SGDStep(params, len(y), np.zeros(x.shape[1]), np.ones(x.shape[1]))
    b = stepper.set_batch(x.astype(dtype))
    analytic = {k: v.copy() for k, v in stepper.gradients(b, y, lam).items()}
    entries = {}
    for name in PARAM_NAMES:
        size = params[name].size
        if max_entries is None or size <= max_entries:
            entries[name] = np.arange(size)
        else:
            entries[name] = np.sort(rng.choice(size, max_entries, replace=False))
    params_ref = {
        k: np.ascontiguousarray(v, dtype=np.longdouble) for k, v in params.items()
    }  # W1 may be F-ordered
    numeric = numerical_gradients(params_ref, x.astype(np.longdouble), y, lam, h, entries)
    return {
        name: compare(
            analytic[name].reshape(-1)[entries[name]].astype(np.float64),
            numeric[name].astype(np.float64),
        )
        for name in PARAM_NAMES
    }
