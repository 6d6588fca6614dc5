"""Mini-batch SGD with a cyclic (or constant) learning rate, recording loss/cost/accuracy."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mlp import run_progress
from mlp.data import Dataset
from mlp.evaluate import evaluate
from mlp.model import l2_penalty
from mlp.schedule import make_schedule
from mlp.sgd import SGDStep


def resolve_n_s(train_cfg, n_train: int) -> int | None:
    """n_s as configured, or n_s_epochs·⌊n/batch⌋ (the study's '2 epochs per half-cycle')."""
    if train_cfg.schedule != "cyclic":
        return None
    if train_cfg.n_s is not None:
        return int(train_cfg.n_s)
    return int(train_cfg.n_s_epochs) * (n_train // int(train_cfg.batch_size))


def total_steps(train_cfg, n_train: int, n_s: int | None) -> int:
    if train_cfg.schedule == "cyclic":
        assert n_s is not None, "a cyclic schedule has a step size n_s"
        return 2 * n_s * int(train_cfg.cycles)
    return int(train_cfg.epochs) * math.ceil(n_train / int(train_cfg.batch_size))


def record_steps(train_cfg, steps: int, n_s: int | None) -> list[int]:
    """Step 0, every record_every steps (default: record_points_per_cycle per cycle), and the end;
    train.record=final: the end only (a search job reads only its final metrics)."""
    if train_cfg.get("record", "curve") == "final":
        return [steps]
    every = train_cfg.record_every
    if every is None:
        period = 2 * n_s if n_s else steps
        every = max(1, period // int(train_cfg.record_points_per_cycle))
    return sorted(set(range(0, steps, int(every))) | {steps})


def minibatches(rng: np.random.Generator, n: int, batch: int, steps: int):
    """(step index, the step's sample indices) for `steps` steps over shuffled epochs: one
    permutation per epoch, the last batch of an epoch may be short. Shared by the lone and
    the bundled loop, so both see the same batches for a seed."""
    t = 0
    while t < steps:
        order = rng.permutation(n)
        for lo in range(0, n, batch):
            if t >= steps:
                return
            yield t, order[lo : lo + batch]
            t += 1


@dataclass(frozen=True)
class RunPlan:
    """What a run's loop does, derived once from its config and training-set size: the lone
    loop (`train`) and the bundled one (`mlp.bundle.train_bundle`) both use it, so a bundled
    job draws the same batches at the same η and records at the same steps as alone."""

    n: int
    batch: int
    n_s: int | None
    steps: int
    eta_at: Callable
    etas: list[float]  # η for every step at once: a scalar NumPy call per step was ~1.5% of a step
    marks: frozenset[int]
    steps_per_epoch: int

    def batches(self, seed: int, start: int = 0, stop: int | None = None):
        """minibatches() over the shuffling stream of seed, independent of the init stream; from
        step `start` (the stream's first batches are drawn and skipped: a continued run sees the
        batches it would have seen in one go) up to step `stop` (default: the end)."""
        stop = self.steps if stop is None else stop
        stream = minibatches(np.random.default_rng([seed, 1]), self.n, self.batch, stop)
        return itertools.islice(stream, start, None)


@dataclass(frozen=True)
class Segment:
    """The steps a run trains: [start, stop) of its plan's full budget. The whole run is
    (0, plan.steps); a rung of a successive-halving search (train.rung, in cycles) is a part of
    it, trained on the full budget's schedule and batch stream, so rungs run one after another
    end exactly where the whole run ends."""

    start: int
    stop: int


def cycle_step(plan: RunPlan, cycles) -> int:
    """The step at which `cycles` cycles of the plan's cyclic schedule end (null: the end)."""
    if cycles is None:
        return plan.steps
    assert plan.n_s is not None, "rungs are cycles of a cyclic schedule (validate checks it)"
    return int(round(2 * plan.n_s * float(cycles)))


def plan_segment(train_cfg, plan: RunPlan) -> Segment:
    """train.rung {start, stop} (cycles; stop null: the full budget) as steps; no rung: the whole run."""
    rung = train_cfg.get("rung")
    if rung is None:
        return Segment(0, plan.steps)
    return Segment(cycle_step(plan, rung.get("start") or 0), cycle_step(plan, rung.get("stop")))


def plan_run(train_cfg, n: int) -> RunPlan:
    batch = int(train_cfg.batch_size)
    n_s = resolve_n_s(train_cfg, n)
    steps = total_steps(train_cfg, n, n_s)
    eta_at = make_schedule(train_cfg, n_s)
    return RunPlan(
        n=n,
        batch=batch,
        n_s=n_s,
        steps=steps,
        eta_at=eta_at,
        etas=np.broadcast_to(eta_at(np.arange(steps)), (steps,)).tolist(),
        marks=frozenset(record_steps(train_cfg, steps, n_s)),
        steps_per_epoch=math.ceil(n / batch),
    )


def evaluation_record(
    params: dict[str, np.ndarray], ds: Dataset, lam: float, t: int, epoch: float, eta: float
) -> dict:
    """One history record: loss, cost and accuracy on the training and validation splits."""
    penalty = float(l2_penalty(params))
    tr = evaluate(params, ds.train, ds.mean, ds.inv_std, lam, penalty)
    va = evaluate(params, ds.val, ds.mean, ds.inv_std, lam, penalty)
    return {
        "step": t,
        "epoch": epoch,
        "eta": eta,
        "train_loss": tr["loss"],
        "train_cost": tr["cost"],
        "train_acc": tr["acc"],
        "val_loss": va["loss"],
        "val_cost": va["cost"],
        "val_acc": va["acc"],
    }


def train(ds: Dataset, params: dict[str, np.ndarray], train_cfg, lam: float, seed: int) -> dict:
    """Train params in place over the run's segment (the whole run, or a rung: params then
    hold the state at the rung's start); returns history records and timings (plain data).
    The history holds the plan's record points inside the segment; "last" is the record at
    its end (the final metrics), a record point or not."""
    plan = plan_run(train_cfg, len(ds.train))
    seg = plan_segment(train_cfg, plan)
    stepper = SGDStep(params, plan.batch, ds.mean, ds.inv_std)
    history, eval_s = [], 0.0
    progress = run_progress.start(plan.steps)

    def record(t: int) -> None:
        nonlocal eval_s
        start = time.perf_counter()
        history.append(
            evaluation_record(params, ds, lam, t, t / plan.steps_per_epoch, plan.eta_at(t))
        )
        eval_s += time.perf_counter() - start
        progress.record(t, history[-1]["train_loss"])

    start = time.perf_counter()
    if seg.start == 0 and 0 in plan.marks:
        record(0)
    for t, idx in plan.batches(seed, seg.start, seg.stop):
        stepper.step(ds.train.x, ds.train.y, idx, lam, plan.etas[t])
        if t + 1 >= progress.next_step:
            progress.step(t + 1)
        if t + 1 in plan.marks:
            record(t + 1)
    last = history[-1] if history and history[-1]["step"] == seg.stop else None
    if last is None:  # a rung ending between record points: its end is measured, not recorded
        record(seg.stop)
        last = history.pop()
    total = time.perf_counter() - start
    progress.close()
    return {
        "history": history,
        "last": last,
        "n_s": plan.n_s,
        "steps": plan.steps,
        "segment": [seg.start, seg.stop],
        "train_s": total,
        "eval_s": eval_s,
        "samples_per_s": (seg.stop - seg.start) * plan.batch / max(total - eval_s, 1e-9),
    }
