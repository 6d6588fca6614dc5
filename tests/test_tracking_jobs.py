"""The trackers fed as the driver feeds them (Hydra callbacks with JobReturns, no Ray): jobs are
built from the JobReturn, never read from a job folder; the size switch; the sweep's plan.
Real MLflow (a SQLite store in tmp_path) and TensorBoard's own event reader."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import RunMode
from omegaconf import OmegaConf
from tracking_support import all_runs

from mlp.cli import CONF_MODULE
from mlp.sweep.launch import JobFailed
from mlp.sweep.plan import stage_of, sweep_plan, task_overrides
from mlp.tracking.callback import THREAD_NICE, Background
from mlp.tracking.mlflow_callback import MlflowTracking, resolve_uri
from mlp.tracking.tensorboard_callback import TensorBoardTracking


def sweep_config(tmp_path: Path, *overrides: str):
    """The primary config a multirun's callbacks get at on_multirun_start."""
    from hydra import initialize_config_module

    with initialize_config_module(config_module=CONF_MODULE, version_base="1.3"):
        return (
            GlobalHydra.instance()
            .config_loader()
            .load_configuration(
                config_name="sweep",
                overrides=[*overrides, f"hydra.sweep.dir={tmp_path / 'sw'}"],
                run_mode=RunMode.MULTIRUN,
            )
        )


def ok_return(sweep_dir: Path, num: int, lam: float, stage: str | None = None) -> JobReturn:
    """What the driver hands on_job_end for an ok job: the result (config and traceback popped)."""
    cfg = {"name": "lambda_coarse", "seed": 0, "lambda": lam, "train": {"n_s": 20}}
    ret = JobReturn(
        overrides=[f"lambda={lam}", "seed=0"],
        cfg=OmegaConf.create(cfg),
        working_dir=str(sweep_dir / str(num)),
        status=JobStatus.COMPLETED,
    )
    started = time.time() - 5
    ret.return_value = {
        "experiment": "lambda_coarse",
        "seed": 0,
        "lambda": lam,
        "history": [
            {"step": 0, "val_acc": 0.1, "train_loss": 2.3},
            {"step": 20, "val_acc": 0.3 + lam, "train_loss": 1.1},
        ],
        "val_acc": 0.3 + lam,
        "test_acc": 0.25 + lam,
        "train_acc": 0.5,
        "task_started_at": started,
        "task_wall_s": 2.0,
        "status": "ok",
        "config_hash": f"hash{num}",
        "sweep_job": {
            "num": num,
            "overrides": [],
            "stage": stage,
            "sweep_dir": str(sweep_dir),
        },
    }
    return ret


def failed_return(sweep_dir: Path, num: int, lam: float) -> JobReturn:
    ret = JobReturn(
        overrides=[f"lambda={lam}", "seed=0"],
        cfg=OmegaConf.create({"name": "lambda_fine", "seed": 0, "lambda": lam}),
        working_dir=str(sweep_dir / str(num)),
        status=JobStatus.FAILED,
    )
    ret.return_value = JobFailed("UserError: boom")
    return ret


def job_config(num: int):
    return OmegaConf.create({"hydra": {"job": {"num": num}}})


SEARCH = ["search=lambda", "search.coarse.grid=[1e-3,1e-2]", "search.fine.n=1", "seed=0"]


def test_plan_counts_jobs_as_the_sweeper_does(tmp_path):
    plain = sweep_config(tmp_path, "lambda=0,0.01,0.1", "seed=range(0,4)", "data=synthetic")
    assert sweep_plan(plain) == [(None, 12)]
    assert task_overrides(plain) == (
        {"data": "synthetic"},
        {"lambda": "0,0.01,0.1", "seed": "range(0,4)"},
    )
    search = sweep_config(tmp_path, *SEARCH[:-1], "seed=0,1,2")
    plan = sweep_plan(search)
    assert plan == [("coarse", 6), ("fine", 3)]
    assert [stage_of(plan, n) for n in (0, 5, 6, 8)] == ["coarse", "coarse", "fine", "fine"]
    assert sweep_plan(sweep_config(tmp_path, "search=lambda")) == [("coarse", 18), ("fine", 30)]
    assert sweep_plan(sweep_config(tmp_path, "experiment=glob(lambda_*)")) is None


