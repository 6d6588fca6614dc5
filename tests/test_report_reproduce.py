"""`reproduce.py --quick` end to end on small synthetic data: every step through the sweep
machinery, then the report; a re-run after losing some results only redoes those."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sweep_support import joining

from mlp.errors import UserError
from mlp.report.build import KNOWN
from mlp.report.pipeline import make_plan
from mlp.result_schema import METRICS
from mlp.sweep.store import ResultStore

ROOT = Path(__file__).resolve().parent.parent
DATA = [
    "data=synthetic",
    "data.n_train=4000",
    "data.batch_size=800",
    "data.n_test=500",
    "sweep.progress=false",
]
TABLES = set(KNOWN)  # a table per experiment
FIGURES = {"lr_schedule", "overfit", "cyclic_1cycle", "cyclic_3cycles", "final", "lambda_search"}


def reproduce(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, MLP_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("RAY_ADDRESS", None)
    return subprocess.run(
        [sys.executable, str(ROOT / "runners" / "reproduce.py"), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )


@pytest.mark.slow
@pytest.mark.ray
def test_reproduce_quick_end_to_end_and_resume(tmp_path, shared_ray):
    args = ["--quick", *DATA, "--runs-dir", "runs", "--report-dir", "report"]
    proc = reproduce(tmp_path, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs, report = tmp_path / "runs", tmp_path / "report"
    assert proc.stdout.strip().splitlines()[-1] == str(report / "REPORT.md")

    assert {p.stem for p in (report / "tables").glob("*.csv")} == TABLES
    assert {p.stem for p in (report / "figures").glob("*.png")} == FIGURES
    md = (report / "REPORT.md").read_text()
    assert "SYNTHETIC DATA" in md and "No results" not in md and "profile quick" in md

    chosen = json.loads((runs / "lambda_search" / "lambda_search.json").read_text())[
        "chosen_lambda"
    ]
    final = pd.read_csv(report / "tables" / "final.csv")
    assert list(final["lambda"]) == [pytest.approx(chosen, rel=1e-12)] and list(final["n"]) == [2]
    fine = pd.read_csv(report / "tables" / "lambda_fine.csv")
    assert list(fine.loc[fine["chosen"], "lambda"]) == [pytest.approx(chosen, rel=1e-12)]
    coarse = pd.read_csv(report / "tables" / "lambda_coarse.csv")
    assert list(coarse["lambda"]) == [0.0001, 0.01, 1.0] and set(coarse["n"]) == {2}
    for name in ("checks", "lambda_search", "final"):
        assert (runs / name / "results.csv").is_file()

    # each step run alone, as its own sweep with a fresh store, gives the reproduction's numbers
    alone = make_plan(["--quick", *DATA, "--runs-dir", str(tmp_path / "alone")], tmp_path)
    steps = {"checks": alone.checks, "lambda_search": alone.search, "final": alone.final(chosen)}
    sweep = [sys.executable, str(ROOT / "runners" / "sweep.py")]
    drivers = {  # all three at once: their start-ups overlap (one store takes concurrent sweeps)
        name: subprocess.Popen(
            [*sweep, *step, *joining(shared_ray)],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, step in steps.items()
    }
    for name, driver in drivers.items():
        _, err = driver.communicate(timeout=600)
        assert driver.returncode == 0, err[-3000:]
        assert _numbers(alone.runs_dir / name).equals(_numbers(runs / name)), name

    # "Interrupted": one final job's result is gone (sweep folder and store); the re-run redoes only it.
    lost = json.loads((runs / "final" / "1" / "result.json").read_text())
    (runs / "final" / "1" / "result.json").unlink()
    assert ResultStore(runs / "store").forget([lost["config_hash"]]) == 1
    before = pd.read_csv(report / "tables" / "final.csv")
    proc = reproduce(tmp_path, *args, *joining(shared_ray))  # the resume's subject is the store
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "4 jobs: 0 ran, 4 cached" in proc.stdout
    assert "10 jobs: 0 ran, 10 cached" in proc.stdout
    assert "2 jobs: 1 ran, 1 cached" in proc.stdout
    after = pd.read_csv(report / "tables" / "final.csv")
    numbers = [c for c in before.columns if not c.startswith("train_s")]  # all but the timings
    pd.testing.assert_frame_equal(
        after[numbers], before[numbers]
    )  # same config and seed, same numbers
    invocations = json.loads((runs / "reproduce.json").read_text())["invocations"]
    assert len(invocations) == 2


def _numbers(sweep_dir: Path) -> pd.DataFrame:
    """A step's metrics by config hash (what a job computed, not where or how fast)."""
    table = pd.read_csv(sweep_dir / "results.csv")
    assert set(table["status"]) == {"ok"}, table["error"].dropna().tolist()
    return table.set_index("config_hash").sort_index()[list(METRICS)]


@pytest.mark.slow
def test_reproduce_rejects_bad_arguments_in_one_line(tmp_path):
    for args, needle in (
        (["--profile", "huge"], "unknown profile 'huge'"),
        (["lambda=0.1"], "lambda= is set by mlp-reproduce"),
        (["--fast"], "unrecognized arguments: --fast"),
    ):
        proc = reproduce(tmp_path, *args)
        assert proc.returncode == 2, args
        assert proc.stderr.strip().count("\n") == 0 and needle in proc.stderr, proc.stderr
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_a_bad_override_stops_before_any_step(tmp_path):
    proc = reproduce(tmp_path, "--quick", "data=nosuch", "--runs-dir", "runs")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: unknown data 'nosuch' (allowed: cifar10, cifar10_jpeg, synthetic)"
    ]
    assert not (tmp_path / "runs" / "checks").exists()


@pytest.mark.slow
@pytest.mark.ray
def test_a_failing_step_stops_with_its_exit_code(tmp_path, shared_ray):
    # 3 batches of 800: every search job (batches 1-5) fails in its task; the checks still finish
    args = ["--quick", *DATA, "data.n_train=2400", "--runs-dir", "runs", *joining(shared_ray)]
    proc = reproduce(tmp_path, *args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "error: step 'lambda_search' failed (exit 2)" in proc.stderr.strip().splitlines()[-1]
    assert (tmp_path / "runs" / "checks" / "results.csv").is_file()
    assert (
        not (tmp_path / "runs" / "final").exists() and not (tmp_path / "runs" / "report").exists()
    )


def test_plan_passes_data_and_cluster_overrides_to_every_sweep(tmp_path):
    plan = make_plan(["data=cifar10_jpeg", "launcher=ray_cluster"], tmp_path)
    assert plan.runs_dir == tmp_path / "outputs/sweeps/reproduce/full_cifar10_jpeg"
    assert plan.report_dir == tmp_path / "outputs/report"
    for args in (plan.checks, plan.search, plan.final(0.0123)):
        assert "data=cifar10_jpeg" in args and "launcher=ray_cluster" in args
        assert f"sweep.store={plan.runs_dir / 'store'}" in args
    assert "seed=0,1,2" in plan.search and "seed=0,1,2" in plan.final(0.1)
    assert plan.final(0.0123)[-1] == "lambda=0.0123"
    assert "experiment=cyclic_3cycles,gradcheck,cyclic_1cycle,overfit" in plan.checks
    quick = make_plan(["--quick"], tmp_path)
    assert quick.report_dir == quick.runs_dir / "report"
    with pytest.raises(UserError):
        make_plan(["seed=3"], tmp_path)
