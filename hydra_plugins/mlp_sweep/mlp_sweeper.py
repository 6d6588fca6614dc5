"""Hydra Sweeper `mlp`: Hydra's own sweep syntax (a,b / range / choice / glob, several keys),
or, with a `search` group chosen (`search=lambda`, conf/search/), the study's two-stage λ
search; one exit code at the end.
"""

import sys
from dataclasses import dataclass
from typing import Any

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
        from mlp.atomic import write_json_atomic
        from mlp.cli import fail
        from mlp.errors import UserError
        from mlp.sweep.launch import SweepStopped, terminate_as_interrupt
        from mlp.sweep.plan import searching as is_search

        terminate_as_interrupt()  # SIGTERM ends the sweep like Ctrl-C: results kept, Ray stopped

        try:
            parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
            overrides = parser.parse_overrides(arguments)
            searching = is_search(self.config)
            if self.config.sweep.get("dry_run"):
                self._dry_run(overrides, searching)
                return None
            if searching:
                from mlp.sweep.search import run_search

                outcome = run_search(self.config, overrides, self._launch_stage, self._check_job)
            else:
                from mlp.sweep.grid import grid

                jobs = grid(overrides)
                runner = self.launcher.get_runner()
                runner.launch(jobs, 0, None, len(jobs), jobs.swept_keys, want_returns=False)
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
                f"{outcome['fine_best_metric']:.4f}; chosen λ = {outcome['chosen_lambda']:.6g} "
                f"-> {runner.sweep_dir / 'lambda_search.json'}",
                flush=True,
            )
        if code:
            sys.exit(code)
        return None

    def _dry_run(self, overrides, searching: bool) -> None:
        """sweep.dry_run=true: compose, hash and look up every job; no Ray, no files."""
        from mlp.errors import UserError
        from mlp.sweep.grid import grid

        if searching:
            raise UserError(
                "sweep.dry_run counts a grid's jobs; a search's stages depend on results"
            )
        jobs = grid(overrides)
        runner = self.launcher.get_runner()
        counts = runner.dry_run(iter(jobs), len(jobs))
        print(
            f"dry run: {counts['jobs']} jobs, {counts['stored']} stored, {counts['to_run']} to run "
            f"(store {runner.store.root})",
            flush=True,
        )

    def _check_job(self, job_overrides) -> None:
        """Compose and check one job as the launcher would (a UserError names it)."""
        prepare = getattr(self.launcher.get_runner(), "prepare", None)
        if prepare is not None:
            prepare(0, list(job_overrides), None)

    def _launch_stage(self, batch, initial_job_idx: int, stage):
        self.launcher.stage = stage
        return self.launcher.launch(batch, initial_job_idx=initial_job_idx)

    def _finish_quietly(self) -> None:
        runner = self.launcher.runner if self.launcher is not None else None
        if runner is not None and (runner.table.count or runner.ray_info):
            runner.finish()
        else:  # Ray may have been started early, while the jobs were being checked
            from mlp.sweep import ray_session

            ray_session.disconnect()
