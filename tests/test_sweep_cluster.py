"""A 2-node Ray cluster on one machine (two `ray start` processes on 127.0.0.1, 1 CPU each):
a sweep spreads over both nodes with every result on the driver, and `ray job submit` works."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
from sweep_support import (
    RAY,
    ROOT,
    SMALL,
    RayNode,
    free_port,
    results,
    rows,
    venv_env,
    wait_for_nodes,
)

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.cluster]


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    logs = tmp_path_factory.mktemp("ray")
    dashboard = free_port()
    head = RayNode(logs / "head.log", num_cpus=1, dashboard_port=dashboard)
    nodes = [head]
    try:
        head.wait_started()
        worker = RayNode(logs / "worker.log", num_cpus=1, head_address=head.address)
        nodes.append(worker)
        worker.wait_started()
        wait_for_nodes(head.address, 2)
        yield head, dashboard
    finally:
        for node in reversed(nodes):
            node.stop()


def test_sweep_spreads_over_two_nodes_with_results_on_the_driver(two_nodes, tmp_path):
    head, _ = two_nodes
    from sweep_support import run_sweep

    proc = run_sweep(
        tmp_path,
        "-m",
        "experiment=cyclic_1cycle",
        *SMALL[:-2],
        "train.n_s=150",
        "seed=0,1,2,3",
        "launcher=ray_cluster",
        f"sweep.ray.address={head.address}",
    )
    assert proc.returncode == 0, proc.stderr
    saved = results(tmp_path / "sw")
    assert len(saved) == 4 and all(r["status"] == "ok" for r in saved)
    assert (
        len({r["node_id"] for r in saved}) == 2
    )  # both nodes ran jobs; the driver wrote all results
    assert len(rows(tmp_path / "sw")) == 4


def test_ray_job_submit(two_nodes, tmp_path):
    head, dashboard = two_nodes
    workdir = tmp_path / "code"
    for part in ("mlp", "runners", "conf", "hydra_plugins"):
        shutil.copytree(ROOT / part, workdir / part, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "sw"
    cmd = [
        RAY,
        "job",
        "submit",
        f"--address=http://127.0.0.1:{dashboard}",
        "--working-dir",
        ".",
        "--",
        "python",
        "runners/sweep.py",
        "-m",
        "experiment=cyclic_1cycle",
        *SMALL,
        "seed=0,1",
        f"hydra.sweep.dir={out}",
        f"sweep.store={tmp_path / 'store'}",
    ]
    for _ in range(
        30
    ):  # the head's job agent may still be starting: Ray answers "No available agent"
        proc = subprocess.run(
            cmd,
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=240,
            env=venv_env(RAY_AUTH_MODE="token"),
        )
        if "No available agent" not in proc.stdout + proc.stderr:
            break
        time.sleep(2)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "succeeded" in proc.stdout + proc.stderr
    table = rows(out)
    assert sorted(int(r["seed"]) for r in table) == [0, 1] and {r["status"] for r in table} == {
        "ok"
    }
    assert all(r["config"]["train"]["n_s"] == 20 for r in results(out))
