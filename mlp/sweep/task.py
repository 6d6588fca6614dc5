"""The body of one Ray task: run one experiment and return its result to the driver.

Errors are caught and returned as data (status failed) so one bad job never stops the
sweep; a worker that dies never returns, and Ray retries the task (max_retries).
"""

from __future__ import annotations

import os
import platform
import time
import traceback

from omegaconf import OmegaConf

from mlp.experiment import run_experiment  # imported when Ray loads this function, once per worker
from mlp.sweep.capture import captured_output
from mlp.sweep.data_ship import unpack


def mlp_sweep_job(cfg: dict, data: dict | None = None, state: dict | None = None) -> dict:
    """Run one job from its resolved config; the name shows in the worker's process title.

    data: the arrays the driver shipped through Ray's object store (mlp.sweep.data_ship), read
    zero-copy; None (sweep.data=path) loads cfg.data here, as the single-run CLI does.
    state: a rung's params at its start (train.rung; mlp.sweep.rung_state), else None."""
    started_at, t0 = time.time(), time.perf_counter()
    with captured_output() as log:  # the job's stdout/stderr: returned as result["log"] (job.log)
        try:
            raw = None if data is None else unpack(data)
            result = run_experiment(OmegaConf.create(cfg), raw=raw, state=state)
            result["status"] = "ok"
        except Exception as exc:  # recorded, not raised: the other jobs go on
            first = (str(exc).strip().splitlines() or [""])[0]
            result = {
                "status": "failed",
                "error": f"{type(exc).__name__}: {first}",
                "traceback": traceback.format_exc(),
                "config": cfg,
                "experiment": cfg.get("name"),
                "seed": cfg.get("seed"),
                "lambda": cfg.get("lambda"),
            }
            traceback.print_exc()
    result["log"] = log.text
    result.update(_where())
    result["task_started_at"] = started_at
    result["task_wall_s"] = time.perf_counter() - t0
    return result


def _where() -> dict:
    """Host and process; inside Ray also the node and task ids. Outside Ray (a direct call)
    Ray is not asked: get_runtime_context() would start or join a Ray instance by itself."""
    info = {"host": platform.node(), "pid": os.getpid()}
    try:
        import ray

        if not ray.is_initialized():
            return info
        ctx = ray.get_runtime_context()
        info.update(node_id=ctx.get_node_id(), task_id=ctx.get_task_id())
    except Exception:  # not inside Ray (direct call)
        pass
    return info
