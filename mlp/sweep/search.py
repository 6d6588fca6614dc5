"""The study's two-stage λ search: a coarse grid, then N λ drawn log-uniformly (seeded)
around the best coarse value; every λ runs with each configured seed; the best mean
validation accuracy of the fine stage is the chosen λ.
"""

from __future__ import annotations

import math

import numpy as np

from mlp.errors import UserError

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


def run_search(config, overrides, launch) -> dict:
    """launch(job_overrides, initial_job_idx, stage) -> JobReturns; returns lambda_search.json's content."""
    search = config.search
    check_search(search)
    base, seeds = split_overrides(overrides)
    seeds = seeds if seeds is not None else [int(s) for s in search.seeds]
    if not seeds:
        raise UserError("search.seeds is empty (give at least one seed)")
    metric = str(search.metric)
    grid = [float(v) for v in search.coarse.grid]
    coarse_jobs = stage_jobs(
        stage_overrides(search.coarse) + base, search.coarse.experiment, grid, seeds
    )
    coarse = summarise(grid, launch(coarse_jobs, 0, "coarse"), seeds, metric)
    top = best(coarse, metric)
    lambdas, low, high = fine_lambdas(top["lambda"], search.fine)
    fine_jobs = stage_jobs(
        stage_overrides(search.fine) + base, search.fine.experiment, lambdas, seeds
    )
    fine_returns = launch(fine_jobs, len(coarse_jobs), "fine")
    fine = summarise(lambdas, fine_returns, seeds, metric)
    chosen = best(fine, metric)
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
    }
