"""Run a sweep on Ray: `python runners/sweep.py -m experiment=NAME lambda=a,b,c seed=0,1,2`,
or the whole λ search: `python runners/sweep.py experiment=lambda_search`.

Each job is a Ray task (a private local Ray instance by default; launcher=ray_cluster or
RAY_ADDRESS for a cluster). The driver writes every job's result.json under hydra.sweep.dir,
one results.csv, and keeps finished results by config hash, so re-running resumes.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import mlp.sweep  # noqa: E402,F401  (marks the driver's start time)
import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from mlp.cli import fail  # noqa: E402
from mlp.errors import UserError  # noqa: E402
from mlp.sweep.preflight import preflight  # noqa: E402
from mlp.sweep.ray_session import start_early_if_useful  # noqa: E402  (light: Ray itself loads on its thread)


@hydra.main(version_base="1.3", config_path="../conf", config_name="sweep")
def main(cfg: DictConfig) -> None:
    """Only reached for a non-sweep run (hydra.mode=RUN); sweeps go through the mlp sweeper/launcher."""
    fail("runners/sweep.py runs sweeps; for one run use runners/train.py")


if __name__ == "__main__":
    try:
        primary = preflight(sys.argv[1:], config_name="sweep")
    except UserError as exc:
        fail(str(exc))
    if primary is not None:
        start_early_if_useful(primary)
    main()
