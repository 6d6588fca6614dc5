"""The driver side of a sweep: compose each job cheaply (mlp.sweep.compose), skip stored ones,
stream the rest to Ray through a bounded window of tasks in flight, and write each result on
the driver the moment it comes back.

Per job the driver does a constant amount of work (~1 ms: apply the job's value overrides to
its template, check, hash, submit; on return two small atomic JSON writes and one appended CSV
line), so the first task starts as soon as Ray is up and memory stays flat at any sweep size.
Results travel back through Ray, so they land on the driver even when worker nodes share no
disk with it. docs/sweep-scale.md describes the loop and its figures.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf

from mlp.atomic import write_json_atomic
from mlp.data.fingerprint import content_fingerprint
from mlp.errors import UserError
from mlp.result_schema import config_hash
from mlp.sweep import bundling, chunking, ray_session
from mlp.sweep.compose import JobComposer
from mlp.sweep.data_ship import DataShipper, data_key, size_object_store
from mlp.sweep.job_check import check_job, check_sweep_settings, compose_errors_in_one_line
from mlp.sweep.job_folder import write_job_folder
from mlp.sweep.progress import Progress
from mlp.sweep.ray_options import remote_options
from mlp.sweep.results import SweepTable
from mlp.sweep.rung_state import RungStates, rung_keys
from mlp.sweep.store import ResultStore

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class JobFailed(Exception):
    """The exception a failed job's JobReturn carries (the job raised, or its worker died for
    good); .result: the failed result (error, timings, where it ran; no traceback, log or config)."""

    def __init__(self, error: str, result: dict | None = None):
        super().__init__(error)
        self.result = result or {}


class SweepStopped(Exception):
    """sweep.max_failures was reached: no new job is launched; finished results are kept."""


@dataclass
class Job:
    num: int
    overrides: list[str]
    cfg: dict  # resolved, plain data: what the Ray task receives
    key: str  # config hash
    subdir: str
    stage: str | None = None
    swept: dict = field(default_factory=dict)
    composed: DictConfig | None = None  # the whole job config, only kept for Hydra callbacks
    state_in: str | None = None  # a rung job (train.rung): the key of the state it starts from
    state_out: str | None = None  # ... and of the state it ends with (mlp.sweep.rung_state)
    state: dict | None = None  # the loaded start state, kept until the job's result is recorded


def first_line(text: str, fallback: str = "") -> str:
    """The first non-empty line of an error message, without terminal colour codes."""
    lines = [ln.strip() for ln in ANSI.sub("", str(text)).splitlines() if ln.strip()]
    return lines[0] if lines else fallback


IMPORT_FAILURE = "the worker cannot import the project"


def describe_ray_error(exc: BaseException) -> str:
    """One line for a task that raised inside Ray (job errors come back as data instead).

    A RayTaskError's text starts with Ray's `ray::f() (pid=…)` header and holds the worker's
    traceback; the line that says why is the exception raised in the worker (its `cause`), or,
    when the worker could not even unpickle the task, the import error at the traceback's end."""
    from ray.exceptions import RayTaskError

    if not isinstance(exc, RayTaskError):
        return f"{type(exc).__name__}: {first_line(str(exc), type(exc).__name__)}"
    cause = getattr(exc, "cause", None)
    text = ANSI.sub("", f"{cause if cause is not None else ''}\n{exc}")
    raised = [
        ln.strip()
        for ln in text.splitlines()
        if re.match(r"^\s*[A-Za-z_][\w.]*(Error|Exception): ", ln)
    ]
    if "failed to import on the worker" in text or any("No module named" in ln for ln in raised):
        why = next(
            (ln for ln in reversed(raised) if "Import" in ln or "No module" in ln),
            raised[-1] if raised else "",
        )
        return (
            f"{IMPORT_FAILURE} ({why}); install mlp-study in the Python environment of every "
            f"node, or ship it with sweep.ray.working_dir"
        )
    if cause is not None and not isinstance(cause, RayTaskError):
        return f"{type(cause).__name__}: {first_line(str(cause), type(cause).__name__)}"
    return raised[-1] if raised else first_line(str(exc), type(exc).__name__)


