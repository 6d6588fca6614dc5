"""Test-only faults inside Ray workers, for tests/test_sweep_chunk.py: no production hook.

The Ray instance is started with runtime_env={"worker_process_setup_hook": "chunk_faults.install",
"env_vars": {"PYTHONPATH": <tests>}} (Ray runs the hook in every worker it starts; a setup hook
is a job-level setting). A task whose own runtime_env adds the env_vars MLP_TEST_FAULTS=<folder>
and MLP_TEST_KILL="SEED:TIMES,..." gets workers where every job run through
mlp.sweep.task.mlp_sweep_job (alone or inside a chunk) appends "seed pid" to <folder>/runs.log,
and a job whose seed is listed kills its own worker (os._exit) the first TIMES times it starts.
Other workers are left as they are.
"""

from __future__ import annotations

import os
from pathlib import Path

FAULTS, KILL = "MLP_TEST_FAULTS", "MLP_TEST_KILL"


def kills() -> dict[int, int]:
    spec = os.environ.get(KILL, "")
    return {int(s): int(n) for s, _, n in (p.partition(":") for p in spec.split(",") if p)}


def install() -> None:
    if FAULTS not in os.environ:
        return
    import mlp.sweep.task as task

    real = task.run_experiment
    folder = Path(os.environ[FAULTS])
    plan = kills()

    def run_experiment(cfg, raw=None, **kwargs):  # kwargs: a rung's start state
        seed = int(cfg.seed)
        with open(folder / "runs.log", "a") as f:
            f.write(f"{seed} {os.getpid()}\n")
        if seed in plan:
            killed = len(list(folder.glob(f"killed-{seed}-*")))
            if killed < plan[seed]:
                (folder / f"killed-{seed}-{killed}").touch()
                os._exit(1)  # the worker dies mid-chunk, as on a segfault or the OOM killer
        return real(cfg, raw=raw, **kwargs)

    task.run_experiment = run_experiment


def runs(folder: Path) -> list[int]:
    """The seeds of the jobs the workers started, in order."""
    log = folder / "runs.log"
    return [int(line.split()[0]) for line in log.read_text().splitlines()] if log.exists() else []
