"""Run a sweep on Ray: `mlp-sweep -m experiment=NAME lambda=a,b,c seed=0,1,2`,
or the whole λ search: `mlp-sweep search=lambda` (also `python runners/sweep.py ...`).

Each job is a Ray task (a private local Ray instance by default; launcher=ray_cluster or
RAY_ADDRESS for a cluster). The driver writes every job's result.json under hydra.sweep.dir,
one results.csv, and keeps finished results by config hash, so re-running resumes.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from mlp.cli import CONFIG_PATH, fail
from mlp.errors import UserError
from mlp.sweep.preflight import preflight
from mlp.sweep.ray_session import start_early_if_useful
from mlp.tracking import check_trackers  # light: Ray itself loads on its thread


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="sweep")
def sweep(cfg: DictConfig) -> None:
    """Only reached for a non-sweep run (hydra.mode=RUN); sweeps go through the mlp sweeper/launcher."""
    fail("mlp-sweep runs sweeps; for one run use mlp-train")


def main() -> None:
    """Check the command line before Ray starts (one line per problem), start Ray early, run Hydra."""
    try:
        primary = preflight(sys.argv[1:], config_name="sweep")
        if primary is not None:
            check_trackers(primary)  # +tracking=...: its package installed, its store reachable
    except UserError as exc:
        fail(str(exc))
    if primary is not None:
        start_early_if_useful(primary)
    sweep()


if __name__ == "__main__":
    main()
