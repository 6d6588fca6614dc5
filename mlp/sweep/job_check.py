"""One job composed and checked as the sweep will run it: the launcher checks every job this
way, and preflight checks one job per swept value before Ray starts, so a bad value costs one
line and no Ray start-up."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mlp.cli import compose_error
from mlp.errors import UserError
from mlp.sweep import bundling, chunking
from mlp.validate import check_config

JOB_FILES = ("auto", "all", "failed", "none")


class AttrView(dict):
    """Attribute access on a plain nested dict, for check_config (no OmegaConf copy per job)."""

    def __getattr__(self, key):
        try:
            value = self[key]
        except KeyError:
            raise AttributeError(key) from None
        return AttrView(value) if isinstance(value, dict) else value

    def __getitem__(self, key):
        value = dict.__getitem__(self, key)
        return (
            AttrView(value)
            if isinstance(value, dict) and not isinstance(value, AttrView)
            else value
        )


@contextmanager
def compose_errors_in_one_line() -> Iterator[None]:
    """Any error of composing a config inside the block becomes one UserError line."""
    try:
        yield
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001  (Hydra's and OmegaConf's many error types)
        raise UserError(compose_error(exc)) from None


def check_job(plain: dict, num: int, overrides: list[str], cpus_per_job: int) -> None:
    """The job's checks, with its BLAS threads set as its task will run it (cpus_per_job)."""
    plain.setdefault("train", {})["blas_threads"] = int(cpus_per_job)
    try:
        check_config(AttrView(plain))
    except UserError as exc:
        raise UserError(f"{exc} (job {num}: {' '.join(overrides)})") from None


def check_sweep_settings(settings) -> None:
    """Every `sweep.*` setting the runner reads, checked before anything starts."""
    _check_runner_settings(settings)
    bundling.check_settings(settings)
    chunking.check_settings(settings)


def _check_runner_settings(settings) -> None:
    cpus, retries = settings.cpus_per_job, settings.max_retries
    if not isinstance(cpus, int) or isinstance(cpus, bool) or cpus < 1:
        raise UserError(
            f"sweep.cpus_per_job={cpus!r} must be a whole number ≥ 1 (it is also the job's BLAS threads)"
        )
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise UserError(f"sweep.max_retries={retries!r} must be a whole number ≥ 0")
    for key in ("max_failures", "max_in_flight"):
        value = settings.get(key)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise UserError(f"sweep.{key}={value!r} must be a whole number ≥ 1 or null")
    if settings.get("job_files", "auto") not in JOB_FILES:
        raise UserError(
            f"sweep.job_files={settings.get('job_files')!r} is not allowed "
            f"(allowed: {', '.join(JOB_FILES)})"
        )
    for key in ("store_flush_rows", "job_files_auto_max"):
        value = settings.get(key, 1)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UserError(f"sweep.{key}={value!r} must be a whole number ≥ 1")
    flush_s = settings.get("store_flush_s", 1)
    if not isinstance(flush_s, (int, float)) or isinstance(flush_s, bool) or not flush_s > 0:
        raise UserError(f"sweep.store_flush_s={flush_s!r} must be a number > 0")
