"""Run one experiment from a resolved config and return its result as plain data.

This is the unit of work everywhere: the single-run CLI calls it in-process, sweeps
call it inside Ray tasks, so its input and output are plain dicts/OmegaConf only.
"""

from __future__ import annotations

import platform
import time

import numpy as np
from omegaconf import DictConfig, OmegaConf
from threadpoolctl import threadpool_limits

from mlp.data import RawData, build_dataset, load_raw
from mlp.errors import UserError
from mlp.evaluate import evaluate
from mlp.gradcheck import check_case
from mlp.model import init_params
from mlp.train import train
from mlp.validate import check_config, check_data_fits
from mlp.version import RESULT_VERSION  # noqa: F401  (re-exported: result.json's layout)


def draw_lambda(search_cfg, seed: int) -> float:
    """One λ drawn log-uniformly from [search.low, search.high], reproducible from the seed."""
    rng = np.random.default_rng([seed, 2])
    return float(10 ** rng.uniform(np.log10(search_cfg.low), np.log10(search_cfg.high)))


def run_experiment(
    cfg: DictConfig, raw: RawData | None = None, state: dict[str, np.ndarray] | None = None
) -> dict:
    """Validate, load data (unless raw is given: a sweep task's shipped arrays), run; the
    returned dict is what result.json holds. A rung (train.rung) starts from `state`, the
    params at its start (none at step 0), and returns its end's params as result["state"]."""
    check_config(cfg)
    cfg = cfg.copy()
    if cfg["lambda"] is None:
        cfg["lambda"] = draw_lambda(cfg.search, cfg.seed)
    start = time.perf_counter()
    with threadpool_limits(cfg.train.blas_threads):  # None leaves BLAS as it is
        raw = load_raw(cfg.data) if raw is None else raw
        ds = build_dataset(raw, cfg.split, int(cfg.data.batch_size))
        check_data_fits(cfg, len(ds.train))
        result = result_header(cfg, ds, raw.load_s)
        if cfg.kind == "gradcheck":
            result.update(_gradcheck(cfg, ds))
        else:
            result.update(_train(cfg, ds, state))
    result["wall_s"] = time.perf_counter() - start
    result["config"] = OmegaConf.to_container(cfg, resolve=True)
    return result


def result_header(cfg: DictConfig, ds, load_s: float) -> dict:
    """The fields every result starts with (also each job of a bundle, mlp.bundle_run)."""
    return {
        "version": RESULT_VERSION,
        "experiment": cfg.name,
        "seed": cfg.seed,
        "lambda": float(cfg["lambda"]),
        "dtype": cfg.dtype,
        "data_source": ds.source,
        "synthetic": ds.synthetic,
        "n_train": len(ds.train),
        "n_val": len(ds.val),
        "n_test": len(ds.test),
        "host": platform.node(),
        "load_s": load_s,
    }


def initial_params(cfg: DictConfig, ds) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([cfg.seed, 0])  # initialisation stream
    return init_params(
        ds.train.x.shape[1], cfg.model.hidden, cfg.model.n_classes, rng, np.dtype(cfg.dtype)
    )


def start_params(cfg: DictConfig, ds, state: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    """A run's params at its first step: the initialisation, or for a rung that starts after
    step 0 a copy of `state` (the params a previous rung ended with), checked against it."""
    params = initial_params(cfg, ds)
    rung = cfg.train.get("rung")
    if rung is None or not rung.get("start"):
        if state is not None:
            raise UserError(
                "a state was given to a run that starts at step 0 (no train.rung.start)"
            )
        return params
    if state is None:
        raise UserError(
            f"train.rung.start={rung.start} needs the params at that cycle (the previous rung's state)"
        )
    for name, p in params.items():
        given = state.get(name)
        if given is None or given.shape != p.shape or given.dtype != p.dtype:
            what = "missing" if given is None else f"{given.dtype} {given.shape}"
            raise UserError(f"rung state {name} is {what}; the run needs {p.dtype} {p.shape}")
    return {name: np.array(state[name], copy=True) for name in params}


def _train(cfg: DictConfig, ds, state: dict[str, np.ndarray] | None = None) -> dict:
    lam = float(cfg["lambda"])
    params = start_params(cfg, ds, state)
    run = train(ds, params, cfg.train, lam, cfg.seed)
    return train_result(run, params, ds, lam, cfg.train.get("rung") is not None)


def train_result(
    run: dict, params: dict[str, np.ndarray], ds, lam: float, rung: bool = False
) -> dict:
    """A trained model's result fields: its run's history and timings, final and test metrics;
    for a rung also its segment (steps) and its end's params ("state", which the sweep driver
    takes out of the result and keeps beside the store)."""
    last = run.get("last") or run["history"][-1]
    test = evaluate(params, ds.test, ds.mean, ds.inv_std, lam)
    extra = {}
    if rung:
        start, stop = run["segment"]
        extra = {
            "rung": {"start_step": start, "stop_step": stop, "steps": stop - start},
            "state": {name: np.array(p, copy=True) for name, p in params.items()},
        }
    return {
        "history": run["history"],
        "n_s": run["n_s"],
        "steps": run["steps"],
        "train_s": run["train_s"],
        "eval_s": run["eval_s"],
        "samples_per_s": run["samples_per_s"],
        "train_acc": last["train_acc"],
        "val_acc": last["val_acc"],
        "test_acc": test["acc"],
        "final_train_loss": last["train_loss"],
        "final_val_loss": last["val_loss"],
        "final_train_cost": last["train_cost"],
        "final_val_cost": last["val_cost"],
        "test_loss": test["loss"],
        **extra,
    }


def _gradcheck(cfg: DictConfig, ds) -> dict:
    gc = cfg.gradcheck
    tolerance = float(gc.tolerance[cfg.dtype])
    dtype = np.dtype(cfg.dtype)
    start = time.perf_counter()
    table, worst = {}, 0.0
    for case in gc.cases:
        if not 1 <= case.dims <= ds.train.x.shape[1] or not 1 <= case.n_samples <= len(ds.train):
            raise UserError(
                f"gradcheck case {case.name}: n_samples={case.n_samples}, dims={case.dims} out of range"
            )
        x = (ds.train.x[: case.n_samples].astype(np.float64) - ds.mean) * ds.inv_std
        x = x[:, : case.dims]
        y = np.asarray(ds.train.y[: case.n_samples], dtype=np.int64)
        rows = check_case(
            x,
            y,
            cfg.model.hidden,
            cfg.model.n_classes,
            float(cfg["lambda"]),
            float(gc.h),
            dtype,
            cfg.seed,
            case.max_entries,
        )
        table[case.name] = {"n_samples": case.n_samples, "dims": case.dims, "params": rows}
        worst = max(worst, *(r["max_rel_error"] for r in rows.values()))
    return {
        "gradcheck": table,
        "max_rel_error": worst,
        "tolerance": tolerance,
        "passed": worst < tolerance,
        "train_s": time.perf_counter() - start,
    }
