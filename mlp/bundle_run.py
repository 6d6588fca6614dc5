"""Run several experiments that differ only in λ as one bundle (mlp.bundle), each job with
its own result: the unit of work of a bundled sweep task, as run_experiment is of a lone one.

A job whose config fails its checks fails alone; its bundle-mates train without it. Jobs
that cannot share a bundle (configs differing in more than λ, not training jobs) run one
after another through run_experiment, so the caller may pass any list.
"""

from __future__ import annotations

import time
from typing import cast

from omegaconf import DictConfig, OmegaConf
from threadpoolctl import threadpool_limits

from mlp.bundle import train_bundle
from mlp.bundle_key import bundle_key
from mlp.data import build_dataset, load_raw
from mlp.experiment import draw_lambda, result_header, run_experiment, start_params, train_result
from mlp.validate import check_config, check_data_fits


def run_bundle(cfgs: list[DictConfig], raw=None, states=None) -> list[dict | Exception]:
    """One outcome per config, in order: its result dict (what result.json holds) or the
    exception that failed it. states: per config, the params a rung starts from (or None)."""
    states = list(states) if states is not None else [None] * len(cfgs)
    outcomes: list[dict | Exception | None] = [None] * len(cfgs)
    ready: list[tuple[int, DictConfig]] = []  # (its index, its config)
    for i, cfg in enumerate(cfgs):
        try:
            check_config(cfg)
            cfg = cfg.copy()
            if cfg["lambda"] is None:
                cfg["lambda"] = draw_lambda(cfg.search, cfg.seed)
            ready.append((i, cfg))
        except Exception as exc:  # this job fails; the others go on
            outcomes[i] = exc
    keys = {bundle_key(cast(dict, OmegaConf.to_container(cfg, resolve=True))) for _, cfg in ready}
    if len(ready) > 1 and len(keys) == 1 and None not in keys:
        together = _train_together([cfg for _, cfg in ready], raw, [states[i] for i, _ in ready])
        for (i, _), out in zip(ready, together, strict=True):
            outcomes[i] = out
    else:
        for i, cfg in ready:
            try:
                outcomes[i] = run_experiment(cfg, state=states[i])
            except Exception as exc:
                outcomes[i] = exc
    return cast(list[dict | Exception], outcomes)  # every slot is filled above


def _train_together(cfgs: list[DictConfig], raw, states: list) -> list[dict | Exception]:
    """Load once, train all k models in one loop, then each model's test metrics and result."""
    first, start = cfgs[0], time.perf_counter()
    lams = [float(cfg["lambda"]) for cfg in cfgs]
    with threadpool_limits(first.train.blas_threads):  # None leaves BLAS as it is
        raw = raw if raw is not None else load_raw(first.data)
        ds = build_dataset(raw, first.split, int(first.data.batch_size))
        check_data_fits(first, len(ds.train))
        params = [start_params(cfg, ds, state) for cfg, state in zip(cfgs, states, strict=True)]
        run = train_bundle(ds, params, first.train, lams, first.seed)
        k = len(cfgs)
        outcomes: list[dict | Exception] = []
        for j, cfg in enumerate(cfgs):
            try:
                job_run = {
                    "history": run["histories"][j],
                    "last": run["lasts"][j],
                    "segment": run["segment"],
                    "n_s": run["n_s"],
                    "steps": run["steps"],
                    "train_s": run["step_s"] / k + run["eval_s"][j],
                    "eval_s": run["eval_s"][j],
                    "samples_per_s": run["samples_per_s"] / k,
                }
                result = result_header(cfg, ds, raw.load_s)
                rung = cfg.train.get("rung") is not None
                result.update(train_result(job_run, params[j], ds, lams[j], rung))
                result["bundle"] = {
                    "size": k,
                    "index": j,
                    "train_s": run["train_s"],
                    "step_s": run["step_s"],
                }
                outcomes.append(result)
            except Exception as exc:
                outcomes.append(exc)
    wall = time.perf_counter() - start
    for cfg, out in zip(cfgs, outcomes, strict=True):
        if isinstance(out, dict):
            out["wall_s"] = wall / k  # this job's share of the bundle's wall time
            out["config"] = OmegaConf.to_container(cfg, resolve=True)
    return outcomes
