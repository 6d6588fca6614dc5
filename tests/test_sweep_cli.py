"""Bad sweep input stops with one line before Ray starts (preflight checks one job per swept
value), and the pieces the λ search rests on: its settings, the fine-stage draw, the progress line."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf
from sweep_support import SMALL, ray_processes, run_sweep, wait_gone

from mlp.errors import UserError
from mlp.sweep.progress import Progress
from mlp.sweep.search import check_search, fine_lambdas


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, message",
    [
        (["-m", "experiment=cyclic_1cycle", "trian.epochs=3"], "unknown key 'trian.epochs'"),
        (
            ["-m", "experiment=cyclic_1cycle", "lambda=0.1", "train.n_x=1,2"],
            "unknown key 'train.n_x'",
        ),
        (
            ["-m", "experiment=lambda_coarse", "lambda=1e-5,1e-3,-1e-2", "seed=0,1"],
            "lambda=-0.01 must be a number ≥ 0 (job 4: ",
        ),
        (
            ["-m", "experiment=cyclic_1cycle", "split.val_holdout=100", "seed=0,1"],
            "set exactly one of split.val_batch and split.val_holdout",
        ),
        (["-m", "experiment=cyclic_1cycle,nope"], "unknown experiment 'nope'"),
        (["-m", "launcher=nowhere"], "unknown launcher 'nowhere'"),
        (["search=lambda", "search.coarse.grid=[1e-3,-1]"], "search.coarse.grid has lambda=-1"),
        (["search=lambda", "data.n_train=500,600"], "data.n_train cannot be swept"),
        (
            ["-m", "experiment=cyclic_1cycle", "sweep.ray.address=http://127.0.0.1:8265"],
            "dashboard/job-submission URL",
        ),
        (
            ["-m", "experiment=cyclic_1cycle", "sweep.cpus_per_job=0"],
            "sweep.cpus_per_job=0 must be a whole number",
        ),
    ],
)
def test_bad_input_is_one_line_before_any_job(tmp_path, args, message):
    before = ray_processes(tmp_path)
    proc = run_sweep(tmp_path, *args, *SMALL, env_extra={"RAY_ADDRESS": ""})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert not (tmp_path / "sw" / "results.csv").exists() and not (tmp_path / "store").exists()
    assert not wait_gone(ray_processes(tmp_path) - before)  # nothing of Ray left running


def test_fine_lambdas_are_seeded_and_inside_the_interval():
    fine = OmegaConf.create({"n": 5, "low_factor": 0.1, "high_factor": 3.0, "sampling_seed": 0})
    values, low, high = fine_lambdas(0.01, fine)
    assert (low, high) == pytest.approx((1e-3, 3e-2))
    assert len(values) == 5 and all(low <= v <= high for v in values) and values == sorted(values)
    assert fine_lambdas(0.01, fine)[0] == values
    assert fine_lambdas(0.01, OmegaConf.merge(fine, {"sampling_seed": 1}))[0] != values
    with pytest.raises(UserError):
        fine_lambdas(0.0, fine)


def test_search_settings_are_checked():
    ok = {
        "coarse": {"grid": [1e-3, 1e-2]},
        "fine": {"n": 2, "low_factor": 0.1, "high_factor": 3.0},
        "metric": "val_acc",
    }
    check_search(OmegaConf.create(ok))
    for bad in (
        {"coarse": {"grid": []}},
        {"fine": {"n": 0}},
        {"fine": {"low_factor": 4.0}},
        {"metric": "loss"},
    ):
        with pytest.raises(UserError):
            check_search(OmegaConf.merge(OmegaConf.create(ok), bad))


def test_progress_line_counts_and_eta(tmp_path):
    with open(tmp_path / "p.txt", "w") as f:
        p = Progress(4, stream=f)
        p.done, p.cached, p.failed, p.running = 2, 1, 1, 1
        line = p.line()
    assert "3/4 finished" in line and "1 failed" in line and "1 cached" in line and "ETA" in line


def test_preflight_tells_a_search_from_an_experiments_own_search_node():
    """lambda_fine has a `search:` node of its own (its draw interval): a plain sweep of it is no
    search, and its swept values are checked as any sweep's."""
    from mlp.sweep.plan import searching
    from mlp.sweep.preflight import preflight

    plain = preflight(["-m", "experiment=lambda_fine", "lambda=0.01,0.02"], config_name="sweep")
    assert "search" in plain and not searching(plain)
    assert searching(preflight(["search=lambda"], config_name="sweep"))
    with pytest.raises(UserError, match="lambda=-0.02 must be a number ≥ 0"):
        preflight(["-m", "experiment=lambda_fine", "lambda=0.01,-0.02"], config_name="sweep")
