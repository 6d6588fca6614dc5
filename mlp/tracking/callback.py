"""The common part of the trackers: a Hydra callback that checks its package and store when the
sweep starts, and logs each finished job on one background thread of the driver, so neither the
tracker's import (MLflow: ~2 s) nor its I/O holds up the driver loop; the thread runs niced, so
its CPU time comes mostly from moments a core is idle (docs/tracking.md#cost).

A job is built from what on_job_end receives (mlp.tracking.jobs.finished_job), never read back
from its folder. Above `max_job_runs` jobs a tracker logs no per-job runs, only the sweep's own
(log_sweep_job is called for every job either way). Cached (resumed) jobs get no on_job_end,
so they are never logged twice. A tracker that fails mid-sweep stops with one warning line;
the sweep and its results go on unaffected.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import queue
import sys
import threading
import time
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

from mlp.atomic import write_json_atomic
from mlp.errors import UserError
from mlp.tracking.jobs import FinishedJob, finished_job

INSTALL_HINT = "pip install -e '.[tracking]'"
# The tracking thread runs this much nicer than the driver (Linux: per thread), so its CPU comes
# from the cores' idle moments (Ray's start-up, a stage's or the sweep's tail) before the jobs'
THREAD_NICE = 10


def require_package(module: str, override: str) -> None:
    """One line naming the override and how to install what it needs."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or the module blocked
        found = False
    if not found:
        raise UserError(
            f"{override} needs the '{module}' package, which is not installed: {INSTALL_HINT}"
        )


class Background:
    """One daemon thread running submitted calls in order; the first failure stops the rest."""

    def __init__(self, label: str):
        self.label, self.failed = label, False
        # per kind of call: seconds on the thread's clock and of its CPU (the overhead figures)
        self.busy_s: dict[str, float] = {}
        self.cpu_s: dict[str, float] = {}
        self.calls: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, name=f"{label}-tracking", daemon=True)
        self.thread.start()

    def submit(self, fn, *args) -> None:
        self.calls.put((fn, args))

    def close(self) -> None:
        self.calls.put(None)
        self.thread.join()

    def _run(self) -> None:
        if sys.platform.startswith("linux"):  # elsewhere a thread id is not a PRIO_PROCESS id
            tid = threading.get_native_id()
            try:
                os.setpriority(
                    os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + THREAD_NICE
                )
            except OSError:
                pass
        while (item := self.calls.get()) is not None:
            if self.failed:
                continue
            fn, args = item
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                fn(*args)
                name = fn.__name__
                self.busy_s[name] = self.busy_s.get(name, 0.0) + time.perf_counter() - t0
                self.cpu_s[name] = self.cpu_s.get(name, 0.0) + time.thread_time() - c0
            except Exception as exc:  # noqa: BLE001  (the sweep must not fail because its tracker did)
                self.failed = True
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
                print(
                    f"warning: {self.label} tracking stopped: {type(exc).__name__}: {first} "
                    f"(the sweep's own results are unaffected)",
                    file=sys.stderr,
                    flush=True,
                )


