"""search=halving on a cluster: a head with 0 CPUs and two 1-CPU worker nodes on 127.0.0.1.
Worker node 2 is stopped while the second rung runs; the search ends with the outcome of the
same search run on this machine (the lost node's rung jobs rerun on the other node, from the
same start states, which travel as task arguments)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from sweep_support import (
    ROOT,
    SMALL,
    joining,
    local_cluster,
    run_sweep,
    search_outcome,
    summary,
    task_pids,
    venv_env,
    when_stderr_shows,
)

pytestmark = [pytest.mark.cluster, pytest.mark.ray, pytest.mark.slow]

SEARCH = [
    "search=halving",
    *SMALL[:-2],
    "train.n_s=300",  # a rung of 1 cycle: 600 steps, long enough to stop a node in
    "split.val_holdout=100",
    "search.coarse.grid=[1e-3,1e-2,1e-1]",
    "search.fine.n=3",
    "seed=0,1",
]


@pytest.fixture
def cluster(tmp_path):
    (tmp_path / "nodes").mkdir()
    with local_cluster(tmp_path / "nodes", [{}, {}]) as (head, w1, w2):
        yield head, w1, w2


def test_a_worker_node_lost_mid_rung_costs_only_its_rung_jobs(cluster, tmp_path, shared_ray):
    head, _, w2 = cluster
    reference = run_sweep(  # the same search on one machine (the suite's head)
        tmp_path, *SEARCH, "sweep.progress=false", *joining(shared_ray), sweep_dir="ref"
    )
    assert reference.returncode == 0, reference.stderr[-3000:]

    cmd = [sys.executable, str(ROOT / "runners" / "sweep.py"), *SEARCH]
    cmd += ["launcher=ray_cluster", f"sweep.ray.address={head.address}"]
    cmd += [f"hydra.sweep.dir={tmp_path / 'sw'}", f"sweep.store={tmp_path / 'store2'}"]
    driver = subprocess.Popen(
        cmd, cwd=tmp_path, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=venv_env()
    )
    stopped: list[float] = []

    def stop_node_2_once_busy() -> None:
        deadline = time.time() + 60
        while not task_pids(w2.proc.pid) and time.time() < deadline:
            time.sleep(0.05)
        if task_pids(w2.proc.pid):
            w2.kill()  # the whole node at once: raylet, workers, object store
            stopped.append(time.time())

    seen = when_stderr_shows(driver, "[coarse-rung2]", stop_node_2_once_busy)
    try:
        driver.wait(timeout=300)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert seen.is_set() and stopped, "node 2 ran no job of rung 2"
    assert driver.returncode == 0
    counts = summary(tmp_path / "sw")
    assert counts["failed"] == 0 and counts["ran"] == counts["jobs"]
    assert search_outcome(tmp_path / "sw") == search_outcome(tmp_path / "ref")
