"""Sweeps against one real Ray instance (a `ray start --head` with 2 CPUs on 127.0.0.1):
every row of a grid × seeds sweep, resume, a failing job, a killed worker, the λ search."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
from omegaconf import OmegaConf
from sweep_support import SMALL, joining, results, rows, run_sweep, summary, task_pids

from mlp.experiment import run_experiment
from mlp.result_schema import METRICS

pytestmark = [pytest.mark.slow, pytest.mark.ray]


@pytest.fixture
def head(shared_ray):
    """The suite's shared head (conftest.shared_ray): the sweeps below join it."""
    return shared_ray


def test_grid_times_seeds_gives_every_row(head, tmp_path):
    proc = run_sweep(
        tmp_path,
        "-m",
        "experiment=cyclic_1cycle",
        *SMALL,
        "lambda=0,1e-3,1e-1",
        "seed=range(0,2)",
        *joining(head),
    )
    assert proc.returncode == 0, proc.stderr
    table = rows(tmp_path / "sw")
    assert sorted((float(r["lambda"]), int(r["seed"])) for r in table) == sorted(
        (lam, s) for lam in (0.0, 1e-3, 1e-1) for s in (0, 1)
    )
    assert {r["status"] for r in table} == {"ok"}
    assert all(0.0 <= float(r["val_acc"]) <= 1.0 and float(r["train_s"]) > 0 for r in table)
    saved = results(tmp_path / "sw")
    assert len(saved) == 6 and len({r["config_hash"] for r in saved}) == 6
    # every command-line override reached every job, and BLAS threads = the task's CPUs
    assert all(
        r["config"]["train"]["n_s"] == 20 and r["config"]["train"]["blas_threads"] == 1
        for r in saved
    )
    assert all(r["synthetic"] and r["status"] == "ok" for r in saved)


def test_resume_trains_only_missing_jobs(head, tmp_path):
    first = run_sweep(
        tmp_path,
        "-m",
        "experiment=cyclic_1cycle",
        *SMALL,
        "lambda=1e-3,1e-2",
        "seed=0",
        *joining(head),
    )
    assert first.returncode == 0, first.stderr
    before = {r["config_hash"]: r["task_id"] for r in results(tmp_path / "sw")}
    # the same grid plus one seed, in a fresh directory (as with Hydra's timestamped default)
    grid = ["-m", "experiment=cyclic_1cycle", *SMALL, "lambda=1e-3,1e-2", "seed=0,1"]
    second = run_sweep(tmp_path, *grid, *joining(head), sweep_dir="sw2")
    assert second.returncode == 0, second.stderr
    s = summary(tmp_path / "sw2")
    assert (s["ran"], s["cached"], s["jobs"]) == (2, 2, 4)
    after = {r["config_hash"]: r for r in results(tmp_path / "sw2")}
    for key, task_id in before.items():
        assert after[key]["task_id"] == task_id and after[key]["status"] == "cached"
    assert sorted(r["status"] for r in rows(tmp_path / "sw2")) == ["cached", "cached", "ok", "ok"]
    # the same command in the same directory trains nothing; sweep.force=true trains all
    again = run_sweep(tmp_path, *grid, *joining(head), sweep_dir="sw2")
    assert again.returncode == 0 and summary(tmp_path / "sw2")["ran"] == 0
    forced = run_sweep(tmp_path, *grid, "sweep.force=true", *joining(head), sweep_dir="sw2")
    assert forced.returncode == 0 and summary(tmp_path / "sw2")["ran"] == 4
    assert all(r["task_id"] != before.get(r["config_hash"]) for r in results(tmp_path / "sw2"))


def test_three_jobs_on_two_cpus_share_them_with_the_numbers_of_jobs_alone(head, tmp_path):
    # 3 jobs, 2 CPUs: a second wave would leave a core idle, so each task asks for 2/3 of a CPU
    # and all three run at once (bundling.shared_cpus)
    proc = run_sweep(
        tmp_path,
        "-m",
        "experiment=cyclic_1cycle",
        *SMALL,
        "train.n_s=400",  # ~2 s a job: longer than the workers' start-up skew
        "seed=0,1,2",
        *joining(head),
    )
    assert proc.returncode == 0, proc.stderr
    done = results(tmp_path / "sw")
    spans = [(r["task_started_at"], r["task_started_at"] + r["task_wall_s"]) for r in done]
    assert len(spans) == 3 and max(a for a, _ in spans) < min(b for _, b in spans), spans
    for r in done:  # the OS shares the cores; each job's arithmetic is its own, unchanged
        alone = run_experiment(OmegaConf.create(r["config"]))
        assert [r[k] for k in METRICS] == [alone[k] for k in METRICS]


def test_failing_job_is_reported_and_the_rest_finish(head, tmp_path):
    # a batch larger than the training set only shows once the task has loaded the data
    proc = run_sweep(
        tmp_path,
        "-m",
        "experiment=cyclic_1cycle",
        *SMALL,
        "train.batch_size=50,5000",
        "seed=0,1",
        *joining(head),
    )
    assert proc.returncode == 1
    table = rows(tmp_path / "sw")
    failed = [r for r in table if r["status"] == "failed"]
    assert len(table) == 4 and len(failed) == 2
    assert all(r["train.batch_size"] == "5000" and "batch_size=5000" in r["error"] for r in failed)
    assert all(r["status"] == "ok" for r in table if r["train.batch_size"] == "50")
    assert "2 job(s) failed" in proc.stderr and "train.batch_size=5000" in proc.stderr
    assert len(list((tmp_path / "sw").glob("*/failed.json"))) == 2
    # failed jobs are not stored: a re-run tries them again
    again = run_sweep(
        tmp_path,
        "-m",
        "experiment=cyclic_1cycle",
        *SMALL,
        "train.batch_size=50,5000",
        "seed=0,1",
        *joining(head),
    )
    assert again.returncode == 1 and summary(tmp_path / "sw")["ran"] == 2