class SweepRunner:
    """One per sweep; launch() may be called several times (a search's stages)."""

    def __init__(self, master: DictConfig, config_loader, callbacks=None, task_function=None):
        self.master, self.loader = master, config_loader
        self.task_function = task_function
        # Hydra's per-job callbacks run on the driver; without any, no job keeps a DictConfig
        self.callbacks = callbacks if master.hydra.get("callbacks") else None
        self.settings = master.sweep
        check_sweep_settings(self.settings)
        size_object_store(master)
        self.shipper = DataShipper(self.settings.data)
        remote_options(self.settings)  # bad keys: one line before Ray starts
        self.cwd = Path.cwd()
        self.sweep_dir = (self.cwd / str(master.hydra.sweep.dir)).resolve()
        self.store = ResultStore(
            (self.cwd / str(self.settings.store)).expanduser().resolve(),
            flush_rows=int(self.settings.get("store_flush_rows", 500)),
            flush_s=float(self.settings.get("store_flush_s", 5.0)),
        )
        self.stored: set[str] | None = None  # hashes with an ok result, loaded at the first launch
        self.rung_states = RungStates(self.store.root)
        self.composer = JobComposer(master, config_loader)
        self.table = SweepTable(self.sweep_dir)
        self.fingerprints: dict[str, str | None] = {}
        self.swept_keys: list[str] = []
        self.failures: list[dict] = []
        self.counts = {"jobs": 0, "ran": 0, "cached": 0, "failed": 0}
        self.ray_info: dict | None = None
        self.first_task_started_at: float | None = None
        self.task_wall_sum = 0.0
        self.stopped: str | None = None
        self._remote: tuple[float, Any] | None = None  # (CPUs per task, remote function)
        self.task_cpus = float(self.settings.cpus_per_job)  # per task: bundling.shared_cpus

    # ---- composing ------------------------------------------------------------------
    def prepare(self, num: int, overrides: list[str], stage: str | None) -> Job:
        """Compose, check and hash one job (raises UserError naming the job)."""
        snapshot = None
        with compose_errors_in_one_line():
            plain, subdir = self.composer.job(num, overrides)
            if self.callbacks is not None:
                with self.composer.applied(num, overrides) as cfg:
                    snapshot = self.composer.snapshot(cfg)
        data = plain.get("data") or {}
        for key in ("root", "cache_dir"):  # absolute against the launch dir: tasks run elsewhere
            if data.get(key) is not None:
                p = Path(str(data[key])).expanduser()
                data[key] = str(p if p.is_absolute() else (self.cwd / p).resolve())
        check_job(plain, num, overrides, self.settings.cpus_per_job)
        root = data.get("root")
        if root is not None and root not in self.fingerprints:
            self.fingerprints[root] = content_fingerprint(root)
        key = config_hash(plain, self.fingerprints.get(root) if root is not None else None)
        job = Job(num, list(overrides), plain, key, subdir, stage, composed=snapshot)
        job.swept = _swept_values(job.overrides, self.swept_keys)
        if plain["train"].get("rung") is not None:
            fingerprint = self.fingerprints.get(root) if root is not None else None
            job.state_in, job.state_out = rung_keys(plain, fingerprint)
        return job

    def is_stored(self, job: Job, stored: set[str]) -> bool:
        """The job's ok result is stored (and, for a rung job, the state it ended with)."""
        return job.key in stored and (job.state_out is None or self.rung_states.has(job.state_out))

    def load_state(self, job: Job) -> None:
        """A rung job that starts after cycle 0 gets the state it starts from (a task argument)."""
        if job.state_in is not None:
            job.state = self.rung_states.load(
                job.state_in, f"job {job.num} ({' '.join(job.overrides)})"
            )

    def _note_swept(self, job_overrides) -> None:
        """Keys with more than one value among the jobs become results.csv columns."""
        values: dict[str, set] = {}
        for overrides in job_overrides:
            for ov in overrides:
                key, _, value = ov.partition("=")
                values.setdefault(key.lstrip("+~"), set()).add(value)
        for key, vals in values.items():
            if len(vals) > 1 and key not in self.swept_keys:
                self.swept_keys.append(key)

    # ---- running --------------------------------------------------------------------
    def job_files(self, total: int) -> str:
        """What per-job folders this launch writes: all | failed | none (auto: all up to
        sweep.job_files_auto_max jobs, else failed only)."""
        mode = str(self.settings.get("job_files", "auto"))
        if mode == "auto":
            small = total <= int(self.settings.get("job_files_auto_max", 1000))
            return "all" if small else "failed"
        return mode

    def launch(
        self,
        job_overrides,
        initial_job_idx: int,
        stage: str | None = None,
        total: int | None = None,
        swept_keys: list[str] | None = None,
        want_returns: bool = True,
    ) -> list[JobReturn]:
        """Run the jobs (a list, or any iterable with its length in total); JobReturns in job
        order when want_returns, else []. Jobs are composed as they are needed: while Ray starts
        (on its own thread) the driver checks jobs ahead, so in a sweep that fits in the
        start-up time a bad job still stops everything before any job starts. Jobs whose
        result is stored cost no file and no Ray task."""
        if total is None:
            job_overrides = [list(ov) for ov in job_overrides]
            total = len(job_overrides)
        if swept_keys is None:
            self._note_swept(job_overrides)
        else:
            self.swept_keys += [k for k in swept_keys if k not in self.swept_keys]
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        stored = self.stored_index()
        files = self.job_files(total)
        progress = Progress(total, bool(self.settings.progress), label=stage or "sweep")
        returns: dict[int, JobReturn] = {}
        cached_jobs: list[Job] = []  # kept only when their results or folders are wanted
        self.counts["jobs"] += total
        upcoming = iter(enumerate(job_overrides))
        ready: deque[Job] = deque()

        def prepare_next() -> Job | None:
            """The next job that must run (stored ones are recorded on the way)."""
            for i, overrides in upcoming:
                job = self.prepare(initial_job_idx + i, list(overrides), stage)
                if not self.is_stored(job, stored):
                    self.load_state(job)
                    return job
                self.table.add(job, "cached", folder=files == "all")
                if want_returns or files == "all":
                    cached_jobs.append(job)
                self.counts["cached"] += 1
                progress.done += 1
                progress.cached += 1
            return None

        def next_job() -> Job | None:
            return ready.popleft() if ready else prepare_next()

        try:
            first = next_job()
            if first is not None:
                ready.append(first)
                # a missing or corrupt data file: error before any job
                self.shipper.preload([first.cfg])
            if first is not None and self.ray_info is None:
                ray_session.start_early(self.settings.ray)
                while not ray_session.early_ready():  # check ahead while Ray comes up
                    job = prepare_next()
                    if job is None:
                        break
                    ready.append(job)
                self._ensure_ray()
            progress.show(force=True)
            if first is not None:
                self._run(next_job, progress, returns, files, want_returns, total)
        finally:
            progress.close()
        if cached_jobs:
            self._record_cached(cached_jobs, returns, files == "all")
        if not want_returns:
            return []
        return [returns[initial_job_idx + i] for i in range(total)]

    def stored_index(self) -> set[str]:
        """Hashes of the stored ok results a job may be skipped for (none with sweep.force),
        read once per sweep and kept up to date as jobs finish."""
        if self.stored is None:
            self.stored = set() if self.settings.force else self.store.index()
        return self.stored

    def dry_run(self, job_overrides, total: int) -> dict:
        """Compose, hash and look up every job without starting Ray; the counts."""
        stored = self.stored_index()
        counts = {"jobs": 0, "stored": 0, "to_run": 0}
        for i, overrides in enumerate(job_overrides):
            job = self.prepare(i, list(overrides), None)
            counts["jobs"] += 1
            counts["stored" if self.is_stored(job, stored) else "to_run"] += 1
        return counts

    def _record_cached(self, jobs: list[Job], returns: dict, folders: bool) -> None:
        """Stored jobs' JobReturns (and folders, for small sweeps) from one read of the store."""
        stored = self.store.results(job.key for job in jobs)
        for job in jobs:
            result = stored.get(job.key)
            if result is None:  # removed from the store while the sweep ran
                result = bundling.failed_result(job.cfg, "stored result vanished; run again")
            returns[job.num] = self._job_return(job, dict(result), "cached", folders)

    def _ensure_ray(self) -> None:
        if self.ray_info is None:
            self.ray_info = ray_session.connect(self.settings.ray)
            self.ray_info["ready_at"] = time.time()
            self.ray_info["cluster_cpus"] = ray_session.cluster_cpus()

    def in_flight_limit(self) -> int:
        """sweep.max_in_flight, or by default 2 tasks per slot the cluster has plus 4: enough
        queued that no CPU waits on the driver, few enough that driver and object store stay
        small."""
        if self.settings.get("max_in_flight") is not None:
            return int(self.settings.max_in_flight)
        return 2 * self._slots() + 4

    def _slots(self) -> int:
        return max(1, int(ray_session.cluster_cpus() // float(self.settings.cpus_per_job)))

    def _run(
        self, next_job, progress: Progress, returns: dict, files: str, want: bool, total: int
    ) -> None:
        """Keep up to in_flight_limit() chunk tasks running (mlp.sweep.chunking); record each
        unit's results as they come back."""
        limit, slots = self.in_flight_limit(), self._slots()
        max_failures = self.settings.get("max_failures")
        units = bundling.unit_stream(next_job, lambda job: job.cfg, self.settings, slots)
        head = list(itertools.islice(units, 2 * slots))  # fewer: the whole sweep
        self.task_cpus = bundling.shared_cpus(len(head), slots, float(self.settings.cpus_per_job))
        queue = chunking.UnitQueue(  # a chunk's units share its one data argument
            itertools.chain(head, units),
            key=lambda unit: data_key(unit[0].cfg["data"]),
            total_jobs=total,
        )
        flight = chunking.ChunkFlight(
            queue, int(self.settings.max_retries), job_key=lambda job: job.num
        )
        sizer = chunking.ChunkSizer.from_settings(self.settings, slots)
        started: set[int] = set()  # on_job_start once per job, not again when it is resubmitted
        error: UserError | None = None
        while True:
            while error is None and self.stopped is None and len(flight) < limit:
                try:
                    chunk = queue.take(sizer.next_size(queue.remaining()))
                except UserError as exc:  # a bad job later in a large sweep: stop launching
                    error = exc
                    break
                if not chunk:
                    break
                for job in (job for unit in chunk for job in unit if job.num not in started):
                    started.add(job.num)
                    self._callback("on_job_start", job, task_function=self.task_function)
                flight.add(chunk, self.submit(chunk))
            if not len(flight):
                break
            progress.running = min(len(flight), slots)
            progress.show()
            arrivals = flight.wait(timeout=1.0)
            self.store.maybe_flush()
            for arrived in arrivals:
                if arrived.results is not None:
                    sizer.observe_results(arrived.results)
                unit = arrived.unit
                received = self.receive(unit, arrived.results, arrived.error, files)
                for job, ret in zip(unit, received, strict=False):
                    if want:
                        returns[job.num] = ret
                    self._callback("on_job_end", job, job_return=ret)
                    job.composed = None
                    if ret.status == JobStatus.COMPLETED:
                        progress.done += 1
                        continue
                    progress.failed += 1
                    if (
                        max_failures is not None
                        and self.counts["failed"] >= max_failures
                        and self.stopped is None
                    ):
                        self.stopped = (
                            f"stopped launching after {self.counts['failed']} failed jobs "
                            f"(sweep.max_failures={max_failures}); first: "
                            f"{self.failures[0]['error']}"
                        )
        if error is not None:
            raise error
        if self.stopped is not None:
            raise SweepStopped(self.stopped)

    # ---- one unit of work: one job, or a bundle of jobs that differ only in λ (mlp.sweep.bundling)
    def remote_functions(self):
        """The Ray remote function (a chunk of units, mlp.sweep.chunk_task), built once per sweep
        (again only if the CPUs a task asks for change)."""
        if self._remote is None or self._remote[0] != self.task_cpus:
            self._remote = (
                self.task_cpus,
                chunking.chunk_remote(
                    dict(
                        num_cpus=self.task_cpus,  # cpus_per_job, or less: bundling.shared_cpus
                        retry_exceptions=False,
                        **remote_options(self.settings),
                    )
                ),
            )
        return self._remote[1]

    def submit(self, units: list[list[Job]]):
        """Submit units that share one data config as one chunk task (with their data's
        object-store reference unless sweep.data=path); returns its ObjectRefGenerator. The only
        place a task is submitted."""
        cfg, *data = self.shipper.task_args(units[0][0].cfg)
        states = [[job.state for job in unit] for unit in units]
        extra = {"states": states} if any(s is not None for u in states for s in u) else {}
        return self.remote_functions().remote(
            [[job.cfg for job in unit] for unit in units], *data, **extra
        )

    def receive(
        self,
        unit: list[Job],
        results: list[dict] | None,
        error: BaseException | None = None,
        files: str = "all",
    ) -> list[JobReturn]:
        """Record one unit's results as they came back (or, with none, say in one line why:
        error, the RayError that ended the unit for good)."""
        if results is None:  # the task raised inside Ray, or its worker died for good
            why = describe_ray_error(error) if error is not None else "no result"
            results = [bundling.failed_result(job.cfg, why) for job in unit]
        if len(results) != len(unit):  # never expected: record every job as failed, drop none
            why = f"task returned {len(results)} results for {len(unit)} jobs"
            results = [bundling.failed_result(job.cfg, why) for job in unit]
        returns = []
        for job, result in zip(unit, results, strict=False):
            status = "ok" if result.get("status") == "ok" else "failed"
            if status == "failed":
                result["error"] = first_line(result.get("error", ""), "failed")
                if result["error"].startswith(IMPORT_FAILURE) and self.stopped is None:
                    self.stopped = result[
                        "error"
                    ]  # every job would fail the same way: launch no more
            self.counts["ran"] += 1
            self.counts["failed"] += status == "failed"
            returns.append(self._record(job, result, status, files))
        return returns

    def _callback(self, event: str, job: Job, **kwargs) -> None:
        """Hydra's per-job callbacks (hydra.callbacks), called on the driver: the job itself runs
        in a Ray worker without Hydra, and its JobReturn exists only here. Cached jobs run no
        job, so they get none."""
        if self.callbacks is None or job.composed is None:
            return
        HydraConfig.instance().set_config(job.composed)
        getattr(self.callbacks, event)(config=job.composed, **kwargs)

    def _record(self, job: Job, result: dict, status: str, files: str) -> JobReturn:
        """Store a finished job's result (batched), note its row, write its folder if asked. A
        rung job's end state is taken out of the result and saved first (a stored ok rung
        result always has its state)."""
        result = dict(result)
        state = result.pop("state", None)
        job.state = None
        if status == "ok" and job.state_out is not None and state is not None:
            self.rung_states.save(job.state_out, state)
        if "task_started_at" in result:
            started = result["task_started_at"]
            self.first_task_started_at = min(started, self.first_task_started_at or started)
            self.task_wall_sum += result.get("task_wall_s", 0.0)
        info = {
            "sweep": str(self.sweep_dir),
            "job": job.num,
            "stage": job.stage,
            "overrides": job.overrides,
        }
        if status == "failed" and len(self.failures) < MAX_LISTED_FAILURES:
            what = [f"{k}={v}" for k, v in job.swept.items()] or job.overrides
            self.failures.append(
                {
                    "job": job.num,
                    "swept": what,
                    "overrides": job.overrides,
                    "error": result.get("error", ""),
                }
            )
        if status == "ok" and self.stored is not None:
            self.stored.add(job.key)
        self.store.add(job.key, result, status, info)
        folder = files == "all" or (files == "failed" and status == "failed")
        self.table.add(job, status, folder)
        return self._job_return(job, result, status, folder)

    def _job_return(self, job: Job, result: dict, status: str, folder: bool) -> JobReturn:
        """The job's JobReturn for Hydra; writes its folder (result.json or failed.json, .hydra/,
        job.log) when folder is true."""
        job_dir = self.sweep_dir / job.subdir
        log = result.pop("log", None)
        result.update(
            config_hash=job.key,
            status=status,
            sweep_job={
                "num": job.num,
                "overrides": job.overrides,
                "stage": job.stage,
                "sweep_dir": str(self.sweep_dir),
            },
        )
        if folder:
            with self.composer.applied(job.num, job.overrides) as composed:
                write_job_folder(job_dir, composed, log)
            name, other = "result.json", "failed.json"
            if status == "failed":
                name, other = other, name
            write_json_atomic(job_dir / name, result)
            (job_dir / other).unlink(missing_ok=True)
        ret = JobReturn(
            overrides=job.overrides,
            working_dir=str(job_dir),
            task_name="mlp_sweep_job",
            status=JobStatus.FAILED if status == "failed" else JobStatus.COMPLETED,
        )
        if job.composed is not None:  # only callbacks read these; building them costs ms per job
            ret.cfg = OmegaConf.create(job.cfg)  # the resolved config the task ran
            ret.hydra_cfg = OmegaConf.create({"hydra": job.composed.hydra})
        result.pop("traceback", None)  # in the store; the driver keeps only the summary
        result.pop("config", None)
        ret.return_value = (
            JobFailed(result.get("error", "failed"), result) if status == "failed" else result
        )
        return ret

    # ---- ending ---------------------------------------------------------------------
    def finish(self, extra: dict | None = None) -> int:
        """Summary (sweep.json + one line), failures listed, Ray shut down; returns the exit code."""
        finished_at = time.time()
        write_error = self.store.error  # a failed flush mid-sweep: already reported
        try:
            if write_error is None:
                self.store.flush()
                self.table.finish(self.store, self.swept_keys)
        except (UserError, OSError) as exc:
            write_error = str(exc)
            print(f"error: {write_error}", file=sys.stderr)
        info = self.ray_info or {}
        # the process's own start (psutil), so start-up latency counts from the moment the user
        # pressed enter, imports included, not from when Ray came up
        started_at = psutil.Process().create_time()
        summary = {
            **self.counts,
            "sweep_dir": str(self.sweep_dir),
            "started_at": started_at,
            "finished_at": finished_at,
            "wall_s": finished_at - started_at,
            "ray_address": info.get("address"),
            "ray_start_s": info.get("start_s"),
            "ray_start_began_after_s": (
                info["began_at"] - started_at if "began_at" in info else None
            ),
            "ray_ready_to_first_job_s": (
                self.first_task_started_at - info["began_at"] - info["start_s"]
                if self.first_task_started_at and "began_at" in info
                else None
            ),
            "first_task_started_at": self.first_task_started_at,
            "startup_to_first_job_s": (
                self.first_task_started_at - started_at if self.first_task_started_at else None
            ),
            "task_wall_sum_s": self.task_wall_sum,
            "cluster_cpus": info.get("cluster_cpus"),
            "full_composes": self.composer.full_composes,
            "cpus_per_job": self.settings.cpus_per_job,
            "store": str(self.store.root),
            "store_parts_written": self.store.parts_written,
            "stopped": self.stopped,
            "failures": self.failures,
            **(extra or {}),
        }
        t0 = time.perf_counter()
        ray_session.disconnect()
        summary["ray_shutdown_s"] = time.perf_counter() - t0
        try:
            write_json_atomic(self.sweep_dir / "sweep.json", summary)
        except OSError as exc:
            where = self.sweep_dir / "sweep.json"
            print(f"error: cannot write {where}: {exc.strerror}", file=sys.stderr)
            return 1
        print(
            f"{self.counts['jobs']} jobs: {self.counts['ran'] - self.counts['failed']} ran, "
            f"{self.counts['cached']} cached (already stored), {self.counts['failed']} failed "
            f"-> {self.sweep_dir / 'results.csv'}",
            flush=True,
        )
        if self.failures and self.stopped is None:
            shown = self.failures[:SHOWN_FAILURES]
            print(f"error: {self.counts['failed']} job(s) failed:", file=sys.stderr)
            for f in shown:
                print(f"  job {f['job']} ({' '.join(f['swept'])}): {f['error']}", file=sys.stderr)
            if self.counts["failed"] > len(shown):
                print(
                    f"  ... and {self.counts['failed'] - len(shown)} more (results.csv)",
                    file=sys.stderr,
                )
            return 1
        return 1 if self.stopped or write_error else 0


SHOWN_FAILURES = 10
MAX_LISTED_FAILURES = 100  # sweep.json lists this many failures at most (all are in the tables)


def terminate_as_interrupt() -> None:
    """SIGTERM raises KeyboardInterrupt in the driver, so `kill` (or a scheduler's stop) ends a
    sweep the way Ctrl-C does: finished results kept, the private Ray instance shut down."""
    import signal

    def _raise(signum, frame):
        raise KeyboardInterrupt

    if threading_is_main():
        signal.signal(signal.SIGTERM, _raise)


def threading_is_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _swept_values(overrides: list[str], swept_keys: list[str]) -> dict:
    parsed = dict(ov.partition("=")[::2] for ov in overrides)
    return {k: parsed.get(k, parsed.get("+" + k, "")) for k in swept_keys}


def _same_hash(path: Path, key: str) -> bool:
    try:
        return json.loads(path.read_text()).get("config_hash") == key
    except (OSError, ValueError):
        return False
