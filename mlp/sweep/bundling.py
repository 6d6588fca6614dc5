"""Driver-side grouping of a sweep's jobs into units of submission (one Ray task each).

Jobs whose resolved configs differ only in λ (same seed, data, split, schedule) can train
as one bundle (mlp.bundle): one batch gather and one wider GEMM pair per step for all of
them. How many per task depends on the jobs and the free CPUs: with at least one CPU per
job, one job per task is fastest; with more jobs than CPUs, the bundle size k is the one
whose estimated makespan (greedy longest-first over the slots, a bundle of k costing
k / (1 + gain·(1 − 1/k)) lone jobs) is shortest, k ≤ sweep.bundle_max.

Imports nothing numerical: the driver uses it before the numerics are loaded.
"""

from __future__ import annotations

import heapq
import math
from typing import Any

from mlp.bundle_key import bundle_key
from mlp.errors import UserError

MODES = ("auto", "off")


def check_settings(settings) -> None:
    """sweep.bundle, sweep.bundle_max, sweep.bundle_gain: one line naming a bad value."""
    mode, k_max, gain = (
        settings.get("bundle", "off"),
        settings.get("bundle_max", 1),
        settings.get("bundle_gain", 0),
    )
    if mode not in MODES:
        raise UserError(f"sweep.bundle={mode!r} is not allowed (allowed: {', '.join(MODES)})")
    if not isinstance(k_max, int) or isinstance(k_max, bool) or k_max < 1:
        raise UserError(f"sweep.bundle_max={k_max!r} must be a whole number ≥ 1")
    if not isinstance(gain, (int, float)) or isinstance(gain, bool) or not gain >= 0:
        raise UserError(f"sweep.bundle_gain={gain!r} must be a number ≥ 0")


def bundle_cost(k: int, gain: float) -> float:
    """Time of a bundle of k in lone-job units: k jobs at a speed-up that grows towards 1 + gain."""
    return k / (1.0 + gain * (1.0 - 1.0 / k))


def _chunks(items: list, k: int) -> list[list]:
    """items in ceil(n/k) consecutive chunks of near-equal size (sizes differ by at most one)."""
    n_chunks = math.ceil(len(items) / k)
    base, extra = divmod(len(items), n_chunks)
    out, lo = [], 0
    for i in range(n_chunks):
        hi = lo + base + (1 if i < extra else 0)
        out.append(items[lo:hi])
        lo = hi
    return out


def _makespan(sizes: list[int], slots: int, gain: float) -> float:
    """Greedy longest-first schedule of bundles of these sizes over `slots` CPUs."""
    loads = [0.0] * max(1, slots)
    for size in sorted(sizes, reverse=True):
        heapq.heapreplace(loads, loads[0] + bundle_cost(size, gain))
    return max(loads)


def plan_units(jobs: list, cfg_of, settings, slots: int) -> list[list]:
    """Units of submission: lists of jobs run as one (one job: mlp_sweep_job; more: a bundle).

    cfg_of(job) gives the job's resolved config (a dict). Largest units first (the greedy
    schedule's order, which Ray's queue then follows), ties in the jobs' order."""
    mode, k_max = settings.get("bundle", "off"), int(settings.get("bundle_max", 1))
    gain = float(settings.get("bundle_gain", 0.0))
    if mode == "off" or k_max < 2 or len(jobs) <= slots:
        return [[job] for job in jobs]
    groups: dict[str, list] = {}
    alone: list = []
    for job in jobs:
        key = bundle_key(cfg_of(job))
        (alone if key is None else groups.setdefault(key, [])).append(job)
    best_k, best_t = 1, None
    for k in range(1, k_max + 1):
        sizes = [1] * len(alone) + [len(c) for g in groups.values() for c in _chunks(g, k)]
        t = _makespan(sizes, slots, gain)
        if best_t is None or t < best_t - 1e-9:
            best_k, best_t = k, t
    units = [[job] for job in alone]
    for g in groups.values():
        units += _chunks(g, best_k)
    rank = {id(job): i for i, job in enumerate(jobs)}
    return sorted(units, key=lambda u: (-len(u), rank[id(u[0])]))


def shared_cpus(n_units: int, slots: int, cpus_per_job: float) -> float:
    """CPUs each task asks for when a whole sweep is n_units units on `slots` CPU slots.

    Between one and two waves (slots < n_units < 2·slots) a second wave would run with slots
    idle (the final's 3 seeds on 2 cores: 2 jobs, then 1 beside an idle core). Asking for
    slots/n_units of a slot each starts every unit at once and the OS shares the cores among
    them: the same single-threaded arithmetic (the same numbers), finished in n_units/slots
    waves instead of two. Otherwise cpus_per_job."""
    if slots < n_units < 2 * slots:
        return cpus_per_job * slots / n_units
    return cpus_per_job


def failed_result(job_cfg: dict, error: str) -> dict:
    """The result of a job whose task never returned (worker died for good, or similar)."""
    return {
        "status": "failed",
        "error": error,
        "experiment": job_cfg.get("name"),
        "seed": job_cfg.get("seed"),
        "lambda": job_cfg.get("lambda"),
    }


def unit_stream(next_job, cfg_of, settings, slots: int, chunk: int | None = None):
    """Units for a driver that pulls jobs one at a time (next_job() -> job or None): plans the
    jobs a chunk at a time (plan_units) and yields one unit (a list of jobs) at a time, so a
    sweep of any size starts after one chunk is composed. The chunk (default: enough for every
    slot to get a full bundle four times over) holds a λ-search stage whole."""
    size = chunk or max(64, 4 * slots * max(1, int(settings.get("bundle_max", 1))))
    while True:
        jobs: list[Any] = []
        while len(jobs) < size and (job := next_job()) is not None:
            jobs.append(job)
        if not jobs:
            return
        yield from plan_units(jobs, cfg_of, settings, slots)
        if len(jobs) < size:
            return
