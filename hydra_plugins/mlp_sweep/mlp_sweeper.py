"""Hydra Sweeper `mlp`: Hydra's own sweep syntax (a,b / range / choice / glob, several keys),
or, with a `search` group chosen (`search=lambda`, conf/search/), the study's two-stage λ
search; one exit code at the end.
"""

import sys
from dataclasses import dataclass
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf


@dataclass
class MlpSweeperConf:
    _target_: str = "hydra_plugins.mlp_sweep.mlp_sweeper.MlpSweeper"


ConfigStore.instance().store(
    group="hydra/sweeper", name="mlp", node=MlpSweeperConf, provider="mlp-study"
)


class MlpSweeper(Sweeper):
    def __init__(self) -> None:
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        from hydra.core.plugins import Plugins

        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from mlp.cli import fail, write_json_atomic
        from mlp.errors import UserError
        from mlp.sweep.launch import SweepStopped, terminate_as_interrupt

        terminate_as_interrupt()  # SIGTERM ends the sweep like Ctrl-C: results kept, Ray stopped

        try:
            parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
            overrides = parser.parse_overrides(arguments)
            if OmegaConf.select(self.config, "hydra.runtime.choices.search") is not None:
                from mlp.sweep.search import run_search

                returns = None
                outcome = run_search(self.config, overrides, self._launch_stage)
            else:
                batch = BasicSweeper.split_arguments(overrides, None)[0]
                returns = self._launch_stage(batch, 0, None)
                outcome = None
        except UserError as exc:
            self._finish_quietly()
            fail(str(exc))
        except SweepStopped as exc:
            self._finish_quietly()
            fail(str(exc), code=1)
        except KeyboardInterrupt:
            self._finish_quietly()
            print(
                "\ninterrupted: finished jobs are in results.csv and the result store",
                file=sys.stderr,
            )
            sys.exit(130)
        runner = self.launcher.get_runner()
        OmegaConf.save(self.config, runner.sweep_dir / "multirun.yaml")
        if outcome is not None:
            write_json_atomic(runner.sweep_dir / "lambda_search.json", outcome)
        code = runner.finish()
        if outcome is not None:
            print(
                f"coarse best λ = {outcome['coarse_best_lambda']:.6g}; fine best mean {outcome['metric']} = "
                f"{outcome['fine_best_val_acc']:.4f}; chosen λ = {outcome['chosen_lambda']:.6g} "
                f"-> {runner.sweep_dir / 'lambda_search.json'}",
                flush=True,
            )
        if code:
            sys.exit(code)
        return returns

    def _launch_stage(self, batch, initial_job_idx: int, stage):
        self.launcher.stage = stage
        return self.launcher.launch(batch, initial_job_idx=initial_job_idx)

    def _finish_quietly(self) -> None:
        runner = self.launcher.runner if self.launcher is not None else None
        if runner is not None and (runner.rows or runner.ray_info):
            runner.finish()
        else:  # Ray may have been started early, while the jobs were being checked
            from mlp.sweep import ray_session

            ray_session.disconnect()
