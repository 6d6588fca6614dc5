"""Bundled λ training (mlp/bundle.py, mlp/bundle_run.py, the bundle task, the driver's grouping)
and the search jobs' record switch (train.record), on the real code paths."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest
from conftest import ROOT, SMALL_SYNTHETIC, compose_cfg
from omegaconf import OmegaConf
from sweep_support import joining, results, rows, run_sweep, summary

from mlp.bundle_run import run_bundle
from mlp.errors import UserError
from mlp.experiment import run_experiment
from mlp.sweep import bundling
from mlp.sweep.bundle_task import mlp_sweep_bundle
from mlp.sweep.store import ResultStore
from mlp.validate import check_config

BASE = [
    "experiment=lambda_coarse",
    "dtype=float64",  # the search's own default is float32; these tests pin each dtype
    *SMALL_SYNTHETIC,
    "split.val_holdout=100",
    "train.n_s=20",
    "train.cycles=2",
    "train.record=curve",
    "train.record_points_per_cycle=2",
]
HISTORY = ("train_loss", "train_cost", "train_acc", "val_loss", "val_cost", "val_acc")
FINAL = ("train_acc", "val_acc", "test_acc", "final_train_loss", "final_val_loss", "test_loss")
# float64: a bundled model follows a lone job's arithmetic (differences are a few ulps);
# float32: a lone job keeps W1 column-major, a bundle row-major, so sums round differently.
RTOL = {"float64": 1e-12, "float32": 1e-5}


def cfgs_for(lams, *extra: str):
    return [compose_cfg([*BASE, f"lambda={lam}", *extra]) for lam in lams]


def assert_same_run(bundled: dict, alone: dict, rtol: float) -> None:
    assert len(bundled["history"]) == len(alone["history"])
    for rb, ra in zip(bundled["history"], alone["history"], strict=True):
        assert rb["step"] == ra["step"]
        np.testing.assert_allclose(
            [rb[k] for k in HISTORY], [ra[k] for k in HISTORY], rtol=rtol, atol=0
        )
    np.testing.assert_allclose(
        [bundled[k] for k in FINAL], [alone[k] for k in FINAL], rtol=rtol, atol=0
    )


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_bundled_jobs_give_the_numbers_of_the_same_jobs_alone(dtype):
    cfgs = cfgs_for([0.0, 1e-3, 0.1, 1.0], f"dtype={dtype}")
    bundled = run_bundle(cfgs)
    assert all(isinstance(r, dict) and r["bundle"]["size"] == 4 for r in bundled)
    assert [r["bundle"]["index"] for r in bundled] == [0, 1, 2, 3]
    for cfg, res in zip(cfgs, bundled, strict=True):
        alone = run_experiment(cfg)
        assert res["lambda"] == alone["lambda"] and res["config"] == alone["config"]
        assert_same_run(res, alone, RTOL[dtype])
    # the λ really differ inside the bundle: only λ = 0 has cost = loss, and the models differ
    gaps = [r["final_train_cost"] - r["final_train_loss"] for r in bundled]
    assert gaps[0] == 0.0 and min(gaps[1:]) > 0
    assert len({r["final_train_loss"] for r in bundled}) == 4


def test_a_bad_lambda_fails_only_its_job():
    cfgs = [OmegaConf.to_container(c, resolve=True) for c in cfgs_for([1e-3, -1.0, 1e4, 0.1])]
    out = mlp_sweep_bundle(cfgs)
    assert [r["status"] for r in out] == ["ok", "failed", "ok", "ok"]
    assert "lambda=-1.0" in out[1]["error"] and out[1]["error"].startswith("UserError")
    assert out[1]["config"] == cfgs[1] and "Traceback" in out[1]["traceback"]
    # λ = 1e4 diverges (its weights overflow) without touching its bundle-mates: as alone
    assert out[0]["bundle"]["size"] == 3 and not math.isfinite(out[2]["final_train_loss"])
    for i in (0, 2, 3):
        alone = run_experiment(OmegaConf.create(cfgs[i]))
        if i == 2:
            assert out[i]["val_acc"] == alone["val_acc"]
        else:
            assert_same_run(out[i], alone, RTOL["float64"])
    assert all(r["task_wall_s"] > 0 and "task_started_at" in r for r in out)


def test_record_final_keeps_the_final_metrics_and_drops_the_curve():
    curve, final = (
        run_experiment(compose_cfg([*BASE, "lambda=1e-3", f"train.record={m}"]))
        for m in ("curve", "final")
    )
    assert len(curve["history"]) > 2 and [r["step"] for r in final["history"]] == [curve["steps"]]
    assert final["history"][0] == curve["history"][-1]
    assert all(final[k] == curve[k] for k in FINAL)
    assert final["eval_s"] < curve["eval_s"]
    # the search experiments record their final metrics only; every other experiment its curve
    assert compose_cfg(["experiment=lambda_coarse"]).train.record == "final"
    assert compose_cfg(["experiment=lambda_fine"]).train.record == "final"
    assert compose_cfg(["experiment=final"]).train.record == "curve"
    with pytest.raises(UserError, match="train.record='sometimes'"):
        check_config(compose_cfg([*BASE, "train.record=sometimes"]))


@dataclass
class FakeJob:
    cfg: dict


def test_plan_units_bundles_only_jobs_that_differ_in_lambda():
    settings = OmegaConf.create({"bundle": "auto", "bundle_max": 6, "bundle_gain": 0.3})
    jobs = [
        FakeJob({"kind": "train", "seed": s, "lambda": lam, "data": {"name": "x"}})
        for s in (0, 1, 2)
        for lam in (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
    ]
    jobs.append(FakeJob({"kind": "gradcheck", "seed": 0, "lambda": 0.01}))
    units = bundling.plan_units(jobs, lambda j: j.cfg, settings, slots=2)
    assert sorted(id(j) for u in units for j in u) == sorted(id(j) for j in jobs)
    assert all(len({j.cfg["seed"] for j in u}) == 1 and len(u) <= 6 for u in units)
    assert [len(u) for u in units if u[0].cfg["kind"] == "gradcheck"] == [1]
    assert max(len(u) for u in units) > 1
    # as many CPUs as jobs, or bundling off: one job per task
    assert all(len(u) == 1 for u in bundling.plan_units(jobs, lambda j: j.cfg, settings, slots=19))
    pending = iter(jobs)
    streamed = list(bundling.unit_stream(lambda: next(pending, None), lambda j: j.cfg, settings, 2))
    assert [[id(j) for j in u] for u in streamed] == [[id(j) for j in u] for u in units]
    off = OmegaConf.create({"bundle": "off", "bundle_max": 6, "bundle_gain": 0.3})
    assert all(len(u) == 1 for u in bundling.plan_units(jobs, lambda j: j.cfg, off, slots=2))
    with pytest.raises(UserError, match="sweep.bundle='maybe'"):
        bundling.check_settings(
            OmegaConf.create({"bundle": "maybe", "bundle_max": 6, "bundle_gain": 0.3})
        )


SWEEP = ["-m", *BASE, "lambda=0,1e-3,1e-1,1", "seed=0", "sweep.ray.num_cpus=1"]


@pytest.mark.slow
@pytest.mark.ray
def test_bundled_sweep_records_each_job_and_resumes(tmp_path, shared_ray):
    first = run_sweep(tmp_path, *SWEEP, *joining(shared_ray))
    assert first.returncode == 0, first.stderr
    saved = {r["lambda"]: r for r in results(tmp_path / "sw")}
    assert len(saved) == 4 and len({r["config_hash"] for r in saved.values()}) == 4
    assert all(r["status"] == "ok" and r["bundle"]["size"] > 1 for r in saved.values())
    assert_same_run(saved[1e-3], run_experiment(cfgs_for([1e-3])[0]), RTOL["float64"])
    # one job's result lost: the same command in the same folder trains only that job
    lost = saved[1e-3]
    assert ResultStore(tmp_path / "store").forget([lost["config_hash"]]) == 1
    (tmp_path / "sw" / str(lost["sweep_job"]["num"]) / "result.json").unlink()
    again = run_sweep(tmp_path, *SWEEP, *joining(shared_ray))
    assert again.returncode == 0, again.stderr
    s = summary(tmp_path / "sw")
    assert (s["ran"], s["cached"], s["failed"]) == (1, 3, 0)
    table = {float(r["lambda"]): r for r in rows(tmp_path / "sw")}
    assert table[1e-3]["status"] == "ok" and {table[lam]["status"] for lam in (0, 0.1, 1)} == {
        "cached"
    }
    redone = {r["lambda"]: r for r in results(tmp_path / "sw")}[1e-3]
    assert "bundle" not in redone and redone["config_hash"] == lost["config_hash"]
    assert_same_run(redone, lost, RTOL["float64"])


@pytest.mark.slow
def test_benchmark_bundle_part_smoke(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "runners/benchmark.py",
            "--quick",
            "--parts",
            "bundle",
            "--dtypes",
            "float64",
            "--steps",
            "5",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = list(csv.DictReader(next(tmp_path.glob("*-quick.csv")).open()))
    names = {r["name"]: r for r in table}
    for k in (1, 2, 4):
        assert float(names[f"bundle step, k = {k}, float64, 1 thread"]["value"]) > 0
        assert float(names[f"ratio bundle/separate, k = {k}, float64, 1 thread"]["value"]) > 0
        assert float(names[f"ratio bundle/GEMMs-alone, k = {k}, float64, 1 thread"]["value"]) > 0
    split = [r for r in table if r["name"].startswith("search job")]
    assert len(split) == 2 and all(float(r["value"]) > 0 and "evaluate" in r["note"] for r in split)


@pytest.mark.slow
def test_bad_bundle_setting_is_one_line_exit_2(tmp_path):
    proc = run_sweep(tmp_path, *SWEEP, "sweep.bundle=sometimes")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: sweep.bundle='sometimes' is not allowed (allowed: auto, off)"
    ]
    assert not (tmp_path / "sw" / "results.csv").exists()
