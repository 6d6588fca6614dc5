"""Bundled training's figures: a bundle of k models against k separate steps, and against its
own GEMMs alone, timed in interleaved blocks like the step part (mlp.bench.steps).

Every implementation trains from the same initial weights on the same rows and index
stream; the order of the implementations rotates every repeat, and each ratio is the median
of per-repeat ratios of neighbouring blocks, so drifting load on a shared machine hits them
alike.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from mlp.bench import malloc
from mlp.bench.steps import SETTLE_S, step_flops, workload
from mlp.bench.sweep import GRID
from mlp.bundle import BundleStep
from mlp.sgd import SGDStep, times_w1t

KS = (1, 2, 4, 6, 12)


def bundle_gemms_only(st: BundleStep, b: int, eta: float) -> None:
    """Only the GEMMs of a bundle step, on its own buffers and calls: the stacked forward
    GEMM, each model's three small ones, the stacked W1 update (values: whatever the buffers
    hold). The ceiling of any bundle step around this BLAS."""
    g, x, s1, gh = st.gemm, st.x[: b + 1], st.s1[: b + 1], st.gh[: b + 1]
    alpha = -eta / b
    times_w1t(g, st.w1, x, s1)
    for lane in st.lanes:
        p, h, s = lane.params, lane.s1[:b], lane.scores_buffer(b)[0]
        g(1.0, h.T, p["W2"].T, 0.0, s, trans_a=1, overwrite_c=1)
        g(1.0, p["W2"].T, s, 0.0, lane.gh[:b].T, trans_b=1, overwrite_c=1)
        g(alpha, h.T, s, 1.0, p["W2"].T, overwrite_c=1)
    g(alpha, x.T, gh.T, 1.0, st.w1.T, trans_b=1, overwrite_c=1)


@dataclass
class BundleResult:
    dtype: str
    k: int
    per_model: dict[str, float]  # implementation → median samples/s per model
    gflops: dict[str, float]  # implementation → median GFLOP/s (all k models)
    ratios: dict[str, float]  # "bundle/separate", "bundle/GEMMs-alone" → median ratio
    repeats: int
    steps: int


def measure(
    dtype,
    k: int,
    steps: int,
    repeats: int,
    threads: int = 1,
    batch: int = 100,
    n_rows: int = 10_000,
    eta: float = 0.01,
    seed: int = 0,
) -> BundleResult:
    """Interleaved blocks of `steps` steps: the bundle of k, k lone steps per step (k separate
    jobs' work), and the bundle's GEMMs alone."""
    dtype = np.dtype(dtype)
    w = workload(dtype, steps, batch, n_rows=n_rows, seed=seed)
    inv_std = 1.0 / w.std
    lams = [10.0 ** (-5 + j % 6) for j in range(k)]  # a λ grid like the coarse search's
    bundle = BundleStep([w.params() for _ in range(k)], batch, w.mean, inv_std)
    lone = [SGDStep(w.params(), batch, w.mean, inv_std) for _ in range(k)]
    ceiling = BundleStep([w.params() for _ in range(k)], batch, w.mean, inv_std)
    ceiling.step(w.x_rows, w.y_rows, w.order[:batch], lams, eta)  # realistic buffer contents
    x, y, order, starts = w.x_rows, w.y_rows, w.order, w.starts

    def bundle_steps() -> None:
        for lo in starts:
            bundle.step(x, y, order[lo : lo + batch], lams, eta)

    def separate_steps() -> None:
        for lo in starts:
            for s, lam in zip(lone, lams, strict=True):
                s.step(x, y, order[lo : lo + batch], lam, eta)

    def gemms_alone() -> None:
        # α = −η/b must not be 0 (BLAS skips the product then); a tiny η leaves the weights unchanged
        for _ in starts:
            bundle_gemms_only(ceiling, batch, 1e-9)

    impls: dict[str, Callable[[], None]] = {
        "bundle": bundle_steps,
        "separate": separate_steps,
        "GEMMs-alone": gemms_alone,
    }
    names = list(impls)
    times: dict[str, list[float]] = {n: [] for n in names}
    malloc.set_thresholds(malloc.RAISED)
    with threadpool_limits(limits=threads):
        for n in names:
            impls[n]()
        for r in range(repeats):
            for n in names[r % len(names) :] + names[: r % len(names)]:
                if threads > 1:
                    time.sleep(SETTLE_S)
                t0 = time.perf_counter()
                impls[n]()
                times[n].append(time.perf_counter() - t0)
    flops = step_flops(batch, x.shape[1], 50, 10) * k * steps
    med = {n: statistics.median(v) for n, v in times.items()}
    ratios = {
        f"bundle/{n}": statistics.median(
            o / p for o, p in zip(times[n], times["bundle"], strict=True)
        )
        for n in names
        if n != "bundle"
    }
    return BundleResult(
        dtype.name,
        k,
        {n: batch * steps / t for n, t in med.items()},
        {n: flops / t / 1e9 for n, t in med.items()},
        ratios,
        repeats,
        steps,
    )


# ---- a search job's time split, and the λ-search stage's throughput ------------------------


def job_split(data: list[str], k: int) -> dict[str, dict[str, float]]:
    """Seconds per job of one coarse-search job (3 cycles) in-process, split into steps,
    evaluation (record points) and the rest (load, init, test metrics, result): alone, and as
    one of a bundle of k."""
    from hydra import compose, initialize_config_dir

    from mlp.bundle_run import run_bundle
    from mlp.experiment import run_experiment

    conf = str(Path(__file__).resolve().parents[2] / "conf")
    base = ["experiment=lambda_coarse", "train.cycles=3", "train.blas_threads=1", *data]
    with initialize_config_dir(config_dir=conf, version_base="1.3"):
        jobs = [
            compose(config_name="config", overrides=[*base, f"lambda={lam}"]) for lam in GRID[:k]
        ]

    def split(result: dict) -> dict[str, float]:
        return {
            "train": result["train_s"] - result["eval_s"],
            "evaluate": result["eval_s"],
            "rest": result["wall_s"] - result["train_s"],
            "wall": result["wall_s"],
        }

    out = {"alone": split(run_experiment(jobs[0]))}
    res = run_bundle(jobs)
    if all(isinstance(r, dict) for r in res):
        parts = [split(r) for r in res if isinstance(r, dict)]  # all of them (narrows the type)
        out[f"bundle of {k} (per job)"] = {key: sum(p[key] for p in parts) / k for key in parts[0]}
    return out
