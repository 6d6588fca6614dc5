"""MLflow tracking of a sweep (`+tracking=mlflow`): one run per sweep (params = the command
line's fixed overrides, metrics = the job counts and the λ search's outcome, artifacts = the
sweep's table and summary files) and, in a sweep of at most `max_job_runs` jobs, one run per
job nested under it (and, for the λ search, under one run per stage): params = the job's
resolved config flattened, metrics = the history at every record point plus the final metrics,
artifacts = its result (and its log and .hydra files where the driver wrote them), tags =
experiment, seed, λ, config hash, status.

Store: `tracking_uri`, else MLFLOW_TRACKING_URI, else `local_store`, a SQLite database
(sqlite:///outputs/mlflow.db, relative to the launch folder); a new experiment in a SQLite
store keeps its artifacts in `mlartifacts/` beside the database. Each job run costs three
store calls (create_run with its tags, one log_batch with every param and metric,
set_terminated) and its artifacts, written straight to the run's artifact location, all on
the driver's tracking thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from mlp.errors import UserError
from mlp.tracking.callback import TrackingCallback
from mlp.tracking.jobs import FinishedJob, flatten

MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value
MAX_TAG_CHARS = 5000
SWEEP_FILES = (
    "results.csv",
    "results.parquet",
    "sweep.json",
    "lambda_search.json",
    "multirun.yaml",
)
SEARCH_METRICS = ("chosen_lambda", "coarse_best_lambda", "fine_best_val_acc")
# MLflow defaults that do not suit a sweep's driver: URL lines on stdout, minutes of retries
ENV_DEFAULTS = {
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
SQLITE = "sqlite:///"
ARTIFACTS_BESIDE_DB = "mlartifacts"


def resolve_uri(tracking_uri: str | None, local_store: str) -> str:
    """The tracking URI to use. A SQLite URI's relative path becomes absolute (against the
    launch folder); a plain path is MLflow's legacy file store, as an absolute file: URI."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or local_store
    if uri.startswith(SQLITE):
        path, sep, query = uri[len(SQLITE) :].partition("?")
        if path and path != ":memory:" and not path.startswith("/"):
            return f"{SQLITE}{Path(path).expanduser().resolve()}{sep}{query}"
        return uri
    if "://" not in uri and not uri.startswith("file:"):
        return Path(uri).expanduser().resolve().as_uri()
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a sqlite:/// URI (None for other stores and in-memory databases)."""
    if not uri.startswith(SQLITE):
        return None
    path = uri[len(SQLITE) :].partition("?")[0]
    return Path(path) if path and path != ":memory:" else None


def probe(uri: str, timeout_s: float) -> None:
    """Fail in about timeout_s when the store cannot be reached (MLflow itself would retry for minutes)."""
    if uri.startswith(("http://", "https://")):
        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s).close()
        except urllib.error.HTTPError:
            return  # something answered (an auth proxy, a path prefix): MLflow will say more
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise UserError(
                f"cannot reach the MLflow tracking server at {uri} ({reason}); start it, or "
                f"set MLFLOW_TRACKING_URI / hydra.callbacks.mlflow.tracking_uri"
            ) from None
        return
    if uri.startswith("file:"):
        folder = Path(urllib.request.url2pathname(uri.split(":", 1)[1].removeprefix("//")))
    elif (db := sqlite_path(uri)) is not None:
        folder = db.parent
        if db.exists() and not os.access(db, os.W_OK):
            raise UserError(f"cannot write the MLflow store {db}: permission denied")
    else:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the MLflow store {folder}: {exc.strerror}") from None


