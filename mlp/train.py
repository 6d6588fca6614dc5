"""Mini-batch SGD with a cyclic (or constant) learning rate, recording loss/cost/accuracy."""

from __future__ import annotations

import math
import time

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
    """Train params in place; returns history records and timings (plain data)."""
    n = len(ds.train)
    batch = int(train_cfg.batch_size)
    n_s = resolve_n_s(train_cfg, n)
    steps = total_steps(train_cfg, n, n_s)
    eta_at = make_schedule(train_cfg, n_s)
    marks = set(record_steps(train_cfg, steps, n_s))
    steps_per_epoch = math.ceil(n / batch)
    stepper = SGDStep(params, batch, ds.mean, ds.inv_std)
    rng = np.random.default_rng([seed, 1])  # shuffling stream, independent of the init stream
    history, eval_s = [], 0.0
    progress = run_progress.start(steps)

    def record(t: int) -> None:
        nonlocal eval_s
        start = time.perf_counter()
        history.append(evaluation_record(params, ds, lam, t, t / steps_per_epoch, eta_at(t)))
        eval_s += time.perf_counter() - start
        progress.record(t, history[-1]["train_loss"])

    # η for every step at once (the schedule is vectorised): one scalar NumPy call per step was ~1.5% of a step
    etas = np.broadcast_to(eta_at(np.arange(steps)), (steps,)).tolist()
    start = time.perf_counter()
    if 0 in marks:
        record(0)
    for t, idx in minibatches(rng, n, batch, steps):
        stepper.step(ds.train.x, ds.train.y, idx, lam, etas[t])
        if t + 1 >= progress.next_step:
            progress.step(t + 1)
        if t + 1 in marks:
            record(t + 1)
    total = time.perf_counter() - start
    progress.close()
    return {
        "history": history,
        "n_s": n_s,
        "steps": steps,
        "train_s": total,
        "eval_s": eval_s,
        "samples_per_s": steps * batch / max(total - eval_s, 1e-9),
    }
