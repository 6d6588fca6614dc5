"""Every experiment config composes, validates and holds the study's settings; a short run follows
the configured schedule; training is deterministic; the overfit check works."""

import numpy as np
import pytest
from conftest import SMALL_SYNTHETIC, shared_cache_dir
from omegaconf import OmegaConf

from mlp.cli import group_options
from mlp.experiment import run_experiment
from mlp.report.build import KNOWN
from mlp.train import record_steps, resolve_n_s
from mlp.validate import check_config

EXPERIMENTS = group_options("experiment")  # conf/experiment/*.yaml
SHORT = ["train.n_s=20", "train.cycles=1"]


def test_the_report_knows_every_experiment():
    assert set(EXPERIMENTS) == set(KNOWN)


# What conf/experiment/<name>.yaml (over conf/config.yaml) sets: the study's settings, by dotted key.
CYCLIC = {
    "kind": "train",
    "lambda": 0.01,
    "dtype": "float64",
    "train.schedule": "cyclic",
    "train.eta_min": 1e-5,
    "train.eta_max": 1e-1,
    "train.batch_size": 100,
    "train.record": "curve",
    "split.train_batches": [1],
    "split.val_batch": 2,
    "split.val_holdout": None,
}
SEARCH = {
    **CYCLIC,
    "dtype": "float32",
    "train.n_s": None,
    "train.n_s_epochs": 2,
    "train.cycles": 3,
    "train.record": "final",
    "split.train_batches": [1, 2, 3, 4, 5],
    "split.val_batch": None,
    "split.val_holdout": 5000,
}
EXPECTED = {
    "gradcheck": {
        "kind": "gradcheck",
        "gradcheck.h": 1e-5,
        "gradcheck.tolerance.float64": 1e-6,
        "gradcheck.tolerance.float32": 1e-3,
    },
    "overfit": {
        "kind": "train",
        "lambda": 0.0,
        "split.train_limit": 100,
        "train.schedule": "constant",
        "train.eta": 0.05,
        "train.batch_size": 10,
        "train.epochs": 200,
        "train.record_every": 100,
    },
    "cyclic_1cycle": {**CYCLIC, "train.n_s": 500, "train.cycles": 1},
    "cyclic_3cycles": {**CYCLIC, "train.n_s": 800, "train.cycles": 3},
    "lambda_coarse": SEARCH,
    "lambda_fine": {**SEARCH, "lambda": None, "search.low": 1e-3, "search.high": 3e-2},
    "final": {
        **CYCLIC,
        "lambda": 0.008,
        "train.n_s": None,
        "train.n_s_epochs": 2,
        "train.cycles": 3,
        "split.train_batches": [1, 2, 3, 4, 5],
        "split.val_batch": None,
        "split.val_holdout": 1000,
    },
}


def test_every_experiment_has_expectations():
    assert set(EXPECTED) == set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
@pytest.mark.parametrize("data", ["cifar10", "cifar10_jpeg", "synthetic"])
def test_experiment_config_composes_and_validates(cfg_factory, name, data):
    cfg = cfg_factory([f"experiment={name}", f"data={data}"])
    assert cfg.name == name
    check_config(cfg)
    got = {key: OmegaConf.select(cfg, key) for key in EXPECTED[name]}
    got = {k: OmegaConf.to_object(v) if OmegaConf.is_config(v) else v for k, v in got.items()}
    assert got == EXPECTED[name]
    assert cfg.data.name == data and ("root" in cfg.data or data == "synthetic")
    assert (cfg.model.hidden, cfg.model.n_classes) == (50, 10)


@pytest.mark.parametrize("name, n_s", [("cyclic_1cycle", 7), ("cyclic_3cycles", 5)])
def test_a_short_run_follows_the_configured_cyclic_schedule(cfg_factory, monkeypatch, name, n_s):
    """With only n_s shortened, a run takes 2·n_s·cycles steps (cycles as the config says) and
    every step's η, as SGDStep.step receives it, is the triangle between the config's η_min and
    η_max: η_min at the start of each cycle, η_max at its middle."""
    from mlp.sgd import SGDStep

    cfg = cfg_factory([f"experiment={name}", *SMALL_SYNTHETIC, f"train.n_s={n_s}"])
    cycles = EXPECTED[name]["train.cycles"]
    lo, hi = EXPECTED[name]["train.eta_min"], EXPECTED[name]["train.eta_max"]
    etas: list[float] = []
    real_step = SGDStep.step

    def watched(self, x_rows, y_rows, idx, lam, eta):
        assert lam == EXPECTED[name]["lambda"]
        etas.append(eta)
        real_step(self, x_rows, y_rows, idx, lam, eta)

    monkeypatch.setattr(SGDStep, "step", watched)
    result = run_experiment(cfg)
    steps = 2 * n_s * cycles
    assert result["steps"] == len(etas) == steps and result["n_s"] == n_s
    for t, eta in enumerate(etas):  # the triangle, written out here
        pos = t % (2 * n_s)
        frac = pos / n_s if pos <= n_s else 2 - pos / n_s
        assert eta == pytest.approx(lo + (hi - lo) * frac, rel=1e-12), t
    assert min(etas) == pytest.approx(lo) and max(etas) == pytest.approx(hi)
    assert [etas[c * 2 * n_s] for c in range(cycles)] == pytest.approx([lo] * cycles)
    assert [etas[c * 2 * n_s + n_s] for c in range(cycles)] == pytest.approx([hi] * cycles)
    assert result["history"][-1]["step"] == steps


