"""Training-step throughput: the project's step against a plain NumPy loop and PyTorch.

All implementations train the same 3072 → m → K model from the same initial weights on
the same uint8 rows and the same index stream, in one process; they are timed in
turns (the order rotates every repeat), so drifting machine load hits them alike, and
every ratio is the median of per-repeat ratios of neighbouring measurements.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from mlp.bench import malloc
from mlp.model import init_params
from mlp.sgd import SGDStep, times_w1t, update_w1

# Pause before each multi-threaded block: the implementations use three thread pools (NumPy's
# OpenBLAS, SciPy's OpenBLAS, PyTorch's OpenMP) whose idle threads spin for a while after
# their last call and take a core from the next block (project at 2 threads: 34k samples/s
# right after other pools' blocks, 73k alone).
SETTLE_S = 0.5


def step_flops(batch: int, d_in: int, hidden: int, n_classes: int) -> int:
    """Multiply-adds ×2 of one step: forward X·W1ᵀ, H·W2ᵀ; backward Gᵀ·H, G·W2, Ghᵀ·X."""
    return 4 * batch * d_in * hidden + 6 * batch * hidden * n_classes


def plain_numpy_step(p: dict, x_rows, y_rows, idx, mean, std, lam: float, eta: float) -> None:
    """The same maths written the obvious way: fresh arrays for every intermediate."""
    x = (x_rows[idx] - mean) / std
    y = y_rows[idx]
    n = len(idx)
    s1 = x @ p["W1"].T + p["b1"]
    h = np.maximum(s1, 0)
    s = h @ p["W2"].T + p["b2"]
    e = np.exp(s - s.max(axis=1, keepdims=True))
    probs = e / e.sum(axis=1, keepdims=True)
    onehot = np.zeros_like(probs)
    onehot[np.arange(n), y] = 1
    g = (probs - onehot) / n
    grad_w2 = g.T @ h + 2 * lam * p["W2"]
    grad_b2 = g.sum(axis=0)
    gh = (g @ p["W2"]) * (s1 > 0)
    grad_w1 = gh.T @ x + 2 * lam * p["W1"]
    grad_b1 = gh.sum(axis=0)
    p["W1"] -= eta * grad_w1
    p["b1"] -= eta * grad_b1
    p["W2"] -= eta * grad_w2
    p["b2"] -= eta * grad_b2


def gemms_only(stepper: SGDStep, b: int, lam: float, eta: float) -> None:
    """Only the GEMMs of the project's step, on its own buffers, layouts and calls (values
    are whatever the buffers hold): the ceiling of any step around this BLAS, so the table
    shows how much of the gap to the GEMM peak is the GEMMs' own."""
    g, p = stepper.gemm, stepper.params
    assert g is not None, "GEMMs-alone needs the fused (SciPy BLAS) step"
    x, s1, gh = stepper.x[: b + 1], stepper.s1[: b + 1], stepper.gh[: b + 1]
    s = stepper.scores_buffer(b)[0]
    alpha, beta = -eta / b, 1.0 - 2.0 * eta * lam
    times_w1t(g, p["W1"], x, s1)
    g(1.0, s1[:b].T, p["W2"].T, 0.0, s, trans_a=1, overwrite_c=1)
    g(1.0, p["W2"].T, s, 0.0, gh[:b].T, trans_b=1, overwrite_c=1)
    g(alpha, s1[:b].T, s, beta, p["W2"].T, overwrite_c=1)
    update_w1(g, p["W1"], gh, x, alpha, beta)


