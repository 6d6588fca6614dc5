"""The driver side of a sweep: compose and check every job, skip stored ones, fan the rest out
as Ray tasks, and write each result on the driver the moment it comes back.

Everything a job returns travels back through Ray, so results land on the driver even when
the worker nodes share no disk with it; results.csv and result.json are written atomically
after each job, so an interrupted sweep keeps every finished job.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf, open_dict

import mlp.sweep as sweep_pkg
from mlp.cli import absolutize_paths, compose_error, write_json_atomic
from mlp.errors import UserError
from mlp.sweep import bundling, ray_session
from mlp.sweep.data_ship import DataShipper, size_object_store
from mlp.sweep.job_folder import write_job_folder
from mlp.sweep.ray_options import remote_options
from mlp.sweep.progress import Progress
from mlp.sweep.results import make_row, write_csv_atomic
from mlp.sweep.store import ResultStore, config_hash, scan_sweep_dir
from mlp.validate import check_config


class JobFailed(Exception):
    """The exception a failed job's JobReturn carries (the job raised, or its worker died for good)."""


@dataclass
class Job:
    num: int
    overrides: list[str]
    cfg: dict                      # resolved, plain data: what the Ray task receives
    composed: DictConfig           # the whole job config, hydra node included (callbacks, JobReturn)
    key: str                       # config hash
    subdir: str
    stage: str | None = None
    swept: dict = field(default_factory=dict)


def check_settings(settings) -> None:
    cpus, retries = settings.cpus_per_job, settings.max_retries
    if not isinstance(cpus, int) or isinstance(cpus, bool) or cpus < 1:
        raise UserError(f"sweep.cpus_per_job={cpus!r} must be a whole number ≥ 1 (it is also the job's BLAS threads)")
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise UserError(f"sweep.max_retries={retries!r} must be a whole number ≥ 0")
    bundling.check_settings(settings)


