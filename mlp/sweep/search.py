"""The study's two-stage λ search: a coarse grid, then N λ drawn log-uniformly (seeded)
around the best coarse value; every λ runs with each configured seed; the best mean
validation accuracy of the fine stage is the chosen λ. With search.halving set (search=halving)
each stage is trained by successive halving instead (mlp.sweep.halving).
"""

from __future__ import annotations

import math

import numpy as np

from mlp.errors import UserError
from mlp.sweep import halving as halving_mod

CONSUMED = (
    "search",
    "experiment",
    "seed",
)  # keys the search itself reads, not passed to jobs as-is


def check_search(search) -> None:
    """Bad stage settings stop the search before any job starts."""
    grid = list(search.coarse.grid)
    if not grid:
        raise UserError("search.coarse.grid is empty (give at least one λ ≥ 0)")
    for lam in grid:
        if not isinstance(lam, (int, float)) or isinstance(lam, bool) or lam < 0:
            raise UserError(f"search.coarse.grid has lambda={lam!r}; every λ must be a number ≥ 0")
    fine = search.fine
    if not isinstance(fine.n, int) or fine.n < 1:
        raise UserError(f"search.fine.n={fine.n!r} must be a whole number ≥ 1")
    if not 0 < fine.low_factor <= fine.high_factor:
        raise UserError(
            f"search.fine.low_factor={fine.low_factor} and high_factor={fine.high_factor} "
            f"must satisfy 0 < low_factor ≤ high_factor"
        )
    if search.metric not in ("val_acc", "test_acc", "train_acc"):
        raise UserError(
            f"search.metric={search.metric!r} is not allowed (allowed: val_acc, test_acc, train_acc)"
        )


def split_overrides(overrides) -> tuple[list[str], list[int] | None]:
    """The user's overrides minus the search's own; returns (passed to every job, seeds if given)."""
    base, seeds = [], None
    for ov in overrides:
        key = ov.get_key_element().lstrip("+~")
        if key == "seed":
            values = list(ov.sweep_iterator()) if ov.is_sweep_override() else [ov.value()]
            seeds = [int(v) for v in values]
        elif key == "lambda":
            raise UserError(
                "lambda= is what the search chooses; set search.coarse.grid / search.fine.* instead"
            )
        elif key.split(".")[0] in CONSUMED:
            continue
        elif ov.is_sweep_override():
            raise UserError(f"{key} cannot be swept inside search=lambda (only seed=a,b,...)")
        else:
            base.append(f"{ov.get_key_element()}={ov.get_value_element_as_str()}")
    return base, seeds


def stage_overrides(stage) -> list[str]:
    """A stage's own settings (e.g. train.cycles=2); command-line overrides come after and win."""
    return [str(ov) for ov in (stage.get("overrides") or [])]


def stage_jobs(
    base: list[str], experiment: str, lambdas: list[float], seeds: list[int]
) -> list[list[str]]:
    return [
        base + [f"experiment={experiment}", f"lambda={float(lam)!r}", f"seed={seed}"]
        for lam in lambdas
        for seed in seeds
    ]


def summarise(lambdas: list[float], returns, seeds: list[int], metric: str) -> list[dict]:
    """Per λ: mean/min/max of the metric over the seeds whose job finished."""
    table = []
    for i, lam in enumerate(lambdas):
        rets = returns[i * len(seeds) : (i + 1) * len(seeds)]
        ok = [r.return_value for r in rets if r.status.name == "COMPLETED"]
        row = {"lambda": float(lam), "n_ok": len(ok), "n_seeds": len(seeds)}
        for key in dict.fromkeys((metric, "val_acc", "test_acc")):
            if ok:
                vals = [res[key] for res in ok]
                row.update(
                    {
                        f"{key}_mean": float(np.mean(vals)),
                        f"{key}_min": float(np.min(vals)),
                        f"{key}_max": float(np.max(vals)),
                    }
                )
        table.append(row)
    return table


