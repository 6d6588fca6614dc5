"""The body of one chunked Ray task: several units (a unit: one job, or a bundle of jobs that
differ only in λ, mlp.sweep.bundling) run one after another in one worker, each unit's results
streamed back to the driver the moment the unit ends.

Used as a Ray streaming generator (`ray.remote(mlp_sweep_chunk).options(num_returns="streaming")`):
each `yield` is one unit's list of result dicts, exactly what mlp_sweep_job (as a list of one) or
mlp_sweep_bundle returns for it, so the driver records it as it records a lone task's results.
Tiny jobs (tens of ms) then pay Ray's per-task cost once per chunk instead of once per job.

A job that fails comes back failed and the chunk goes on. A worker that dies ends the stream
early: the units yielded before stay with the driver, which resubmits the rest
(mlp.sweep.chunking.ChunkFlight).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterator

from mlp.sweep.bundle_task import mlp_sweep_bundle
from mlp.sweep.bundling import failed_result
from mlp.sweep.task import _where, mlp_sweep_job


def run_unit(cfgs: list[dict], data=None, states: list | None = None) -> list[dict]:
    """One unit's results, one per job in cfgs' order: a lone job as mlp_sweep_job runs it, two
    or more as mlp_sweep_bundle runs them (the one code path of a unit, whatever task runs it).
    states: per job, a rung's params at its start (or None); None: no job has one."""
    if len(cfgs) == 1:
        return [mlp_sweep_job(cfgs[0], data, states[0] if states else None)]
    return mlp_sweep_bundle(cfgs, data, states)


def mlp_sweep_chunk(
    units: list[list[dict]], data=None, states: list[list] | None = None
) -> Iterator[list[dict]]:
    """Run the units in order and yield each one's results as soon as it ends.

    data: the arrays the driver shipped through Ray's object store (one data config for every
    unit of the chunk), or None (each job loads its data); states: per unit, per job, the params
    a rung starts from (a task argument: Ray moves it to the worker, no shared disk), or None.
    Both task bodies already return a job's error as a failed result; anything else that
    escapes a unit (never expected) fails that unit's jobs only, and the next unit still runs."""
    for i, cfgs in enumerate(units):
        started_at, t0 = time.time(), time.perf_counter()
        try:
            results = run_unit(cfgs, data, states[i] if states else None)
        except Exception as exc:  # recorded, not raised: the chunk's other units go on
            first = (str(exc).strip().splitlines() or [""])[0]
            results = []
            for cfg in cfgs:
                result = failed_result(cfg, f"{type(exc).__name__}: {first}")
                result.update(
                    traceback=traceback.format_exc(),
                    config=cfg,
                    task_started_at=started_at,
                    task_wall_s=(time.perf_counter() - t0) / len(cfgs),
                    **_where(),
                )
                results.append(result)
        yield results
