"""The body of one bundled Ray task: train several jobs that differ only in λ together
(mlp.bundle_run) and return one result per job, each as mlp_sweep_job would return it.

A job that fails (its checks, or its own evaluation) comes back failed with its error while
its bundle-mates come back ok; an error that stops the shared training fails every job of
the bundle, each with that error.
"""

from __future__ import annotations

import time
import traceback

from omegaconf import OmegaConf

from mlp.bundle_run import run_bundle  # imported when Ray loads this function, once per worker
from mlp.sweep.capture import captured_output
from mlp.sweep.data_ship import unpack
from mlp.sweep.task import _where


def mlp_sweep_bundle(cfgs: list[dict], data=None, states=None) -> list[dict]:
    """Run the jobs of one bundle from their resolved configs; data: the arrays the driver
    shipped through Ray's object store (mlp.sweep.data_ship), or None (each task loads them);
    states: per job, a rung's params at its start (or None)."""
    started_at, t0 = time.time(), time.perf_counter()
    with captured_output() as log:  # the bundle's output: every job's result["log"] (job.log)
        try:
            raw = None if data is None else unpack(data)
            outcomes = run_bundle([OmegaConf.create(cfg) for cfg in cfgs], raw, states)
        except Exception as exc:  # the shared part failed: every job of the bundle with it
            outcomes = [exc] * len(cfgs)
        for out in outcomes:
            if isinstance(out, Exception):
                traceback.print_exception(out)
    where, wall = _where(), time.perf_counter() - t0
    results = []
    for cfg, out in zip(cfgs, outcomes, strict=True):
        if isinstance(out, dict):
            result = dict(out, status="ok")
        else:
            first = (str(out).strip().splitlines() or [""])[0]
            result = {
                "status": "failed",
                "error": f"{type(out).__name__}: {first}",
                "traceback": "".join(traceback.format_exception(out)),
                "config": cfg,
                "experiment": cfg.get("name"),
                "seed": cfg.get("seed"),
                "lambda": cfg.get("lambda"),
            }
        result["log"] = log.text
        result.update(where)
        result["task_started_at"] = started_at
        result["task_wall_s"] = wall / len(cfgs)  # this job's share of the task's wall time
        result["bundle_task_wall_s"] = wall
        results.append(result)
    return results
