"""The λ search's outcome and the line the sweeper prints, driven by a stand-in launcher (no Ray):
each job's metrics are a known function of its λ."""

from __future__ import annotations

import json
import signal

import pytest
from hydra.core.global_hydra import GlobalHydra
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import HydraContext, RunMode

from hydra_plugins.mlp_sweep.mlp_sweeper import MlpSweeper
from mlp.cli import CONF_MODULE


def fake_val_acc(lam: float, seed: int) -> float:  # best at λ = 1e-2
    return 0.5 - abs(lam - 1e-2) + 0.001 * seed


def fake_test_acc(lam: float, seed: int) -> float:  # best at the largest λ
    return 0.3 + lam + 0.002 * seed


class Runner:
    def __init__(self, sweep_dir):
        self.sweep_dir = sweep_dir

    def finish(self) -> int:
        return 0


class Launcher:
    """Returns each job's metrics from its λ and seed, as the real launcher's JobReturns."""

    def __init__(self, sweep_dir):
        self.runner, self.stage = Runner(sweep_dir), None

    def get_runner(self):
        return self.runner

    def launch(self, batch, initial_job_idx: int):
        rets = []
        for overrides in batch:
            values = dict(ov.split("=", 1) for ov in overrides)
            lam, seed = float(values["lambda"]), int(values["seed"])
            ret = JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED)
            ret.return_value = {
                "val_acc": fake_val_acc(lam, seed),
                "test_acc": fake_test_acc(lam, seed),
                "train_acc": 0.9,
            }
            rets.append(ret)
        return rets


def run_search(tmp_path, capsys, *arguments: str) -> tuple[dict, str]:
    """The sweeper's search=lambda path with the given overrides; (lambda_search.json, stdout)."""
    from hydra import initialize_config_module

    with initialize_config_module(config_module=CONF_MODULE, version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        config = loader.load_configuration(
            config_name="sweep", overrides=list(arguments), run_mode=RunMode.MULTIRUN
        )
        sweeper = MlpSweeper()
        sweeper.config = config
        sweeper.hydra_context = HydraContext(config_loader=loader, callbacks=None)
        sweeper.launcher = Launcher(tmp_path)
        before = signal.getsignal(signal.SIGTERM)  # the sweeper turns SIGTERM into Ctrl-C
        try:
            sweeper.sweep(list(arguments))
        finally:
            signal.signal(signal.SIGTERM, before)
    return json.loads((tmp_path / "lambda_search.json").read_text()), capsys.readouterr().out


GRID = ["search=lambda", "search.coarse.grid=[1e-3,1e-2,1e-1]", "search.fine.n=3", "seed=0,1"]


@pytest.mark.parametrize("metric", ["test_acc", "val_acc"])
def test_the_line_names_the_chosen_metric_with_its_own_mean(tmp_path, capsys, metric):
    outcome, out = run_search(tmp_path, capsys, *GRID, f"search.metric={metric}")
    fine = {row["lambda"]: row for row in outcome["fine"]}
    best = max(row[f"{metric}_mean"] for row in fine.values())
    assert f"fine best mean {metric} = {best:.4f};" in out
    assert outcome["metric"] == metric and outcome["fine_best_metric"] == pytest.approx(best)
    assert fine[outcome["chosen_lambda"]][f"{metric}_mean"] == pytest.approx(best)
    if metric == "test_acc":  # the two metrics disagree here: the line must not show val_acc's
        assert f"{outcome['fine_best_val_acc']:.4f}" != f"{best:.4f}"