def best(table: list[dict], metric: str) -> dict:
    done = [row for row in table if row["n_ok"]]
    if not done:
        raise UserError("every job of the stage failed; no λ to choose from (see results.csv)")
    return max(done, key=lambda row: row[f"{metric}_mean"])


def fine_lambdas(center: float, fine) -> tuple[list[float], float, float]:
    """N values log-uniform in [center·low_factor, center·high_factor], from the configured seed."""
    if center <= 0:
        raise UserError(
            f"the best coarse λ is {center}; the fine stage samples log-uniformly and needs λ > 0"
        )
    low, high = center * fine.low_factor, center * fine.high_factor
    rng = np.random.default_rng(int(fine.sampling_seed))
    values = 10 ** rng.uniform(math.log10(low), math.log10(high), int(fine.n))
    return sorted(float(f"{v:.6g}") for v in values), low, high


def run_search(config, overrides, launch, check=None) -> dict:
    """launch(job_overrides, initial_job_idx, stage) -> JobReturns; returns lambda_search.json's
    content. check(job_overrides), if given, composes and checks one job (search=halving checks
    every rung before the first starts)."""
    search = config.search
    check_search(search)
    base, seeds = split_overrides(overrides)
    seeds = seeds if seeds is not None else [int(s) for s in search.seeds]
    if not seeds:
        raise UserError("search.seeds is empty (give at least one seed)")
    metric = str(search.metric)
    halving = search.get("halving")
    if halving is not None:
        halving_mod.check_halving(halving)
    runs: dict[str, dict] = {}

    def run_stage(name: str, stage, lambdas: list[float], first_idx: int) -> tuple[list, int]:
        """(the stage's table of the λ trained to the full budget, the next job number)."""

        def jobs_for(lams, extra=()):
            return stage_jobs(
                stage_overrides(stage) + base + list(extra), stage.experiment, lams, seeds
            )

        if halving is None:
            jobs = jobs_for(lambdas)
            table = summarise(lambdas, launch(jobs, first_idx, name), seeds, metric)
            return table, first_idx + len(jobs)
        run = halving_mod.run_stage(
            name, jobs_for, lambdas, seeds, metric, halving, launch, first_idx, summarise, check
        )
        runs[name] = run
        return run["final"], run["next_idx"]

    grid = [float(v) for v in search.coarse.grid]
    coarse, next_idx = run_stage("coarse", search.coarse, grid, 0)
    top = best(coarse, metric)
    lambdas, low, high = fine_lambdas(top["lambda"], search.fine)
    fine, _ = run_stage("fine", search.fine, lambdas, next_idx)
    chosen = best(fine, metric)
    extra = {}
    if halving is not None:
        extra["halving"] = {
            "eta": float(halving.eta),
            "rungs": [float(r) for r in halving.rungs],
            "stages": {name: run["rungs"] for name, run in runs.items()},
            "model_steps": sum(r["model_steps"] for run in runs.values() for r in run["rungs"]),
            "full_steps": runs["fine"]["full_steps"],
            # the same λ of both stages, every one trained to the full budget
            "full_model_steps": sum(run["full_model_steps"] or 0 for run in runs.values()),
        }
        coarse = runs["coarse"]["reached"]  # every λ, at the last rung it reached
        fine = runs["fine"]["reached"]
    return {
        "chosen_lambda": chosen["lambda"],
        "coarse_best_lambda": top["lambda"],
        "coarse_best_val_acc": top.get("val_acc_mean"),
        "fine_best_val_acc": chosen.get("val_acc_mean"),
        "fine_best_test_acc": chosen.get("test_acc_mean"),
        "metric": metric,
        "fine_best_metric": chosen[f"{metric}_mean"],  # the chosen λ's mean of `metric`
        "seeds": seeds,
        "fine_interval": [low, high],
        "coarse": coarse,
        "fine": fine,
        "job_overrides": base,
        **extra,
    }