def test_killed_worker_is_retried_and_the_sweep_completes(head, tmp_path):
    killed = []

    def kill_one():
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            pids = task_pids(head.proc.pid)
            if pids:
                time.sleep(1.0)  # mid-run
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.1)

    killer = threading.Thread(target=kill_one)
    killer.start()
    proc = run_sweep(
        tmp_path,
        "-m",
        "experiment=cyclic_1cycle",
        *SMALL[:-2],
        "train.n_s=400",
        "seed=0,1",
        *joining(head),
    )
    killer.join()
    assert killed, "no running job found to kill"
    assert proc.returncode == 0, proc.stderr
    saved = results(tmp_path / "sw")
    assert len(saved) == 2 and all(r["status"] == "ok" for r in saved)
    assert killed[0] not in {r["pid"] for r in saved}  # the killed job was rerun in another worker


def test_lambda_search_runs_both_stages(head, tmp_path):
    search = [
        "search=lambda",
        *SMALL,
        "split.val_holdout=200",
        "search.coarse.grid=[1e-4,1e-2,1]",
        "search.fine.n=2",
        "seed=0,1",
        "search.coarse.overrides=['train.cycles=2']",
        *joining(head),
    ]
    proc = run_sweep(tmp_path, *search)
    assert proc.returncode == 0, proc.stderr
    out = json.loads((tmp_path / "sw" / "lambda_search.json").read_text())
    table = rows(tmp_path / "sw")
    # each stage's best λ is the arg-max of the mean validation accuracy over its own job rows
    for stage, key in (("coarse", "coarse_best_lambda"), ("fine", "chosen_lambda")):
        by_lambda: dict[float, list[float]] = {}
        for r in table:
            if r["stage"] == stage:
                by_lambda.setdefault(float(r["lambda"]), []).append(float(r["val_acc"]))
        means = {lam: sum(v) / len(v) for lam, v in by_lambda.items()}
        assert all(len(v) == 2 for v in by_lambda.values())  # every λ with both seeds
        assert out[key] == max(means, key=lambda lam: means[lam]), (stage, means)
    low, high = out["fine_interval"]
    best = out["coarse_best_lambda"]
    assert low == pytest.approx(best * 0.1) and high == pytest.approx(best * 3)
    assert low <= out["chosen_lambda"] <= high and out["chosen_lambda"] in [
        r["lambda"] for r in out["fine"]
    ]
    best_fine = max(r["val_acc_mean"] for r in out["fine"])
    assert out["fine_best_val_acc"] == best_fine
    assert f"chosen λ = {out['chosen_lambda']:.6g}" in proc.stdout
    assert [r["stage"] for r in table] == ["coarse"] * 6 + ["fine"] * 4
    assert {r["experiment"] for r in table} == {"lambda_coarse", "lambda_fine"}
    saved = results(tmp_path / "sw")
    assert all(
        r["config"]["data"]["n_train"] == 1000 and r["config"]["train"]["n_s"] == 20 for r in saved
    )
    assert (
        sorted(r["config"]["train"]["cycles"] for r in saved) == [2] * 6 + [3] * 4
    )  # each stage its own setting
    # the search resumes like any sweep
    again = run_sweep(tmp_path, *search, sweep_dir="sw2")
    assert again.returncode == 0 and summary(tmp_path / "sw2")["ran"] == 0
    assert (
        json.loads((tmp_path / "sw2" / "lambda_search.json").read_text())["chosen_lambda"]
        == out["chosen_lambda"]
    )


def test_unreachable_cluster_address_is_one_line(tmp_path):
    proc = run_sweep(
        tmp_path,
        "-m",
        "experiment=cyclic_1cycle",
        *SMALL,
        "launcher=ray_cluster",
        "sweep.ray.address=127.0.0.1:1",
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "cannot reach a Ray cluster at 127.0.0.1:1" in proc.stderr
    assert not (tmp_path / "sw" / "results.csv").exists()


def test_max_failures_stops_launching_and_keeps_results(head, tmp_path):
    # jobs 0-1 fit, the rest ask for a batch larger than the training set and fail
    proc = run_sweep(
        tmp_path,
        "-m",
        "experiment=cyclic_1cycle",
        *SMALL[:-2],
        "train.n_s=2",
        "train.batch_size=50,5000",
        "seed=range(0,6)",
        "sweep.max_failures=2",
        "sweep.max_in_flight=2",
        "sweep.progress=false",
        *joining(head),
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: stopped launching after"), proc.stderr
    assert "sweep.max_failures=2" in lines[0] and "batch_size=5000" in lines[0]
    table = rows(tmp_path / "sw")
    failed = [r for r in table if r["status"] == "failed"]
    assert 2 <= len(failed) <= 3 and len(table) < 12  # in flight when the limit was hit: kept
    assert all("\x1b" not in r["error"] and r["error"].startswith("UserError: ") for r in failed)
    assert all(r["status"] == "ok" for r in table if r["train.batch_size"] == "50")
    assert summary(tmp_path / "sw")["stopped"].startswith("stopped launching")