class TorchStep:
    """The same model and update in PyTorch (autograd, torch.optim.SGD with weight decay 2λ on W)."""

    def __init__(self, params: dict, mean, inv_std, lam: float, threads: int):
        import torch

        torch.set_num_threads(threads)
        self.torch = torch
        dtype = {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32}[
            params["W1"].dtype
        ]
        self.t = {k: torch.tensor(v, dtype=dtype, requires_grad=True) for k, v in params.items()}
        self.mean = torch.tensor(mean, dtype=dtype)
        self.inv_std = torch.tensor(inv_std, dtype=dtype)
        self.dtype = dtype
        self.opt = torch.optim.SGD(
            [
                {"params": [self.t["W1"], self.t["W2"]], "weight_decay": 2 * lam},
                {"params": [self.t["b1"], self.t["b2"]], "weight_decay": 0.0},
            ],
            lr=0.0,
        )

    def step(self, x_rows, y_rows, idx, eta: float) -> None:
        torch, t = self.torch, self.t
        i = torch.from_numpy(idx)
        x = (x_rows.index_select(0, i).to(self.dtype) - self.mean) * self.inv_std
        h = torch.relu(torch.addmm(t["b1"], x, t["W1"].t()))
        loss = torch.nn.functional.cross_entropy(
            torch.addmm(t["b2"], h, t["W2"].t()), y_rows.index_select(0, i)
        )
        self.opt.zero_grad()
        loss.backward()
        for group in self.opt.param_groups:
            group["lr"] = eta
        self.opt.step()


def torch_available() -> str | None:
    """None when PyTorch can be imported, else the reason (for the table's note)."""
    try:
        import torch  # noqa: F401
    except Exception as exc:  # ImportError, or a broken install
        return f"PyTorch not installed ({type(exc).__name__}); pip install '.[bench]'"
    return None


@dataclass
class StepResult:
    dtype: str
    threads: int
    samples_per_s: dict[str, float]  # implementation → median samples/s
    ratios: dict[str, float]  # "project/numpy" → median of per-repeat ratios
    gflops: dict[str, float]
    repeats: int
    steps: int


def make_rows(n: int, d_in: int, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, 256, size=(n, d_in), dtype=np.uint8),
        rng.integers(0, n_classes, size=n).astype(np.uint8),
    )


@dataclass
class Workload:
    """What every implementation trains on: the same uint8 rows, statistics, initial weights
    and index stream (measure() and the fresh-process plain loop alike)."""

    x_rows: np.ndarray
    y_rows: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    init: dict[str, np.ndarray]
    order: np.ndarray
    starts: list[int]

    def params(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.init.items()}


def workload(
    dtype,
    steps: int,
    batch: int = 100,
    hidden: int = 50,
    n_classes: int = 10,
    n_rows: int = 10_000,
    seed: int = 0,
) -> Workload:
    x_rows, y_rows = make_rows(n_rows, 3072, n_classes, seed)
    return Workload(
        x_rows,
        y_rows,
        x_rows.mean(axis=0),
        x_rows.std(axis=0),
        init_params(
            x_rows.shape[1], hidden, n_classes, np.random.default_rng(seed), np.dtype(dtype)
        ),
        np.random.default_rng([seed, 1]).permutation(n_rows),
        [(j * batch) % (n_rows - batch + 1) for j in range(steps)],
    )