def test_jobs_come_from_the_job_return_and_no_job_folder_is_read(tmp_path, capsys):
    """No job folder exists: the runs get everything from the JobReturns; a failed job's stage
    comes from the plan, its number from its config, its error from the JobFailed."""
    db = f"sqlite:///{tmp_path / 'm' / 'mlflow.db'}"
    config = sweep_config(tmp_path, *SEARCH)
    sweep_dir = tmp_path / "sw"
    mlflow, tb = MlflowTracking(tracking_uri=db), TensorBoardTracking()
    returns = [
        ok_return(sweep_dir, 0, 1e-3, "coarse"),
        ok_return(sweep_dir, 1, 1e-2, "coarse"),
        failed_return(sweep_dir, 2, 5e-3),
    ]
    for tracker in (mlflow, tb):
        tracker.on_multirun_start(config)
        for num, ret in enumerate(returns):
            tracker.on_job_end(job_config(num), ret)
        tracker.on_multirun_end(config)
    assert "Error executing job" not in capsys.readouterr().err  # JobReturn.return_value not read
    runs = all_runs(db)
    levels: dict[str, list] = {}
    for run in runs:
        levels.setdefault(run.data.tags["level"], []).append(run)
    (sweep,) = levels["sweep"]
    assert sweep.info.status == "FAILED"
    assert sweep.data.params == {
        "search": "lambda",
        "search.coarse.grid": "[0.001,0.01]",
        "search.fine.n": "1",
        "seed": "0",
    }
    assert sweep.data.metrics == {"jobs": 3, "jobs_ok": 2, "jobs_failed": 1, "job_runs": 3}
    stages = {r.info.run_name: r.info.run_id for r in levels["stage"]}
    jobs = {int(r.data.tags["job"]): r for r in levels["job"]}
    assert sorted(jobs) == [0, 1, 2]
    assert [jobs[n].data.tags["mlflow.parentRunId"] for n in range(3)] == [
        stages["coarse"],
        stages["coarse"],
        stages["fine"],
    ]
    failed = jobs[2]
    assert failed.info.status == "FAILED" and failed.data.tags["error"] == "UserError: boom"
    assert failed.data.tags["stage"] == "fine" and failed.data.params["name"] == "lambda_fine"
    from mlflow import MlflowClient

    client = MlflowClient(db)
    ok = jobs[1]
    assert ok.data.params["train.n_s"] == "20" and ok.data.metrics["val_acc"] == pytest.approx(0.31)
    curve = client.get_metric_history(ok.info.run_id, "history/val_acc")
    assert sorted((m.step, m.value) for m in curve) == [(0, 0.1), (20, pytest.approx(0.31))]
    assert {a.path for a in client.list_artifacts(ok.info.run_id)} == {"result.json"}
    saved = json.loads(
        Path(client.download_artifacts(ok.info.run_id, "result.json", str(tmp_path))).read_text()
    )
    assert saved["val_acc"] == pytest.approx(0.31) and saved["config"]["train"]["n_s"] == 20
    error = client.download_artifacts(failed.info.run_id, "failed.json", str(tmp_path / "f"))
    assert json.loads(Path(error).read_text())["error"] == "UserError: boom"
    # artifacts beside the database; the cost of tracking in the sweep folder
    assert (tmp_path / "m" / "mlartifacts").is_dir()
    cost = json.loads((sweep_dir / "tracking_mlflow.json").read_text())
    assert cost["jobs_logged"] == 3 and cost["jobs_planned"] == 3 and not cost["failed"]
    # TensorBoard: the tracker made each job's folder for its event file; the summary has all
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for num in range(3):
        assert list((sweep_dir / str(num)).glob("events.out.tfevents.*"))
    summary = EventAccumulator(str(sweep_dir / "summary"))
    summary.Reload()
    assert [(e.step, e.value) for e in summary.Scalars("jobs/val_acc")] == [
        (0, pytest.approx(0.301)),
        (1, pytest.approx(0.31)),
    ]
    assert summary.Scalars("sweep/jobs_failed")[-1].value == 1


def test_a_sweep_of_unknown_size_switches_job_runs_off_past_the_limit(tmp_path, capsys):
    """A glob sweep's size is not known up front: the first max_job_runs jobs get runs, the rest
    only count in the sweep's run (and the TensorBoard summary)."""
    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = sweep_config(tmp_path, "experiment=glob(lambda_*)", "lambda=0,0.1")
    sweep_dir = tmp_path / "sw"
    for tracker in (
        MlflowTracking(tracking_uri=db, max_job_runs=2),
        TensorBoardTracking(max_job_runs=2),
    ):
        tracker.on_multirun_start(config)
        for num in range(4):
            tracker.on_job_end(job_config(num), ok_return(sweep_dir, num, num / 10))
        tracker.on_multirun_end(config)
    err = capsys.readouterr().err
    assert err.count("max_job_runs=2 jobs finished; the rest get no per-job runs") == 2
    runs = all_runs(db)
    assert sorted(r.data.tags["job"] for r in runs if r.data.tags["level"] == "job") == ["0", "1"]
    (sweep,) = [r for r in runs if r.data.tags["level"] == "sweep"]
    assert sweep.data.metrics == {
        "jobs_ok": 4,
        "jobs_failed": 0,
        "job_runs": 2,
    }  # no "jobs": unknown
    assert [n for n in range(4) if list((sweep_dir / str(n)).glob("events.out.tfevents.*"))] == [
        0,
        1,
    ]


def test_a_relative_sqlite_store_is_anchored_in_the_launch_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert (
        resolve_uri(None, "sqlite:///outputs/mlflow.db")
        == f"sqlite:///{tmp_path}/outputs/mlflow.db"
    )
    assert resolve_uri("sqlite:////abs/m.db", "x") == "sqlite:////abs/m.db"
    assert resolve_uri("outputs/mlruns", "x") == (tmp_path / "outputs" / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert resolve_uri(None, "sqlite:///outputs/mlflow.db") == "http://127.0.0.1:5000"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_the_tracking_thread_runs_nicer_than_the_driver():
    worker, seen = Background("t"), []
    worker.submit(lambda: seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
    worker.close()
    assert seen == [min(19, os.getpriority(os.PRIO_PROCESS, 0) + THREAD_NICE)]