@contextlib.contextmanager
def first_use_lock(uri: str):
    """Held while a SQLite store is opened and the experiment found or made: a new database
    gets its tables on first use (MLflow's migrations, seconds), which two sweeps starting at
    once must not both do (MLflow's own store takes no lock there)."""
    db = sqlite_path(uri)
    if db is None:
        yield
        return
    key = hashlib.sha256(str(db).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"mlp-mlflow-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


class MlflowTracking(TrackingCallback):
    override = "+tracking=mlflow"
    module = "mlflow"

    def __init__(
        self,
        tracking_uri: str | None = None,
        local_store: str = "sqlite:///outputs/mlflow.db",
        experiment_name: str = "mlp-study",
        probe_timeout_s: float = 3.0,
        max_job_runs: int | None = 1000,
    ) -> None:
        super().__init__(max_job_runs)
        self.uri = resolve_uri(tracking_uri, local_store)
        self.experiment_name, self.probe_timeout_s = experiment_name, float(probe_timeout_s)
        self.client: Any = None  # an MlflowClient once setup() ran (mlflow is imported there)
        self.experiment_id: str | None = None
        self.sweep_run: str | None = None
        self.sweep_repo: Any = None
        self.stage: tuple[str, str, int] | None = None  # (name, run id, failures)
        self.scratch: Path | None = None  # where an in-memory result becomes a file to upload

    def check(self) -> None:
        super().check()
        probe(self.uri, self.probe_timeout_s)

    def setup(self) -> None:
        for key, value in ENV_DEFAULTS.items():
            os.environ.setdefault(key, value)
        if self.uri.startswith("file:"):  # MLflow ≥ 3.x refuses its file store without the opt-in
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        for name in ("mlflow.store.db.utils", "alembic"):  # "Creating initial tables..." lines
            logging.getLogger(name).setLevel(logging.WARNING)
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        self.client = MlflowClient(tracking_uri=self.uri)
        db = sqlite_path(self.uri)
        location = (db.parent / ARTIFACTS_BESIDE_DB).as_uri() if db is not None else None
        with first_use_lock(self.uri):  # a new SQLite database gets its tables here
            found = self.client.get_experiment_by_name(self.experiment_name)
            if found is None:
                try:
                    self.experiment_id = self.client.create_experiment(
                        self.experiment_name, artifact_location=location
                    )
                    return
                except MlflowException:  # another sweep made it meanwhile (a server's store)
                    found = self.client.get_experiment_by_name(self.experiment_name)
                    if found is None:
                        raise
            self.experiment_id = found.experiment_id

    # ---- runs -----------------------------------------------------------------------
    def _start(self, name: str, tags: dict, started_at: float):
        return self.client.create_run(
            self.experiment_id, start_time=int(started_at * 1000), tags=tags, run_name=name
        ).info

    def _repo(self, info):
        """The run's artifact store, from the run's own URI (MLflow's log_artifact would read
        the whole run back from the store first)."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        return get_artifact_repository(info.artifact_uri, tracking_uri=self.uri)

    def log_sweep_job(self, job: FinishedJob) -> None:
        """The sweep's run is made as its first job lands (a sweep whose jobs are all cached
        makes none)."""
        if self.sweep_run is not None:
            return
        sweep_dir = job.sweep_dir
        try:
            name = str(sweep_dir.relative_to(Path.cwd()))
        except ValueError:
            name = str(sweep_dir)
        swept = " ".join(f"{k}={v}" for k, v in self.swept.items())
        tags = {"level": "sweep", "sweep_dir": str(sweep_dir), "swept": swept[:MAX_TAG_CHARS]}
        if self.planned is not None:
            tags["jobs"] = str(self.planned)
        info = self._start(name, tags, job.started_at)
        self.sweep_run, self.sweep_repo = info.run_id, self._repo(info)
        if self.fixed:
            from mlflow.entities import Param

            params = [Param(k, v[:MAX_PARAM_CHARS]) for k, v in self.fixed.items()]
            self.client.log_batch(self.sweep_run, params=params)

    def _parent(self, job: FinishedJob) -> str:
        """The run a job's run nests under: the sweep's, or its stage's (made as they first appear)."""
        assert self.sweep_run is not None  # log_sweep_job ran first
        if job.stage is None:
            return self.sweep_run
        if self.stage is None or self.stage[0] != job.stage:
            self._end_stage()
            info = self._start(
                job.stage,
                {"level": "stage", "stage": job.stage, "mlflow.parentRunId": self.sweep_run},
                job.started_at,
            )
            self.stage = (job.stage, info.run_id, 0)
        return self.stage[1]

    def _end_stage(self) -> None:
        if self.stage is not None:
            self.client.set_terminated(self.stage[1], "FAILED" if self.stage[2] else "FINISHED")
            self.stage = None

    def log_job(self, job: FinishedJob) -> None:
        from mlflow.entities import Metric, Param

        parent = self._parent(job)
        if job.status == "failed" and self.stage is not None:
            self.stage = (*self.stage[:2], self.stage[2] + 1)
        info = self._start(
            job.name, {**job.tags(), "level": "job", "mlflow.parentRunId": parent}, job.started_at
        )
        stamp = int(job.ended_at * 1000)
        metrics = [
            Metric(k, v, stamp, step) for step, values in job.history() for k, v in values.items()
        ]
        step, final = job.final_metrics()
        metrics += [Metric(k, v, stamp, step) for k, v in final.items()]
        params = [Param(k, v[:MAX_PARAM_CHARS]) for k, v in flatten(job.cfg).items()]
        self.client.log_batch(info.run_id, metrics=metrics, params=params)
        self._log_files(info, job)
        self.client.set_terminated(
            info.run_id, "FINISHED" if job.status == "ok" else "FAILED", end_time=stamp
        )

    def _log_files(self, info, job: FinishedJob) -> None:
        """result.json (failed.json) from the JobReturn, unless the driver wrote a failed.json
        (it has the traceback); job.log and .hydra/ where the driver wrote them."""
        repo = self._repo(info)
        files = job.files
        name = "result.json" if job.status == "ok" else "failed.json"
        if not any(p.name == name for p in files):
            if self.scratch is None:
                self.scratch = Path(tempfile.mkdtemp(prefix="mlp-mlflow-"))
            saved = self.scratch / name
            saved.write_text(json.dumps(job.saved(), indent=1, default=str))
            files.insert(0, saved)
        for path in files:
            repo.log_artifact(str(path))
        if (job.dir / ".hydra").is_dir():
            repo.log_artifacts(str(job.dir / ".hydra"), ".hydra")

    def finish(self, status: str) -> None:
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
        if self.sweep_run is None:  # nothing ran (every job cached): no runs at all
            return
        from mlflow.entities import Metric

        self._end_stage()
        stamp = int(time.time() * 1000)
        counts = {
            "jobs_ok": self.landed - self.failures,
            "jobs_failed": self.failures,
            "job_runs": self.logged,
        }
        if self.planned is not None:
            counts["jobs"] = self.planned
        metrics = [Metric(k, float(v), stamp, 0) for k, v in counts.items()]
        search = self.sweep_dir / "lambda_search.json" if self.sweep_dir else None
        if search is not None and search.is_file():
            outcome = json.loads(search.read_text())
            chosen = {k: outcome.get(k) for k in SEARCH_METRICS}
            chosen[f"fine_best_{outcome.get('metric', 'val_acc')}"] = outcome.get(
                "fine_best_metric"
            )
            metrics += [Metric(k, float(v), stamp, 0) for k, v in chosen.items() if v is not None]
        self.client.log_batch(self.sweep_run, metrics=metrics)
        for name in SWEEP_FILES:
            if self.sweep_dir is not None and (self.sweep_dir / name).is_file():
                self.sweep_repo.log_artifact(str(self.sweep_dir / name))
        self.client.set_terminated(self.sweep_run, status)
