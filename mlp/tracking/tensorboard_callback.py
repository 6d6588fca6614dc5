"""TensorBoard tracking of a sweep (`+tracking=tensorboard`): each job's folder gets one event
file with its history as scalars (`history/<key>` at each record step), its final metrics, and
its HParams session (λ, seed, experiment, stage, status and the job's overrides), so
`tensorboard --logdir <sweep dir>` compares the whole grid in the HParams view.

Written with TensorBoard's own event writer and HParams protos: no TensorFlow or PyTorch needed.
"""

from __future__ import annotations

import json

from mlp.tracking.callback import TrackingCallback
from mlp.tracking.jobs import FinishedJob, hparam_value

EVENT_GLOB = "events.out.tfevents.*"


class TensorBoardTracking(TrackingCallback):
    override = "+tracking=tensorboard"
    module = "tensorboard"

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

    def log_job(self, job: FinishedJob) -> None:
        event_pb2, summary_pb2 = self.pb
        for old in job.dir.glob(EVENT_GLOB):  # a re-run job replaces its curves, as its result.json
            old.unlink()
        writer = self.Writer(str(job.dir))

        def scalars(step: int, values: dict[str, float]) -> None:
            summary = summary_pb2.Summary(
                value=[summary_pb2.Summary.Value(tag=k, simple_value=v) for k, v in values.items()]
            )
            writer.add_event(event_pb2.Event(wall_time=job.ended_at, step=step, summary=summary))

        session = self.hparams_pb(
            self.hparams(job), trial_id=job.name, start_time_secs=job.started_at
        )
        writer.add_event(event_pb2.Event(wall_time=job.started_at, step=0, summary=session))
        for step, values in job.history():
            scalars(step, values)
        scalars(*job.final_metrics())
        writer.close()
