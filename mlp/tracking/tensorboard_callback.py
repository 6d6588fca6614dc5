"""TensorBoard tracking of a sweep (`+tracking=tensorboard`): in a sweep of at most
`max_job_runs` jobs each job's folder gets one event file with its history as scalars
(`history/<key>` at each record step), its final metrics, and its HParams session (λ, seed,
experiment, stage, status and the job's overrides), so `tensorboard --logdir <sweep dir>`
compares the whole grid in the HParams view. Every sweep also gets one summary event file,
`<sweep dir>/summary/`: each finished job's accuracies (`jobs/val_acc`, `jobs/test_acc`,
`jobs/train_acc`; one small event per job, so a million jobs make ~100 MB) at step = its job
number, and the job counts (`sweep/jobs_ok`, `sweep/jobs_failed`) at the end.

Written with TensorBoard's own event writer and HParams protos: no TensorFlow or PyTorch needed.
"""

from __future__ import annotations

import json
import time
from typing import Any

from mlp.tracking.callback import TrackingCallback
from mlp.tracking.jobs import FinishedJob, hparam_value

EVENT_GLOB = "events.out.tfevents.*"
SUMMARY = "summary"  # <sweep dir>/summary/: the sweep's own event file
SUMMARY_METRICS = ("val_acc", "test_acc", "train_acc")  # per job in the summary


class TensorBoardTracking(TrackingCallback):
    override = "+tracking=tensorboard"
    module = "tensorboard"

    def __init__(self, max_job_runs: int | None = 1000) -> None:
        super().__init__(max_job_runs)
        self.summary: Any = None  # the summary's event writer, opened as the first job lands

    def setup(self) -> None:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.plugins.hparams import summary_v2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self.pb, self.hparams_pb, self.Writer = (
            (event_pb2, summary_pb2),
            summary_v2.hparams_pb,
            EventFileWriter,
        )

    def hparams(self, job: FinishedJob) -> dict:
        values = {}
        for override in job.overrides:  # what the job was asked for (swept keys among them)
            key, _, text = override.partition("=")
            try:
                values[key.lstrip("+~")] = hparam_value(json.loads(text))
            except ValueError:
                values[key.lstrip("+~")] = text
        values.update(
            {k: hparam_value(job.result.get(k, job.cfg.get(k))) for k in ("lambda", "seed")}
        )
        values.update(
            experiment=str(job.result.get("experiment", job.cfg.get("name"))),
            stage=job.stage or "",
            status=job.status,
            job=job.num,
        )
        return values

    def _scalars(self, writer, step: int, values: dict[str, float], wall_time: float) -> None:
        event_pb2, summary_pb2 = self.pb
        summary = summary_pb2.Summary(
            value=[summary_pb2.Summary.Value(tag=k, simple_value=v) for k, v in values.items()]
        )
        writer.add_event(event_pb2.Event(wall_time=wall_time, step=step, summary=summary))

    def log_sweep_job(self, job: FinishedJob) -> None:
        if self.summary is None:
            self.summary = self.Writer(str(job.sweep_dir / SUMMARY))
        _, final = job.final_metrics()
        headline = {f"jobs/{k}": final[k] for k in SUMMARY_METRICS if k in final}
        if headline:
            self._scalars(self.summary, job.num, headline, job.ended_at)

    def finish(self, status: str) -> None:
        if self.summary is None:  # nothing ran (every job cached)
            return
        counts = {"sweep/jobs_ok": self.landed - self.failures, "sweep/jobs_failed": self.failures}
        self._scalars(self.summary, 0, {k: float(v) for k, v in counts.items()}, time.time())
        self.summary.close()

    def log_job(self, job: FinishedJob) -> None:
        event_pb2, _ = self.pb
        for old in job.dir.glob(EVENT_GLOB):  # a re-run job replaces its curves, as its result.json
            old.unlink()
        writer = self.Writer(str(job.dir))  # makes the job's folder if the driver did not
        session = self.hparams_pb(
            self.hparams(job), trial_id=job.name, start_time_secs=job.started_at
        )
        writer.add_event(event_pb2.Event(wall_time=job.started_at, step=0, summary=session))
        for step, values in job.history():
            self._scalars(writer, step, values, job.ended_at)
        self._scalars(writer, *job.final_metrics(), job.ended_at)
        writer.close()