def check_max_job_runs(value, override: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        name = override.split("=")[-1]
        raise UserError(
            f"hydra.callbacks.{name}.max_job_runs={value!r} must be a whole number ≥ 0 or null"
        )
    return value


class TrackingCallback(Callback):
    """Subclasses set `override` and `module` and implement check(), setup(), log_job(job),
    log_sweep_job(job) and finish(status)."""

    override = ""
    module = ""

    def __init__(self, max_job_runs: int | None = 1000) -> None:
        self.max_job_runs = max_job_runs
        self.worker: Background | None = None
        self.failures = self.landed = self.logged = 0  # failed, finished, logged as a job run
        self.ended = False
        self.sweep_dir: Path | None = None  # from the sweep's config (hydra.sweep.dir)
        self.plan: list | None = None  # mlp.sweep.plan.sweep_plan: [(stage, jobs), ...] or None
        self.planned: int | None = None  # the sweep's jobs, cached ones included (None: unknown)
        self.fixed: dict[str, str] = {}  # the command line's fixed overrides
        self.swept: dict[str, str] = {}  # ... and its sweeps, as written
        self.job_runs = True  # False: no per-job runs (too many jobs), only the sweep's

    # ---- what a tracker implements (setup, log_* and finish run on the worker thread) ----
    def check(self) -> None:
        require_package(self.module, self.override)
        check_max_job_runs(self.max_job_runs, self.override)

    def setup(self) -> None:
        """Import the tracker's package and open its store."""

    def log_job(self, job: FinishedJob) -> None:
        """One job's own run (only while job runs are on)."""
        raise NotImplementedError

    def log_sweep_job(self, job: FinishedJob) -> None:
        """Every finished job, per-job runs or not (the sweep-level record)."""

    def finish(self, status: str) -> None:
        """status: FINISHED, FAILED (some job failed) or KILLED (the sweep stopped early)."""

    # ---- Hydra's callbacks, on the driver ------------------------------------------------
    def on_run_start(self, config, **kwargs) -> None:
        print(
            f"warning: {self.override} tracks sweeps (runners/sweep.py); this single run is not tracked",
            file=sys.stderr,
        )

    def on_multirun_start(self, config, **kwargs) -> None:
        from mlp.sweep.plan import sweep_plan, task_overrides, total_jobs

        try:
            self.check()  # runners/sweep.py checked this already (preflight); other entry points not
        except UserError as exc:
            from mlp.cli import fail

            fail(str(exc))
        try:  # the driver's own rule (mlp.sweep.launch.SweepRunner): relative to the launch folder
            self.sweep_dir = (Path.cwd() / str(config.hydra.sweep.dir)).resolve()
        except Exception:  # noqa: BLE001  (then from the first job)
            self.sweep_dir = None
        self.plan = sweep_plan(config)
        self.planned = total_jobs(self.plan)
        self.fixed, self.swept = task_overrides(config)
        limit = self.max_job_runs
        self.job_runs = limit is None or self.planned is None or self.planned <= limit
        self.worker = Background(self.override.split("=")[-1])
        self.worker.submit(self.setup)
        atexit.register(self._close, None)  # a sweep with failures exits before on_multirun_end

    def on_job_end(self, config, job_return, **kwargs) -> None:
        if self.worker is None:
            return
        self.landed += 1
        self.failures += job_return.status.name != "COMPLETED"
        job_run = self.job_runs and (self.max_job_runs is None or self.landed <= self.max_job_runs)
        if self.job_runs and not job_run:  # the size was not known up front: switch off now
            self.job_runs = False
            print(
                f"note: {self.override}: more than max_job_runs={self.max_job_runs} jobs "
                f"finished; the rest get no per-job runs, only the sweep's",
                file=sys.stderr,
                flush=True,
            )
        num = OmegaConf.select(config, "hydra.job.num", default=None)  # the config is not kept
        self.worker.submit(self._log, job_return, num, time.time(), job_run)

    def on_multirun_end(self, config, **kwargs) -> None:
        self._close("FAILED" if self.failures else "FINISHED")

    def _log(self, job_return, num: int | None, ended_at: float, job_run: bool) -> None:
        job = finished_job(job_return, num, ended_at, self.sweep_dir, self.plan)
        self.sweep_dir = self.sweep_dir or job.sweep_dir
        self.log_sweep_job(job)
        if job_run:
            self.log_job(job)
            self.logged += 1

    def _close(self, status: str | None) -> None:
        if self.worker is None or self.ended:
            return
        self.ended = True
        if status is None:  # reached through atexit: the sweep ended early
            status = "FAILED" if self.failures else "KILLED"
        self.worker.submit(self.finish, status)
        t0 = time.perf_counter()
        self.worker.close()
        if self.landed and self.sweep_dir is not None:
            # what tracking cost this sweep: <sweep dir>/tracking_<name>.json
            busy, cpu = self.worker.busy_s, self.worker.cpu_s
            write_json_atomic(
                self.sweep_dir / f"tracking_{self.worker.label}.json",
                {
                    "tracker": self.worker.label,
                    "jobs_planned": self.planned,
                    "jobs_finished": self.landed,
                    "jobs_logged": self.logged,
                    "max_job_runs": self.max_job_runs,
                    "failed": self.worker.failed,
                    "setup_s": busy.get("setup", 0.0),
                    "log_s": busy.get("_log", 0.0),
                    "finish_s": busy.get("finish", 0.0),
                    "wait_at_end_s": time.perf_counter() - t0,
                    "log_ms_per_job": 1000 * busy.get("_log", 0.0) / max(1, self.landed),
                    "cpu_s": sum(cpu.values()),
                    "log_cpu_ms_per_job": 1000 * cpu.get("_log", 0.0) / max(1, self.landed),
                },
            )