class SweepRunner:
    """One per sweep; launch() may be called several times (a search's stages)."""

    def __init__(self, master: DictConfig, config_loader, callbacks=None, task_function=None):
        self.master, self.loader = master, config_loader
        self.callbacks, self.task_function = callbacks, task_function
        self.settings = master.sweep
        check_settings(self.settings)
        size_object_store(master)
        self.shipper = DataShipper(self.settings.data)
        remote_options(self.settings)  # bad keys: one line before Ray starts
        self.cwd = Path.cwd()
        self.sweep_dir = (self.cwd / str(master.hydra.sweep.dir)).resolve()
        self.store = ResultStore((self.cwd / str(self.settings.store)).expanduser().resolve())
        self.rows: dict[int, dict] = {}
        self.swept_keys: list[str] = []
        self.failures: list[dict] = []
        self.counts = {"jobs": 0, "ran": 0, "cached": 0, "failed": 0}
        self.ray_info: dict | None = None
        self.first_task_started_at: float | None = None
        self.task_walls: list[float] = []

    # ---- composing ------------------------------------------------------------------
    def prepare(self, num: int, overrides: list[str], stage: str | None) -> Job:
        try:
            cfg = self.loader.load_sweep_config(self.master, list(overrides))
        except Exception as exc:
            raise UserError(compose_error(exc)) from None
        with open_dict(cfg):
            cfg.hydra.job.num = num
            cfg.hydra.job.id = str(num)
        HydraConfig.instance().set_config(cfg)
        subdir = str(cfg.hydra.sweep.subdir)
        task_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg.keys() if k != "hydra"])
        absolutize_paths(task_cfg, self.cwd)
        with open_dict(task_cfg):
            task_cfg.train.blas_threads = int(self.settings.cpus_per_job)  # BLAS threads = the task's CPUs
        try:
            check_config(task_cfg)
        except UserError as exc:
            raise UserError(f"{exc} (job {num}: {' '.join(overrides)})") from None
        plain = cast(dict, OmegaConf.to_container(task_cfg, resolve=True))
        return Job(num, list(overrides), plain, cfg, config_hash(plain), subdir, stage)

    def _note_swept(self, jobs: list[Job]) -> None:
        values: dict[str, set] = {}
        for job in jobs:
            for ov in job.overrides:
                key, _, value = ov.partition("=")
                values.setdefault(key.lstrip("+~"), set()).add(value)
        for key, vals in values.items():
            if len(vals) > 1 and key not in self.swept_keys:
                self.swept_keys.append(key)
        for job in jobs:
            parsed = dict(ov.partition("=")[::2] for ov in job.overrides)
            job.swept = {k: parsed.get(k, parsed.get("+" + k, "")) for k in self.swept_keys}

    # ---- running --------------------------------------------------------------------
    def launch(self, job_overrides, initial_job_idx: int, stage: str | None = None) -> list[JobReturn]:
        jobs = [self.prepare(initial_job_idx + i, ov, stage) for i, ov in enumerate(job_overrides)]
        self._note_swept(jobs)
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        force = bool(self.settings.force)
        known = {} if force else scan_sweep_dir(self.sweep_dir)
        progress = Progress(len(jobs), bool(self.settings.progress), label=stage or "sweep")
        returns: dict[int, JobReturn] = {}
        todo = []
        for job in jobs:
            cached = None if force else (known.get(job.key) or self.store.get(job.key))
            if cached is not None:
                returns[job.num] = self._record(job, cached, "cached")
                progress.done += 1
                progress.cached += 1
            else:
                todo.append(job)
        self.counts["jobs"] += len(jobs)
        self.counts["cached"] += len(jobs) - len(todo)
        self._write_csv()
        try:
            if todo:
                self.shipper.preload([job.cfg for job in todo])  # bad data: error before any job
                self._ensure_ray()
                progress.show(force=True)
                self._run(todo, progress, returns)
            else:
                progress.show(force=True)
        finally:
            progress.close()
        return [returns[job.num] for job in jobs]

    def _ensure_ray(self) -> None:
        if self.ray_info is None:
            self.ray_info = ray_session.connect(self.settings.ray)
            self.ray_info["ready_at"] = time.time()

    def _run(self, todo: list[Job], progress: Progress, returns: dict) -> None:
        import ray
        from ray.exceptions import RayError

        from mlp.sweep.bundle_task import mlp_sweep_bundle
        from mlp.sweep.task import mlp_sweep_job

        cpus = float(self.settings.cpus_per_job)
        options = dict(num_cpus=cpus, max_retries=int(self.settings.max_retries),
                       retry_exceptions=False, **remote_options(self.settings))
        remote = ray.remote(mlp_sweep_job).options(**options)
        remote_bundle = ray.remote(mlp_sweep_bundle).options(**options)
        slots = max(1, int(ray_session.cluster_cpus() // cpus))
        pending = {}
        # A unit of submission is a list of jobs: one job runs as mlp_sweep_job, several (differing
        # only in λ) as one bundle task returning one result per job (mlp/sweep/bundling.py).
        for unit in bundling.plan_units(todo, lambda job: job.cfg, self.settings, slots):
            for job in unit:
                self._callback("on_job_start", job, task_function=self.task_function)
            ref = (remote.remote(*self.shipper.task_args(unit[0].cfg)) if len(unit) == 1
                   else remote_bundle.remote([j.cfg for j in unit]))
            pending[ref] = unit
        progress.running = min(len(pending), slots)
        progress.show()
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in ready:
                unit = pending.pop(ref)
                try:
                    value = ray.get(ref)
                    results = value if len(unit) > 1 else [value]
                except RayError as exc:  # the worker died more than max_retries times, or similar
                    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                    error = f"{type(exc).__name__}: {first}"
                    results = [bundling.failed_result(job.cfg, error) for job in unit]
                for job, result in zip(unit, results):
                    status = "ok" if result.get("status") == "ok" else "failed"
                    returns[job.num] = self._record(job, result, status)
                    self._callback("on_job_end", job, job_return=returns[job.num])
                    self.counts["ran"] += 1
                    if status == "ok":
                        progress.done += 1
                    else:
                        progress.failed += 1
                        self.counts["failed"] += 1
            progress.running = min(len(pending), slots)
            progress.show()

    def _callback(self, event: str, job: Job, **kwargs) -> None:
        """Hydra's per-job callbacks (hydra.callbacks), called on the driver: the job itself runs
        in a Ray worker without Hydra, and its JobReturn exists only here. Cached jobs run no
        job, so they get none."""
        if self.callbacks is None:
            return
        HydraConfig.instance().set_config(job.composed)
        getattr(self.callbacks, event)(config=job.composed, **kwargs)

    def _record(self, job: Job, result: dict, status: str) -> JobReturn:
        """Write the job's files (result.json or failed.json, results.csv) and build its JobReturn."""
        result = dict(result)
        job_dir = self.sweep_dir / job.subdir
        write_job_folder(job_dir, job.composed, result.pop("log", None))  # .hydra/*.yaml, job.log
        result.update(config_hash=job.key, sweep_job={"num": job.num, "overrides": job.overrides,
                                                     "stage": job.stage, "sweep_dir": str(self.sweep_dir)})
        if "task_started_at" in result and status != "cached":
            started = result["task_started_at"]
            self.first_task_started_at = min(started, self.first_task_started_at or started)
            self.task_walls.append(result.get("task_wall_s", 0.0))
        if status == "failed":
            result["status"] = "failed"
            write_json_atomic(job_dir / "failed.json", result)
            what = [f"{k}={v}" for k, v in job.swept.items()] or job.overrides
            self.failures.append({"job": job.num, "swept": what, "overrides": job.overrides,
                                  "error": result.get("error", "")})
        else:
            result["status"] = status
            if status == "ok":
                self.store.put(job.key, result)
                (job_dir / "failed.json").unlink(missing_ok=True)
            existing = job_dir / "result.json"
            if not (status == "cached" and _same_hash(existing, job.key)):
                write_json_atomic(existing, result)
        self.rows[job.num] = make_row(job, result, status)
        self._write_csv()
        ret = JobReturn(overrides=job.overrides, working_dir=str(job_dir), task_name="mlp_sweep_job",
                        status=JobStatus.FAILED if status == "failed" else JobStatus.COMPLETED)
        ret.cfg = OmegaConf.create(job.cfg)   # the resolved config the task ran
        ret.hydra_cfg = OmegaConf.create({"hydra": job.composed.hydra})
        ret.return_value = JobFailed(result.get("error", "failed")) if status == "failed" else result
        return ret

    def _write_csv(self) -> None:
        if self.rows:
            write_csv_atomic(self.sweep_dir / "results.csv", list(self.rows.values()), self.swept_keys)

    # ---- ending ---------------------------------------------------------------------
    def finish(self, extra: dict | None = None) -> int:
        """Summary (sweep.json + one line), failures listed, Ray shut down; returns the exit code."""
        finished_at = time.time()
        info = self.ray_info or {}
        summary = {**self.counts, "sweep_dir": str(self.sweep_dir), "started_at": sweep_pkg.STARTED_AT,
                   "finished_at": finished_at, "wall_s": finished_at - sweep_pkg.STARTED_AT,
                   "ray_address": info.get("address"), "ray_start_s": info.get("start_s"),
                   "ray_start_began_after_s": (info["began_at"] - sweep_pkg.STARTED_AT if "began_at" in info else None),
                   "ray_ready_to_first_job_s": (self.first_task_started_at - info["began_at"] - info["start_s"]
                                                if self.first_task_started_at and "began_at" in info else None),
                   "first_task_started_at": self.first_task_started_at,
                   "startup_to_first_job_s": (self.first_task_started_at - sweep_pkg.STARTED_AT
                                              if self.first_task_started_at else None),
                   "cpus_per_job": self.settings.cpus_per_job, "failures": self.failures, **(extra or {})}
        t0 = time.perf_counter()
        ray_session.disconnect()
        summary["ray_shutdown_s"] = time.perf_counter() - t0
        write_json_atomic(self.sweep_dir / "sweep.json", summary)
        print(f"{self.counts['jobs']} jobs: {self.counts['ran'] - self.counts['failed']} ran, "
              f"{self.counts['cached']} cached (already stored), {self.counts['failed']} failed "
              f"-> {self.sweep_dir / 'results.csv'}", flush=True)
        if self.failures:
            print(f"error: {len(self.failures)} job(s) failed:", file=sys.stderr)
            for f in self.failures:
                print(f"  job {f['job']} ({' '.join(f['swept'])}): {f['error']}", file=sys.stderr)
            return 1
        return 0


def _same_hash(path: Path, key: str) -> bool:
    try:
        return json.loads(path.read_text()).get("config_hash") == key
    except (OSError, ValueError):
        return False
