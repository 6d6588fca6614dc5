"""Tracking of real sweeps (Ray + runners/sweep.py): MLflow against a real tracking server and the
default local SQLite store, TensorBoard event files read back with TensorBoard's own reader, each
job's folder (.hydra/*.yaml, job.log), and a sweep above max_job_runs (one sweep run, no job runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from sweep_support import SMALL, joining, results, rows, run_sweep
from tracking_support import MlflowServer, all_runs

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def server(tmp_path_factory):
    """Started with the module, so it boots while the file-store test's sweep runs."""
    srv = MlflowServer(tmp_path_factory.mktemp("mlflow"))
    try:
        yield srv
    finally:
        srv.stop()


def client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def by_level(runs) -> dict[str, list]:
    levels: dict[str, list] = {}
    for run in runs:
        levels.setdefault(run.data.tags.get("level"), []).append(run)
    return levels


def check_job_run(mlflow, run, result: dict) -> None:
    """A job's run holds its config as params, its history and final metrics, its files."""
    tags, params = run.data.tags, run.data.params
    assert tags["config_hash"] == result["config_hash"] and tags["seed"] == str(result["seed"])
    assert float(tags["lambda"]) == result["lambda"] and tags["experiment"] == result["experiment"]
    assert params["train.n_s"] == "20" and float(params["lambda"]) == result["lambda"]
    assert params["data.name"] == "synthetic"
    assert params["split.train_batches"] == json.dumps(result["config"]["split"]["train_batches"])
    curve = mlflow.get_metric_history(run.info.run_id, "history/val_acc")
    assert [(m.step, m.value) for m in sorted(curve, key=lambda m: m.step)] == [
        (rec["step"], pytest.approx(rec["val_acc"])) for rec in result["history"]
    ]
    assert run.data.metrics["test_acc"] == pytest.approx(result["test_acc"])
    files = {a.path for a in mlflow.list_artifacts(run.info.run_id)}
    assert {"result.json", "job.log", ".hydra"} <= files
    assert {a.path for a in mlflow.list_artifacts(run.info.run_id, ".hydra")} == {
        ".hydra/config.yaml",
        ".hydra/hydra.yaml",
        ".hydra/overrides.yaml",
    }


def local_store(tmp_path: Path) -> str:
    """The default store of a sweep launched in tmp_path: sqlite:///outputs/mlflow.db there."""
    return f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}"


def test_default_sqlite_store_marks_failed_jobs_and_tensorboard_has_every_job(tmp_path, shared_ray):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    # a batch larger than the training set only fails inside the task, after loading the data
    proc = run_sweep(
        tmp_path,
        "-m",
        "experiment=cyclic_1cycle",
        *SMALL,
        "lambda=0,0.01",
        "train.batch_size=50,5000",
        *joining(shared_ray),
        "+tracking=[mlflow,tensorboard]",
    )
    assert proc.returncode == 1
    sweep_dir = tmp_path / "sw"
    levels = by_level(all_runs(local_store(tmp_path)))
    (parent,) = levels["sweep"]
    assert parent.info.status == "FAILED"  # the sweep exited 1, before Hydra's on_multirun_end
    jobs = {int(r.data.tags["job"]): r for r in levels["job"]}
    assert sorted(jobs) == [0, 1, 2, 3]
    mlflow = client(local_store(tmp_path))
    assert (tmp_path / "outputs" / "mlartifacts").is_dir()  # artifacts beside the database
    assert parent.data.metrics == {"jobs": 4, "jobs_ok": 2, "jobs_failed": 2, "job_runs": 4}
    for num, run in jobs.items():
        job_dir = sweep_dir / str(num)
        overrides = yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text())
        config = yaml.safe_load((job_dir / ".hydra" / "config.yaml").read_text())
        assert config["lambda"] == float(run.data.tags["lambda"]) and "hydra" not in config
        assert (
            yaml.safe_load((job_dir / ".hydra" / "hydra.yaml").read_text())["hydra"]["job"]["num"]
            == num
        )
        failed = "train.batch_size=5000" in overrides
        assert run.info.status == ("FAILED" if failed else "FINISHED")
        if failed:
            log = (job_dir / "job.log").read_text()
            assert "Traceback" in log and "is larger than the training set" in log
            local = Path(mlflow.download_artifacts(run.info.run_id, "job.log", str(tmp_path)))
            assert local.read_text() == log
            assert "failed.json" in {a.path for a in mlflow.list_artifacts(run.info.run_id)}
        else:
            check_job_run(mlflow, run, json.loads((job_dir / "result.json").read_text()))
        # TensorBoard: the job's scalars and its HParams session, read back by TensorBoard itself
        acc = EventAccumulator(str(job_dir))
        acc.Reload()
        hparams = plugin_data_pb2.HParamsPluginData.FromString(
            acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
        ).session_start_info.hparams
        assert hparams["lambda"].number_value == float(run.data.tags["lambda"])
        assert hparams["status"].string_value == ("failed" if failed else "ok")
        assert hparams["train.batch_size"].number_value == (5000 if failed else 50)
        if not failed:
            result = json.loads((job_dir / "result.json").read_text())
            assert [(e.step, e.value) for e in acc.Scalars("history/val_acc")] == [
                (rec["step"], pytest.approx(rec["val_acc"])) for rec in result["history"]
            ]
            assert acc.Scalars("test_acc")[-1].value == pytest.approx(result["test_acc"])
    summary = EventAccumulator(str(sweep_dir / "summary"))  # the sweep's own: the ok jobs' metrics
    summary.Reload()
    ok = sorted(num for num, run in jobs.items() if run.info.status == "FINISHED")
    assert sorted(e.step for e in summary.Scalars("jobs/val_acc")) == ok


