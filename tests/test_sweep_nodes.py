"""A cluster whose worker nodes share no disk with the driver: a head with 0 CPUs and two
1-CPU worker nodes, each `ray start` in a mount namespace of its own where the project checkout,
the data folder and the decode cache are empty tmpfs (only Python and the dependencies are
left), all on 127.0.0.1. The sweep ships the code (runtime_env) and the data (object store)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import shared_cache_dir
from omegaconf import OmegaConf
from sweep_support import (
    ROOT,
    SMALL,
    local_cluster,
    results,
    rows,
    run_sweep,
    task_pids,
    venv_env,
)

pytestmark = [pytest.mark.cluster, pytest.mark.ray, pytest.mark.slow, pytest.mark.real_data]

CACHE = Path(shared_cache_dir()).expanduser()
# This interpreter's venv: bind-mounted back into each node (sweep_support.in_own_mounts), wherever
# it lives (inside the checkout or not).
VENV = Path(sys.executable).parent.parent


def real(archive: Path) -> list[str]:
    """Real CIFAR-10, small jobs: 100 steps of 100 images, two evaluation points."""
    return [
        "experiment=cyclic_1cycle",
        "data=cifar10_jpeg",
        f"data.root={archive}",
        "train.n_s=50",
        "train.record_points_per_cycle=2",
    ]


COMPARED = (
    "val_acc",
    "test_acc",
    "train_acc",
    "final_train_cost",
    "final_val_cost",
    "test_loss",
    "history",
    "lambda",
    "n_train",
    "n_val",
    "n_test",
    "data_source",
    "synthetic",
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, shared_archive):
    CACHE.mkdir(parents=True, exist_ok=True)
    hide = (ROOT, shared_archive.parent, CACHE)
    workers = [{"hide": hide, "extra_args": (f'--resources={{"node{k}": 4}}',)} for k in (1, 2)]
    with local_cluster(tmp_path_factory.mktemp("nodes"), workers) as (head, w1, w2):
        yield head, w1, w2


def on_cluster(head) -> list[str]:
    return ["launcher=ray_cluster", f"sweep.ray.address={head.address}", "sweep.progress=false"]


def test_worker_nodes_see_no_checkout_no_data_and_no_cache(cluster, shared_archive):
    """The premise of the other tests, looked at from inside each worker node's mount namespace:
    the checkout, the data folder and the cache are empty; the venv (Python + deps) is there."""
    _, *workers = cluster
    # A venv inside the checkout is bind-mounted back over the tmpfs, and a cache inside it
    # (CI's MLP_CACHE_DIR) gets an empty tmpfs of its own: their top folders are all the node
    # sees there. Both elsewhere leave the checkout empty.
    mounted = [p for p in (VENV, CACHE) if p.is_relative_to(ROOT) and p != ROOT]
    left = sorted({p.relative_to(ROOT).parts[0] for p in mounted})
    for node in workers:
        assert sorted(seen_by(node, ROOT)) == left
        assert seen_by(node, shared_archive.parent) == [] and seen_by(node, CACHE) == []
        assert "python" in seen_by(node, Path(sys.executable).parent)
    assert shared_archive.name in seen_by(None, shared_archive.parent)  # while the driver sees it


def seen_by(node, folder: Path) -> list[str]:
    """`ls -A folder` inside the node's mount namespace (None: the driver's)."""
    enter = ["nsenter", f"--target={node.proc.pid}", "--mount"] if node else []
    out = subprocess.run(
        [*enter, "ls", "-A", str(folder)], capture_output=True, text=True, check=True, timeout=30
    )
    return out.stdout.split()


def test_real_data_sweep_on_nodes_without_data_equals_a_local_run(
    cluster, tmp_path, shared_archive
):
    head, _, _ = cluster
    proc = run_sweep(tmp_path, "-m", *real(shared_archive), "seed=0,1", *on_cluster(head))
    assert proc.returncode == 0, proc.stderr[-3000:]
    saved = results(tmp_path / "sw")
    assert [r["status"] for r in saved] == ["ok", "ok"] and len(rows(tmp_path / "sw")) == 2
    assert (
        len({r["node_id"] for r in saved}) == 2
    )  # both worker nodes ran a job (the head has 0 CPUs)
    assert all(r["data_source"].startswith("cifar10_jpeg") for r in saved)

    from mlp.experiment import run_experiment

    for result in saved:  # the same job here, loading the archive by path: bit-identical numbers
        local = run_experiment(OmegaConf.create(result["config"]))
        for key in COMPARED:
            assert local[key] == result[key], key


def test_init_and_remote_settings_reach_ray(cluster, tmp_path):
    """sweep.ray.remote asks for node 1's custom resource: both jobs run there; sweep.ray.init's
    runtime_env is merged with the shipped code (else the nodes could not import mlp)."""
    head, _, _ = cluster
    proc = run_sweep(
        tmp_path,
        "-m",
        "experiment=cyclic_1cycle",
        *SMALL,
        "seed=0,1",
        *on_cluster(head),
        "sweep.ray.remote={resources: {node1: 1}}",
        "sweep.ray.init={namespace: study, runtime_env: {env_vars: {MLP_STUDY_PROBE: '1'}}}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    saved = results(tmp_path / "sw")
    assert [r["status"] for r in saved] == ["ok", "ok"] and len({r["node_id"] for r in saved}) == 1


@pytest.mark.parametrize(
    "bad, says",
    [
        ("sweep.ray.remote={num_gpu: 1}", "sweep.ray.remote: Invalid option keyword num_gpu"),
        ("sweep.ray.remote={num_cpus: 2}", "use sweep.cpus_per_job"),
        ("sweep.ray.init={adress: x}", "sweep.ray.init.adress is not an argument of ray.init"),
    ],
)
def test_bad_pass_through_keys_are_one_error_line(cluster, tmp_path, bad, says):
    head, _, _ = cluster
    proc = run_sweep(
        tmp_path, "-m", "experiment=cyclic_1cycle", *SMALL, "seed=0", *on_cluster(head), bad
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert says in lines[0]
    assert not (tmp_path / "sw" / "0" / "result.json").exists()


def test_killing_a_worker_node_mid_sweep_reruns_its_jobs_on_the_other(cluster, tmp_path):
    head, _, w2 = cluster

    args = [
        "-m",
        "experiment=cyclic_1cycle",
        *SMALL[:-2],
        "train.n_s=300",
        "seed=0,1,2,3",
        *on_cluster(head),
        f"hydra.sweep.dir={tmp_path / 'sw'}",
        f"sweep.store={tmp_path / 'store'}",
    ]
    driver = subprocess.Popen(
        [sys.executable, str(ROOT / "runners" / "sweep.py"), *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=venv_env(),
    )
    try:
        deadline = time.time() + 120
        while not task_pids(w2.proc.pid) and time.time() < deadline and driver.poll() is None:
            time.sleep(0.2)
        assert task_pids(w2.proc.pid), "no job started on worker node 2"
        w2.kill()  # the whole node at once: raylet, workers, object store
        killed_at = time.time()
        _, err = driver.communicate(timeout=240)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, err[-3000:]
    saved = results(tmp_path / "sw")
    assert sorted(r["seed"] for r in saved) == [0, 1, 2, 3] and {r["status"] for r in saved} == {
        "ok"
    }
    assert sorted(int(r["seed"]) for r in rows(tmp_path / "sw")) == [0, 1, 2, 3]
    # a job of node 2 may have finished (and streamed back) before the kill; what finished after
    # it, the killed node's running job among them, ran on the one surviving node
    late = [r for r in saved if r["task_started_at"] + r["task_wall_s"] > killed_at]
    assert late and len({r["node_id"] for r in late}) == 1
    assert any(r["task_started_at"] > killed_at for r in late)  # the killed job, run again