def measure(
    dtype,
    threads: int,
    steps: int,
    repeats: int,
    batch: int = 100,
    hidden: int = 50,
    n_classes: int = 10,
    n_rows: int = 10_000,
    lam: float = 0.01,
    eta: float = 0.01,
    with_torch: bool = True,
    extra: bool = False,
    seed: int = 0,
) -> StepResult:
    """Interleaved timing of `steps` steps per implementation, `repeats` times, with glibc's
    malloc thresholds raised (set explicitly, so loading PyTorch or not changes nothing)."""
    dtype = np.dtype(dtype)
    w = workload(dtype, steps, batch, hidden, n_classes, n_rows, seed)
    x_rows, y_rows, mean, std, order, starts, copy = (
        w.x_rows,
        w.y_rows,
        w.mean,
        w.std,
        w.order,
        w.starts,
        w.params,
    )
    inv_std = 1.0 / std

    impls: dict[str, Callable[[], object]] = {}
    stepper = SGDStep(copy(), batch, mean, inv_std)  # exactly as mlp/train.py builds and calls it
    impls["project"] = lambda: [
        stepper.step(x_rows, y_rows, order[lo : lo + batch], lam, eta) for lo in starts
    ]
    if extra and stepper.gemm is not None:
        ceiling = SGDStep(copy(), batch, mean, inv_std)
        ceiling.step(x_rows, y_rows, order[:batch], lam, eta)  # realistic buffer contents
        # α = −η/b must not be 0: BLAS skips the product then. A tiny η leaves the weights as they are.
        impls["GEMMs-alone"] = lambda: [gemms_only(ceiling, batch, lam, 1e-9) for _ in starts]
    if extra:
        unfused = SGDStep(copy(), batch, mean, inv_std, fused=False)
        impls["project-unfused"] = lambda: [
            unfused.step(x_rows, y_rows, order[lo : lo + batch], lam, eta) for lo in starts
        ]
    plain_p, m_dt, s_dt = copy(), mean.astype(dtype), std.astype(dtype)
    plain = lambda: [
        plain_numpy_step(plain_p, x_rows, y_rows, order[lo : lo + batch], m_dt, s_dt, lam, eta)  # noqa: E731
        for lo in starts
    ]
    impls["numpy"] = (
        plain  # glibc's malloc thresholds raised (mlp.bench.malloc): the plain loop's best case
    )
    if with_torch:
        import torch

        tstep = TorchStep(copy(), mean, inv_std, lam, threads)
        tx, ty = torch.from_numpy(x_rows), torch.from_numpy(y_rows.astype(np.int64))
        impls["pytorch"] = lambda: [
            tstep.step(tx, ty, order[lo : lo + batch], eta) for lo in starts
        ]

    names = list(impls)
    times: dict[str, list[float]] = {k: [] for k in names}
    malloc.set_thresholds(malloc.RAISED)
    with threadpool_limits(limits=threads):
        for k in names:  # warm-up: caches, BLAS buffers, torch's first-call setup
            impls[k]()
        for r in range(repeats):
            for k in names[r % len(names) :] + names[: r % len(names)]:
                if threads > 1:
                    time.sleep(SETTLE_S)
                t0 = time.perf_counter()
                impls[k]()
                times[k].append(time.perf_counter() - t0)
    flops = step_flops(batch, x_rows.shape[1], hidden, n_classes)
    sps = {k: batch * steps / statistics.median(v) for k, v in times.items()}
    ratios = {
        f"project/{k}": statistics.median(
            o / p for o, p in zip(times[k], times["project"], strict=True)
        )
        for k in names
        if k != "project"
    }
    gf = {k: flops * steps / statistics.median(v) / 1e9 for k, v in times.items()}
    return StepResult(dtype.name, threads, sps, ratios, gf, repeats, steps)


def plain_in_fresh_process(dtype, threads: int, steps: int, repeats: int) -> float:
    """Median samples/s of the plain NumPy loop in a new Python process, glibc left as it
    starts (the loop as a user runs it): its batch-sized temporaries are mmapped and
    page-faulted in every step there, which no setting inside this process can undo."""
    code = (
        "import json, sys; from mlp.bench.steps import plain_blocks; "
        f"print(json.dumps(plain_blocks({np.dtype(dtype).name!r}, {threads}, {steps}, {repeats})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return statistics.median(json.loads(out.stdout.strip().splitlines()[-1]))


def plain_blocks(
    dtype,
    threads: int,
    steps: int,
    repeats: int,
    batch: int = 100,
    n_rows: int = 10_000,
    lam: float = 0.01,
    eta: float = 0.01,
    seed: int = 0,
) -> list[float]:
    """samples/s of `repeats` blocks of the plain loop after one warm-up block (same data and
    index stream as measure())."""
    dtype = np.dtype(dtype)
    w = workload(dtype, steps, batch, n_rows=n_rows, seed=seed)
    mean, std, p = w.mean.astype(dtype), w.std.astype(dtype), w.params()
    rates = []
    with threadpool_limits(limits=threads):
        for r in range(repeats + 1):
            t0 = time.perf_counter()
            for lo in w.starts:
                plain_numpy_step(
                    p, w.x_rows, w.y_rows, w.order[lo : lo + batch], mean, std, lam, eta
                )
            if r:
                rates.append(batch * steps / (time.perf_counter() - t0))
    return rates