def test_mlflow_server_gets_a_run_per_job_under_its_stage_and_sweep_and_resume_adds_none(
    server, tmp_path, shared_ray
):
    """The λ search against a real server: 2 coarse + 2 fine jobs, each stage a run under the sweep's."""
    args = [
        "search=lambda",
        *SMALL,
        "split.val_holdout=200",
        "search.coarse.grid=[1e-4,1e-2]",
        "search.fine.n=2",
        "seed=0",
        *joining(shared_ray),
        "+tracking=mlflow",
        f"hydra.callbacks.mlflow.tracking_uri={server.uri}",
    ]
    server.wait_ready()
    proc = run_sweep(tmp_path, *args)
    assert proc.returncode == 0, proc.stderr
    assert "View run" not in proc.stdout and "warning" not in proc.stderr
    levels = by_level(all_runs(server.uri))
    (parent,) = levels["sweep"]
    assert parent.info.status == "FINISHED" and parent.info.run_name == "sw"
    search = json.loads((tmp_path / "sw" / "lambda_search.json").read_text())
    assert parent.data.metrics["chosen_lambda"] == pytest.approx(search["chosen_lambda"])
    stages = {r.info.run_name: r for r in levels["stage"]}
    assert sorted(stages) == ["coarse", "fine"]
    assert {r.data.tags["mlflow.parentRunId"] for r in stages.values()} == {parent.info.run_id}
    jobs = levels["job"]
    assert len(jobs) == 4 and {r.info.status for r in jobs} == {"FINISHED"}
    for run in jobs:
        assert run.data.tags["mlflow.parentRunId"] == stages[run.data.tags["stage"]].info.run_id
    assert sorted(r.data.tags["stage"] for r in jobs) == ["coarse", "coarse", "fine", "fine"]
    mlflow = client(server.uri)
    saved = {r["config_hash"]: r for r in results(tmp_path / "sw")}
    for run in jobs:
        check_job_run(mlflow, run, saved[run.data.tags["config_hash"]])
    assert "results.csv" in {a.path for a in mlflow.list_artifacts(parent.info.run_id)}
    # resumed: every job cached, nothing logged (no new parent either)
    again = run_sweep(tmp_path, *args)
    assert again.returncode == 0, again.stderr
    assert len(all_runs(server.uri)) == 7


def test_a_sweep_above_max_job_runs_gets_one_sweep_run_with_its_table(tmp_path, shared_ray):
    """4 jobs, max_job_runs=2: MLflow makes no job runs, only the sweep's (its overrides as
    params, the counts, results.csv as an artifact); TensorBoard writes only the summary."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    proc = run_sweep(
        tmp_path,
        "-m",
        "experiment=cyclic_1cycle",
        *SMALL,
        "lambda=0,0.01",
        "seed=0,1",
        *joining(shared_ray),
        "+tracking=[mlflow,tensorboard]",
        "hydra.callbacks.mlflow.max_job_runs=2",
        "hydra.callbacks.tensorboard.max_job_runs=2",
    )
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr and "note:" not in proc.stderr  # the size was known
    (sweep,) = all_runs(local_store(tmp_path))
    assert sweep.data.tags["level"] == "sweep" and sweep.info.status == "FINISHED"
    assert sweep.data.tags["swept"] == "lambda=0,0.01 seed=0,1"
    assert sweep.data.metrics == {"jobs": 4, "jobs_ok": 4, "jobs_failed": 0, "job_runs": 0}
    params = sweep.data.params
    assert params["experiment"] == "cyclic_1cycle" and params["train.n_s"] == "20"
    assert params["data"] == "synthetic" and "lambda" not in params
    mlflow = client(local_store(tmp_path))
    arts = {a.path for a in mlflow.list_artifacts(sweep.info.run_id)}
    assert {"results.csv", "sweep.json", "multirun.yaml"} <= arts
    table = Path(mlflow.download_artifacts(sweep.info.run_id, "results.csv", str(tmp_path)))
    sweep_dir = tmp_path / "sw"
    assert table.read_text() == (sweep_dir / "results.csv").read_text()
    # TensorBoard: no job's event file, the summary has every job's metrics at its number
    assert [p.parent.name for p in sweep_dir.glob("*/events.out.tfevents.*")] == ["summary"]
    summary = EventAccumulator(str(sweep_dir / "summary"))
    summary.Reload()
    by_job = {int(r["job"]): float(r["val_acc"]) for r in rows(sweep_dir)}
    assert {e.step: e.value for e in summary.Scalars("jobs/val_acc")} == pytest.approx(by_job)
    assert summary.Scalars("sweep/jobs_ok")[-1].value == 4
    cost = json.loads((sweep_dir / "tracking_mlflow.json").read_text())
    assert cost["jobs_logged"] == 0 and cost["jobs_finished"] == 4
