"""The default: a private local Ray instance started for the sweep (here with 2 CPUs),
Hydra's sweep syntax (glob, choice, range, several keys), quiet output, a user's Hydra
callback called for every job that runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import run_cli
from sweep_support import (
    ROOT,
    SMALL,
    joining,
    ray_processes,
    results,
    rows,
    run_sweep,
    summary,
    wait_gone,
)

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def test_default_local_instance_with_hydra_sweep_syntax(tmp_path):
    before = ray_processes(tmp_path)
    log = tmp_path / "jobs.jsonl"
    callback = [
        "+hydra.callbacks.log._target_=sweep_support.JobLog",
        f"+hydra.callbacks.log.path={log}",
    ]
    env = {"RAY_ADDRESS": "", "PYTHONPATH": str(ROOT / "tests")}
    command = [
        "-m",
        "experiment=glob(cyclic_1*)",
        *SMALL,
        "lambda=choice(0,0.01)",
        "seed=range(0,2)",
        "sweep.ray.num_cpus=2",
        *callback,
    ]
    proc = run_sweep(tmp_path, *command, env_extra=env)
    assert proc.returncode == 0, proc.stderr
    table = rows(tmp_path / "sw")
    assert sorted((r["experiment"], float(r["lambda"]), int(r["seed"])) for r in table) == [
        ("cyclic_1cycle", lam, s) for lam in (0.0, 0.01) for s in (0, 1)
    ]
    s = summary(tmp_path / "sw")
    assert s["ray_address"] == "local" and s["ran"] == 4 and s["startup_to_first_job_s"] > 0
    assert all(r["task_wall_s"] >= r["train_s"] > 0 for r in results(tmp_path / "sw"))
    # Ray's own log lines stay off the driver's terminal: only the progress line and the summary
    assert all(line.startswith("[sweep]") for line in proc.stderr.strip().splitlines()), proc.stderr
    assert "4 jobs: 4 ran" in proc.stdout
    # the callback saw every job start (with Hydra's job number) and end with its result
    events = [json.loads(line) for line in log.read_text().splitlines()]
    starts = [e for e in events if e["event"] == "start"]
    ends = {(e["lambda"], e["seed"]): e for e in events if e["event"] == "end"}
    assert sorted(e["num"] for e in starts) == [0, 1, 2, 3] and all(
        e["has_task_function"] for e in starts
    )
    by_key = {(r["lambda"], r["seed"]): r for r in results(tmp_path / "sw")}
    assert set(ends) == set(by_key)
    for key, e in ends.items():
        assert (
            e["status"] == "COMPLETED"
            and e["cfg_lambda"] == key[0]
            and e["val_acc"] == by_key[key]["val_acc"]
        )
    # the local instance is gone with the driver (its start overlapped the jobs' composition)
    assert not wait_gone(ray_processes(tmp_path) - before)
    assert s["ray_start_s"] > 0 and s["ray_shutdown_s"] >= 0
    # the same command again in the same folder: everything is stored, so Ray is not even started
    again = run_sweep(tmp_path, *command, env_extra=env)
    assert again.returncode == 0, again.stderr
    s = summary(tmp_path / "sw")
    assert (s["ran"], s["cached"], s["ray_address"]) == (0, 4, None)
    assert len(log.read_text().splitlines()) == len(events)  # cached jobs run nothing: no events


def test_train_and_a_one_job_sweep_give_identical_numbers(tmp_path, shared_ray):
    """Same config and seed: `runners/train.py` and a sweep job (a Ray task on the suite's shared
    head) agree to the bit."""
    args = ["experiment=cyclic_1cycle", *SMALL, "lambda=0.003", "seed=3"]
    single = run_cli("train.py", *args, f"hydra.run.dir={tmp_path / 'single'}", cwd=tmp_path)
    assert single.returncode == 0, single.stderr
    swept = run_sweep(tmp_path, "-m", *args, *joining(shared_ray))
    assert swept.returncode == 0, swept.stderr
    a = json.loads((tmp_path / "single" / "result.json").read_text())
    (b,) = results(tmp_path / "sw")
    numbers = (
        "history",
        "train_acc",
        "val_acc",
        "test_acc",
        "final_train_loss",
        "final_val_loss",
        "lambda",
    )
    assert {k: a[k] for k in numbers} == {k: b[k] for k in numbers}


MONITOR_PROBE = """
from hydra import compose, initialize_config_module
from mlp.sweep import ray_session
with initialize_config_module(config_module="mlp.conf", version_base="1.3"):
    cfg = compose(config_name="sweep", overrides=["sweep.ray.object_store_mb=256"])
ray_session.connect(cfg.sweep.ray)
print("monitors", len(ray_session.own_autoscaler_monitors()))
ray_session.disconnect()
print("after", len(ray_session.own_autoscaler_monitors()))
"""


def test_the_private_instance_monitor_is_found_and_stopped(tmp_path):
    """The one Ray detail the shutdown leans on (the monitor's script path, no Ray internals):
    on the pinned Ray the private instance's own monitor is found, and nothing of Ray outlives
    disconnect(). If an upgrade renames it, this fails and the shutdown is ~1 s slower."""
    before = ray_processes(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", MONITOR_PROBE],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, RAY_ADDRESS=""),
    )
    assert proc.returncode == 0, proc.stderr
    assert "monitors 1" in proc.stdout and "after 0" in proc.stdout, proc.stdout
    assert not wait_gone(ray_processes(tmp_path) - before)
