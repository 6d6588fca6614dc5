"""Experiment tracking of sweeps: MLflow (`+tracking=mlflow`) and TensorBoard
(`+tracking=tensorboard`), as Hydra callbacks on the driver.

Jobs run in Ray workers without Hydra; the driver calls each callback's on_job_end as a job
lands, and a tracker takes everything from the JobReturn it gets there (mlp.tracking.jobs), so
workers need no access to the tracking server and no job folder is needed. Logging runs on one
background thread of the driver.
"""

from __future__ import annotations

from hydra.utils import instantiate

from mlp.errors import UserError

TARGET_PREFIX = "mlp.tracking."


def check_trackers(primary) -> None:
    """Before anything starts: every tracking callback in hydra.callbacks has its package and
    reaches its store (one short probe); raises UserError naming what is wrong."""
    callbacks = primary.hydra.get("callbacks") or {}
    for name, spec in callbacks.items():
        if str(spec.get("_target_", "")).startswith(TARGET_PREFIX):
            try:
                tracker = instantiate(spec)
            except Exception as exc:  # noqa: BLE001  (any bad argument: one line)
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise UserError(f"hydra.callbacks.{name}: {first}") from None
            tracker.check()
