"""MLflow tracking of a sweep (`+tracking=mlflow`): one run per job, nested under one run per
sweep (and, for the λ search, one per stage); params = the job's resolved config flattened,
metrics = the history at every record point plus the final metrics, artifacts = the job's
result, log and .hydra files, tags = experiment, seed, λ, config hash, status.

Store: `tracking_uri`, else MLFLOW_TRACKING_URI, else the local file store `local_store`
(outputs/mlruns). Each job costs four calls (create_run, one log_batch, the artifacts,
set_terminated), made on the driver's tracking thread.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from mlp.errors import UserError
from mlp.tracking.callback import TrackingCallback
from mlp.tracking.jobs import FinishedJob, flatten

MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value
SWEEP_FILES = ("results.csv", "sweep.json", "lambda_search.json", "multirun.yaml")
# MLflow defaults that do not suit a sweep's driver: URL lines on stdout, minutes of retries
ENV_DEFAULTS = {
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def resolve_uri(tracking_uri: str | None, local_store: str) -> str:
    """The tracking URI to use; a plain path (the default store) becomes an absolute file: URI."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or local_store
    if "://" not in uri and not uri.startswith("file:"):
        return Path(uri).expanduser().resolve().as_uri()
    return uri


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
    elif uri.startswith("file:"):
        path = Path(urllib.request.url2pathname(uri.split(":", 1)[1].removeprefix("//")))
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create the MLflow store {path}: {exc.strerror}") from None


class MlflowTracking(TrackingCallback):
    override = "+tracking=mlflow"
    module = "mlflow"

    def __init__(
        self,
        tracking_uri: str | None = None,
        local_store: str = "outputs/mlruns",
        experiment_name: str = "mlp-study",
        probe_timeout_s: float = 3.0,
    ) -> None:
        super().__init__()
        self.uri = resolve_uri(tracking_uri, local_store)
        self.experiment_name, self.probe_timeout_s = experiment_name, float(probe_timeout_s)
        self.client: Any = None  # an MlflowClient once setup() ran (mlflow is imported there)
        self.experiment_id: str | None = None
        self.sweep_run: str | None = None
        self.run_dir: Path = Path.cwd()  # the sweep folder, from the first job
        self.stage: tuple[str, str, int] | None = None  # (name, run id, failures)

    def check(self) -> None:
        super().check()
        probe(self.uri, self.probe_timeout_s)

    def setup(self) -> None:
        for key, value in ENV_DEFAULTS.items():
            os.environ.setdefault(key, value)
        if self.uri.startswith("file:"):
            os.environ.setdefault(
                "MLFLOW_ALLOW_FILE_STORE", "true"
            )  # MLflow ≥ 3.x asks for the opt-in
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=self.uri)
        found = self.client.get_experiment_by_name(self.experiment_name)
        self.experiment_id = (
            found.experiment_id
            if found is not None
            else self.client.create_experiment(self.experiment_name)
        )

    def _parent(self, job: FinishedJob) -> str:
        """The run a job's run nests under: the sweep's, or its stage's (made as they first appear)."""
        if self.sweep_run is None:
            self.run_dir = job.sweep_dir
            try:
                name = str(job.sweep_dir.relative_to(Path.cwd()))
            except ValueError:
                name = str(job.sweep_dir)
            self.sweep_run = self._start(
                name, {"level": "sweep", "sweep_dir": str(job.sweep_dir)}, job.started_at
            )
        if job.stage is None:
            return self.sweep_run
        if self.stage is None or self.stage[0] != job.stage:
            self._end_stage()
            run = self._start(
                job.stage,
                {"level": "stage", "stage": job.stage, "mlflow.parentRunId": self.sweep_run},
                job.started_at,
            )
            self.stage = (job.stage, run, 0)
        return self.stage[1]

    def _start(self, name: str, tags: dict, started_at: float) -> str:
        run = self.client.create_run(
            self.experiment_id, start_time=int(started_at * 1000), tags=tags, run_name=name
        )
        return run.info.run_id

    def _end_stage(self) -> None:
        if self.stage is not None:
            self.client.set_terminated(self.stage[1], "FAILED" if self.stage[2] else "FINISHED")
            self.stage = None

    def log_job(self, job: FinishedJob) -> None:
        from mlflow.entities import Metric, Param

        parent = self._parent(job)
        if job.status == "failed" and self.stage is not None:
            self.stage = (*self.stage[:2], self.stage[2] + 1)
        run_id = self._start(
            job.name, {**job.tags(), "level": "job", "mlflow.parentRunId": parent}, job.started_at
        )
        stamp = int(job.ended_at * 1000)
        metrics = [
            Metric(k, v, stamp, step) for step, values in job.history() for k, v in values.items()
        ]
        step, final = job.final_metrics()
        metrics += [Metric(k, v, stamp, step) for k, v in final.items()]
        params = [Param(k, v[:MAX_PARAM_CHARS]) for k, v in flatten(job.cfg).items()]
        self.client.log_batch(run_id, metrics=metrics, params=params)
        for path in job.files:
            self.client.log_artifact(run_id, str(path))
        if (job.dir / ".hydra").is_dir():
            self.client.log_artifacts(run_id, str(job.dir / ".hydra"), ".hydra")
        self.client.set_terminated(
            run_id, "FINISHED" if job.status == "ok" else "FAILED", end_time=stamp
        )

    def finish(self, status: str) -> None:
        if self.sweep_run is None:  # nothing ran (every job cached): no runs at all
            return
        self._end_stage()
        search = self.run_dir / "lambda_search.json"
        if search.is_file():
            outcome = json.loads(search.read_text())
            from mlflow.entities import Metric

            stamp = int(search.stat().st_mtime * 1000)
            self.client.log_batch(
                self.sweep_run,
                metrics=[
                    Metric(k, float(outcome[k]), stamp, 0)
                    for k in ("chosen_lambda", "coarse_best_lambda", "fine_best_val_acc")
                    if outcome.get(k) is not None
                ],
            )
        for name in SWEEP_FILES:
            if (self.run_dir / name).is_file():
                self.client.log_artifact(self.sweep_run, str(self.run_dir / name))
        self.client.set_terminated(self.sweep_run, status)