def test_study_settings_in_configs(cfg_factory):
    c1 = cfg_factory(["experiment=cyclic_1cycle"])
    assert (
        c1.train.eta_min,
        c1.train.eta_max,
        c1.train.n_s,
        c1.train.cycles,
        c1.train.batch_size,
        c1["lambda"],
    ) == (1e-5, 1e-1, 500, 1, 100, 0.01)
    c3 = cfg_factory(["experiment=cyclic_3cycles"])
    assert (c3.train.n_s, c3.train.cycles) == (800, 3)
    coarse = cfg_factory(["experiment=lambda_coarse"])
    assert resolve_n_s(coarse.train, 45000) == 900  # 2·⌊45000/100⌋: 4 epochs per cycle
    final = cfg_factory(["experiment=final"])
    assert final["lambda"] == 0.008 and final.split.val_holdout == 1000 and final.train.cycles == 3


def test_top_level_overrides_reach_any_experiment(cfg_factory):
    cfg = cfg_factory(["experiment=final", "lambda=0.005", "seed=3", "dtype=float32"])
    assert (cfg["lambda"], cfg.seed, cfg.dtype) == (0.005, 3, "float32")


def test_record_steps_default_ten_per_cycle_and_end(cfg_factory):
    cfg = cfg_factory(["experiment=cyclic_3cycles"])
    marks = record_steps(cfg.train, 4800, 800)
    assert marks[0] == 0 and marks[-1] == 4800 and len(marks) == 31
    assert marks[:3] == [0, 160, 320]


@pytest.mark.slow
def test_same_seed_gives_identical_history(cfg_factory):
    cfg = cfg_factory(["experiment=cyclic_1cycle", *SMALL_SYNTHETIC, *SHORT, "seed=4"])
    a, b = run_experiment(cfg), run_experiment(cfg)
    assert a["history"] == b["history"] and a["test_acc"] == b["test_acc"]
    other = run_experiment(
        cfg_factory(["experiment=cyclic_1cycle", *SMALL_SYNTHETIC, *SHORT, "seed=5"])
    )
    assert other["history"] != a["history"]


@pytest.mark.slow
def test_training_learns_and_records_everything(cfg_factory):
    result = run_experiment(
        cfg_factory(["experiment=cyclic_1cycle", *SMALL_SYNTHETIC, "train.n_s=40"])
    )
    hist = result["history"]
    assert [h["step"] for h in hist] == list(range(0, 80, 8)) + [80]
    assert hist[0]["eta"] == pytest.approx(1e-5) and hist[5]["eta"] == pytest.approx(1e-1)
    assert hist[-1]["train_loss"] < hist[0]["train_loss"] - 0.5
    assert result["val_acc"] > 0.3 and result["synthetic"] and "SYNTHETIC" in result["data_source"]
    for h in hist:  # cost = loss + λ‖W‖² ≥ loss
        assert h["train_cost"] > h["train_loss"] and h["val_cost"] - h["val_loss"] == pytest.approx(
            h["train_cost"] - h["train_loss"]
        )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_training_runs_in_the_configured_dtype(cfg_factory, monkeypatch, dtype):
    """The weights, the batch, the hidden layer and the scores every step works on (the real
    step, watched from outside) are in the configured dtype."""
    from mlp.sgd import SGDStep

    seen: set[str] = set()
    real_step = SGDStep.step

    def watched(self, *args, **kwargs):
        real_step(self, *args, **kwargs)
        arrays = [*self.params.values(), self.x, self.s1, self.scores_buffer(1)[0]]
        seen.update(a.dtype.name for a in arrays)

    monkeypatch.setattr(SGDStep, "step", watched)
    result = run_experiment(
        cfg_factory(["experiment=cyclic_1cycle", *SMALL_SYNTHETIC, *SHORT, f"dtype={dtype}"])
    )
    assert seen == {dtype}
    assert result["val_acc"] > 0.2


@pytest.mark.slow
def test_overfit_on_synthetic(cfg_factory):
    result = run_experiment(
        cfg_factory(["experiment=overfit", *SMALL_SYNTHETIC, "train.epochs=100"])
    )
    assert result["n_train"] == 100
    assert result["final_train_loss"] < 0.01
    assert result["final_val_loss"] > 10 * result["final_train_loss"]


@pytest.mark.real_data
@pytest.mark.slow
def test_overfit_on_100_real_images(cfg_factory, shared_archive):
    cfg = cfg_factory(
        [
            "experiment=overfit",
            "data=cifar10_jpeg",
            f"data.root={shared_archive}",
            "split.val_batch=2",
            "train.epochs=100",
            "train.record_every=1000",
        ]
    )
    cfg.data.cache_dir = shared_cache_dir()
    result = run_experiment(cfg)
    assert result["n_train"] == 100 and not result["synthetic"]
    assert result["final_train_loss"] < 0.01 and result["train_acc"] == 1.0
    assert result["final_val_loss"] > 2.0 and result["val_acc"] < 0.35


def test_lambda_fine_draws_lambda_log_uniformly_from_its_seed(cfg_factory):
    from mlp.experiment import draw_lambda

    cfg = cfg_factory(["experiment=lambda_fine"])
    draws = [draw_lambda(cfg.search, s) for s in range(200)]
    assert len(set(draws)) == 200  # the seed picks the draw
    assert min(draws) >= cfg.search.low and max(draws) <= cfg.search.high
    logs = np.log10(draws)
    mid = (np.log10(cfg.search.low) + np.log10(cfg.search.high)) / 2
    assert 0.35 < np.mean(logs < mid) < 0.65  # uniform in log space, not in λ
    # a run with lambda=null trains with its seed's draw
    run = cfg_factory(
        ["experiment=lambda_fine", *SMALL_SYNTHETIC, *SHORT, "split.val_holdout=200", "seed=7"]
    )
    assert run_experiment(run)["lambda"] == draws[7]
