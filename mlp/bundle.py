"""Train k models that share data, seed, split and schedule (they differ in λ) in one loop.

The step's two big GEMMs have N = 50 (hidden units), a shape that leaves this machine's BLAS
at ~60 % of its peak. Stacking the k models' W1 row blocks into one (k·m) × d matrix makes
the forward product X W1ᵀ and the W1 update one wider GEMM each, and each batch is gathered
and normalised once for all k. Everything else (scores, softmax, W2, biases) runs per model
on that model's own SGDStep buffers, so each model follows exactly the arithmetic of a lone
job: the stacked GEMMs compute every output element over the same K in the same order, and
BLAS applies a lone job's β = 1 − 2ηλ as a scaling pass of W1 before accumulating α GhᵀX,
which is what the per-model `*= β` below does before the stacked update with β = 1.
"""

from __future__ import annotations

import time

import numpy as np

from mlp.data import Dataset
from mlp.sgd import SGDStep, fused_gemm, times_w1t
from mlp.train import evaluation_record, plan_run, plan_segment


class BundleStep:
    """k models' SGD step with stacked W1 GEMMs. params_list[j]["W1"] becomes a view of
    row block j of the stacked, row-major W1 (same values), so callers read it afresh."""

    def __init__(
        self,
        params_list: list[dict[str, np.ndarray]],
        batch_size: int,
        mean: np.ndarray,
        inv_std: np.ndarray,
    ):
        dtype = params_list[0]["W1"].dtype
        self.gemm = fused_gemm(dtype)
        if self.gemm is None:
            raise RuntimeError("bundled training needs SciPy's BLAS wrappers (scipy.linalg.blas)")
        self.k = len(params_list)
        self.m = params_list[0]["W1"].shape[0]
        self.w1 = np.concatenate([p["W1"] for p in params_list], axis=0)  # (k·m) × d, row-major
        for j, p in enumerate(params_list):
            p["W1"] = self.w1[j * self.m : (j + 1) * self.m]
        self.lanes = [SGDStep(p, batch_size, mean, inv_std, w1_order="C") for p in params_list]
        self.x = self.lanes[0].x  # one gathered, scaled batch for all k
        for lane in self.lanes[1:]:
            lane.x = self.x
        if self.k == 1:  # one model: its own buffers are the stacked ones (no copies)
            self.s1, self.gh = self.lanes[0].s1, self.lanes[0].gh
        else:
            self.s1 = np.empty(
                (batch_size + 1, self.k * self.m), dtype=dtype
            )  # X W1ᵀ of every model
            self.gh = np.empty((batch_size + 1, self.k * self.m), dtype=dtype)  # Gh of every model

    @property
    def params(self) -> list[dict[str, np.ndarray]]:
        return [lane.params for lane in self.lanes]

    def block(self, j: int) -> slice:
        return slice(j * self.m, (j + 1) * self.m)

    def step(
        self, x_rows: np.ndarray, y_rows: np.ndarray, idx: np.ndarray, lams: list[float], eta: float
    ) -> None:
        """One SGD step of every model on rows idx, model j with λ = lams[j]."""
        b = self.lanes[0].load_batch(x_rows, idx)
        y, x = y_rows[idx], self.x[: b + 1]
        s1, gh = self.s1[: b + 1], self.gh[: b + 1]
        times_w1t(self.gemm, self.w1, x, s1)
        alpha = -eta / b
        for j, (lane, lam) in enumerate(zip(self.lanes, lams, strict=True)):
            cols = self.block(j)
            if self.k > 1:
                np.copyto(lane.s1[: b + 1], s1[:, cols])
            lane._head(b, y)
            beta = 1.0 - 2.0 * eta * lam
            lane_gh = lane._update_head(b, alpha, beta)
            if self.k > 1:
                np.copyto(gh[:, cols], lane_gh)
            if beta != 1.0:  # what BLAS does for a lone job's β before it accumulates α GhᵀX
                self.w1[cols] *= beta
        # W1ᵀ (column-major view of the row-major stack) ← W1ᵀ + α Xᵀ Gh, all k blocks
        self.gemm(alpha, x.T, gh.T, 1.0, self.w1.T, trans_b=1, overwrite_c=1)


def train_bundle(
    ds: Dataset, params_list: list[dict[str, np.ndarray]], train_cfg, lams: list[float], seed: int
) -> dict:
    """Train every model in place over the shared segment (the whole run or a rung), as
    mlp.train.train would train each alone; returns the shared timings, one history per model
    and each model's record at the segment's end ("lasts")."""
    plan = plan_run(train_cfg, len(ds.train))
    seg = plan_segment(train_cfg, plan)
    stepper = BundleStep(params_list, plan.batch, ds.mean, ds.inv_std)
    histories: list[list[dict]] = [[] for _ in lams]
    eval_s = [0.0] * len(lams)

    def record_all(t: int) -> list[dict]:
        records = []
        for j, (params, lam) in enumerate(zip(stepper.params, lams, strict=True)):
            start = time.perf_counter()
            records.append(
                evaluation_record(params, ds, lam, t, t / plan.steps_per_epoch, plan.eta_at(t))
            )
            eval_s[j] += time.perf_counter() - start
        return records

    start = time.perf_counter()
    if seg.start == 0 and 0 in plan.marks:
        for history, rec in zip(histories, record_all(0), strict=True):
            history.append(rec)
    for t, idx in plan.batches(seed, seg.start, seg.stop):
        stepper.step(ds.train.x, ds.train.y, idx, lams, plan.etas[t])
        if t + 1 in plan.marks:
            for history, rec in zip(histories, record_all(t + 1), strict=True):
                history.append(rec)
    if seg.stop in plan.marks:
        lasts = [history[-1] for history in histories]
    else:  # a rung ending between record points: its end is measured, not recorded
        lasts = record_all(seg.stop)
    total = time.perf_counter() - start
    step_s = total - sum(eval_s)
    return {
        "histories": histories,
        "lasts": lasts,
        "n_s": plan.n_s,
        "steps": plan.steps,
        "segment": [seg.start, seg.stop],
        "train_s": total,
        "eval_s": eval_s,
        "step_s": step_s,
        "samples_per_s": (seg.stop - seg.start) * plan.batch * len(lams) / max(step_s, 1e-9),
    }
