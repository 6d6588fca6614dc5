"""The common part of the trackers: a Hydra callback that checks its package and store when the
sweep starts, and logs each finished job on one background thread of the driver, so neither the
tracker's import (MLflow: ~2 s) nor its I/O holds up the driver loop.

Cached (resumed) jobs get no on_job_end, so they are never logged twice. A tracker that fails
mid-sweep stops with one warning line; the sweep and its results go on unaffected.
"""

from __future__ import annotations

import atexit
import importlib.util
import queue
import sys
import threading
import time
from pathlib import Path

from hydra.experimental.callback import Callback

from mlp.atomic import write_json_atomic
from mlp.errors import UserError
from mlp.tracking.jobs import FinishedJob, read_finished_job

INSTALL_HINT = "pip install -e '.[tracking]'"


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
        self.busy_s: dict[str, float] = {}  # seconds spent per kind of call (the overhead figures)
        self.calls: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, name=f"{label}-tracking", daemon=True)
        self.thread.start()

    def submit(self, fn, *args) -> None:
        self.calls.put((fn, args))

    def close(self) -> None:
        self.calls.put(None)
        self.thread.join()

    def _run(self) -> None:
        while (item := self.calls.get()) is not None:
            if self.failed:
                continue
            fn, args = item
            t0 = time.perf_counter()
            try:
                fn(*args)
                self.busy_s[fn.__name__] = (
                    self.busy_s.get(fn.__name__, 0.0) + time.perf_counter() - t0
                )
            except Exception as exc:  # noqa: BLE001  (the sweep must not fail because its tracker did)
                self.failed = True
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
                print(
                    f"warning: {self.label} tracking stopped: {type(exc).__name__}: {first} "
                    f"(the sweep's own results are unaffected)",
                    file=sys.stderr,
                    flush=True,
                )


class TrackingCallback(Callback):
    """Subclasses set `override` and `module` and implement check(), setup(), log_job(job), finish(status)."""

    override = ""
    module = ""

    def __init__(self) -> None:
        self.worker: Background | None = None
        self.failures = self.logged = 0
        self.ended = False
        self.sweep_dir: Path | None = None

    # ---- what a tracker implements (setup, log_job and finish run on the worker thread) ----
    def check(self) -> None:
        require_package(self.module, self.override)

    def setup(self) -> None:
        """Import the tracker's package and open its store."""

    def log_job(self, job: FinishedJob) -> None:
        raise NotImplementedError

    def finish(self, status: str) -> None:
        """status: FINISHED, FAILED (some job failed) or KILLED (the sweep stopped early)."""

    # ---- Hydra's callbacks, on the driver ------------------------------------------------
    def on_run_start(self, config, **kwargs) -> None:
        print(
            f"warning: {self.override} tracks sweeps (runners/sweep.py); this single run is not tracked",
            file=sys.stderr,
        )

    def on_multirun_start(self, config, **kwargs) -> None:
        try:
            self.check()  # runners/sweep.py checked this already (preflight); other entry points not
        except UserError as exc:
            from mlp.cli import fail

            fail(str(exc))
        self.worker = Background(self.override.split("=")[-1])
        self.worker.submit(self.setup)
        atexit.register(self._close, None)  # a sweep with failures exits before on_multirun_end

    def on_job_end(self, config, job_return, **kwargs) -> None:
        if self.worker is None:
            return
        self.failures += job_return.status.name != "COMPLETED"
        self.worker.submit(self._log, job_return)

    def on_multirun_end(self, config, **kwargs) -> None:
        self._close("FAILED" if self.failures else "FINISHED")

    def _log(self, job_return) -> None:
        job = read_finished_job(job_return)  # reading the folder off the driver loop too
        self.sweep_dir = self.sweep_dir or job.sweep_dir
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
        if (
            self.sweep_dir is not None
        ):  # what tracking cost this sweep: <sweep dir>/tracking_<name>.json
            busy = self.worker.busy_s
            write_json_atomic(
                self.sweep_dir / f"tracking_{self.worker.label}.json",
                {
                    "tracker": self.worker.label,
                    "jobs_logged": self.logged,
                    "failed": self.worker.failed,
                    "setup_s": busy.get("setup", 0.0),
                    "log_s": busy.get("_log", 0.0),
                    "finish_s": busy.get("finish", 0.0),
                    "wait_at_end_s": time.perf_counter() - t0,
                    "log_ms_per_job": 1000 * busy.get("_log", 0.0) / max(1, self.logged),
                },
            )
