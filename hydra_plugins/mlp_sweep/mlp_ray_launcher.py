"""Hydra Launcher `mlp_ray`: every job a Ray task, results written on the driver, resumable.

The work lives in mlp.sweep.launch.SweepRunner; this class is only Hydra's entry point.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class MlpRayLauncherConf:
    _target_: str = "hydra_plugins.mlp_sweep.mlp_ray_launcher.MlpRayLauncher"


ConfigStore.instance().store(
    group="hydra/launcher", name="mlp_ray", node=MlpRayLauncherConf, provider="mlp-study"
)


class MlpRayLauncher(Launcher):
    def __init__(self) -> None:
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None
        self.runner = None
        self.stage: str | None = None  # set by the sweeper for a search's stages

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def get_runner(self):
        if self.runner is None:
            from mlp.sweep.launch import SweepRunner

            self.runner = SweepRunner(
                self.config,
                self.hydra_context.config_loader,
                callbacks=self.hydra_context.callbacks,
                task_function=self.task_function,
            )
        return self.runner

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        return self.get_runner().launch(job_overrides, initial_job_idx, self.stage)
