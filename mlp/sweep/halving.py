"""Successive halving over one stage of the λ search (search=halving): every λ × seed trains to
the first rung, the best ⌊n/η⌋ λ (at least one) by the mean of `search.metric` over the seeds
go on from where they stopped to the next rung, and so on to the full budget.

A rung job is the stage's job plus train.rung {start, stop} (cycles; stop null: the full
budget): it trains the full budget's schedule and batch stream from `start` to `stop`, from the
state the previous rung ended with (mlp.sweep.rung_state), so a survivor's last rung ends with
the numbers of the same job trained in one go. Its config hash differs from the full job's and
from every other rung's, and each rung is one launch: a resumed search finds every finished
rung in the store and trains only what is missing.
"""

from __future__ import annotations

import math
import time

from mlp.errors import UserError


def check_halving(halving) -> None:
    """search.halving.eta > 1; rungs: increasing cycle counts > 0 (each < train.cycles: every
    job checks its own rung against its cycles before any job starts)."""
    eta = halving.get("eta")
    if not isinstance(eta, (int, float)) or isinstance(eta, bool) or not eta > 1:
        raise UserError(f"search.halving.eta={eta!r} must be a number > 1 (keep the best 1/η)")
    rungs = list(halving.get("rungs") or [])
    if not rungs:
        raise UserError("search.halving.rungs is empty (give the cycles to stop at, e.g. [1, 2])")
    for i, r in enumerate(rungs):
        if not isinstance(r, (int, float)) or isinstance(r, bool) or not r > 0:
            raise UserError(f"search.halving.rungs has {r!r}; each rung is a number of cycles > 0")
        if i and not r > rungs[i - 1]:
            raise UserError(f"search.halving.rungs={rungs} must increase strictly")


def keep_count(n: int, eta: float) -> int:
    """How many of n λ go on to the next rung: the best 1/η, at least one."""
    return max(1, math.floor(n / eta))


def rung_overrides(start, stop) -> list[str]:
    """A rung job's own overrides (cycles; stop None: the full budget)."""
    fmt = lambda v: "null" if v is None else repr(float(v))  # noqa: E731
    return [f"+train.rung.start={fmt(start)}", f"+train.rung.stop={fmt(stop)}"]


def model_steps(returns) -> int:
    """Steps trained by the ok jobs of a rung (cached ones included: their steps were spent)."""
    total = 0
    for ret in returns:
        res = ret.return_value
        if ret.status.name == "COMPLETED" and isinstance(res, dict) and "rung" in res:
            total += int(res["rung"]["steps"])
    return total


def full_steps(returns) -> int | None:
    """The full budget in steps: where an ok job of the last rung stopped."""
    for ret in returns:
        res = ret.return_value
        if ret.status.name == "COMPLETED" and isinstance(res, dict) and "rung" in res:
            return int(res["rung"]["stop_step"])
    return None


def run_stage(
    stage: str, jobs_for, lambdas, seeds, metric, halving, launch, first_idx, summarise, check=None
) -> dict:
    """Train one stage by successive halving. jobs_for(lambdas, extra overrides) -> the jobs'
    override lists; launch and summarise as in mlp.sweep.search. Returns "final" (the last
    rung's table: the λ trained to the full budget), "reached" (every λ's row at the last rung
    it reached, in the stage's order), "rungs" (per rung: cycles, λ, jobs, model-steps, wall,
    table, kept) and "next_idx" (the next job number). check(job overrides), if given, composes
    and checks a job: one job of every rung is checked before the first rung starts, so a rung
    past the budget stops the search before any job."""
    check_halving(halving)
    eta = float(halving.eta)
    bounds = [0.0, *[float(r) for r in halving.rungs], None]
    if check is not None:
        for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
            check(jobs_for(lambdas[:1], rung_overrides(start, stop))[0])
    alive = list(lambdas)
    rungs: list[dict] = []
    last_of: dict[float, dict] = {}  # each λ's row at the last rung it reached
    idx = first_idx
    for r, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:], strict=True), start=1):
        jobs = jobs_for(alive, rung_overrides(start, stop))
        began = time.perf_counter()
        returns = launch(jobs, idx, f"{stage}-rung{r}")
        wall = time.perf_counter() - began
        idx += len(jobs)
        table = summarise(alive, returns, seeds, metric)
        for row in table:
            row["rung"] = r
            last_of[row["lambda"]] = row
        done = sorted((row for row in table if row["n_ok"]), key=lambda row: -row[f"{metric}_mean"])
        if not done:
            raise UserError(
                f"every job of {stage} rung {r} failed; no λ to go on with (see results.csv)"
            )
        final = stop is None
        kept = [row["lambda"] for row in done[: keep_count(len(alive), eta)]] if not final else []
        rungs.append(
            {
                "rung": r,
                "start_cycles": start,
                "stop_cycles": stop,
                "lambdas": alive,
                "jobs": len(jobs),
                "model_steps": model_steps(returns),
                "wall_s": wall,
                "table": table,
                "kept": kept,
            }
        )
        if final:
            reached = [last_of[lam] for lam in lambdas]
            full = full_steps(returns)
            return {
                "final": table,
                "reached": reached,
                "rungs": rungs,
                "next_idx": idx,
                "full_steps": full,  # one job's whole budget
                # what training every λ × seed of the stage to the full budget costs
                "full_model_steps": None if full is None else full * len(lambdas) * len(seeds),
            }
        alive = [lam for lam in alive if lam in kept]
    raise AssertionError("the last rung has stop None")  # pragma: no cover
