"""What a tracker logs about one finished job, built from the JobReturn the driver hands to
on_job_end (not from the job's folder, which the driver may not write): the same data
whichever tracker logs it."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, cast

from omegaconf import OmegaConf

from mlp.result_schema import METRICS

FINAL_METRICS = (
    *METRICS,
    "test_loss",
    "train_s",
    "eval_s",
    "samples_per_s",
    "max_rel_error",
    "task_wall_s",
)
TAG_KEYS = ("experiment", "seed", "lambda", "config_hash", "status", "host")


@dataclass
class FinishedJob:
    num: int
    stage: str | None
    status: str  # ok | failed
    dir: Path  # the job's folder: it exists only if the driver wrote it (the job's own files)
    sweep_dir: Path
    result: dict  # an ok job's result (metrics, history, ...); a failed job's {"error": ...}
    overrides: list[str]
    started_at: float
    ended_at: float
    cfg_node: Any = field(default=None, repr=False)  # JobReturn.cfg: the resolved config

    @cached_property
    def cfg(self) -> dict:
        """The resolved config the task ran, as plain data (converted when first needed)."""
        if self.cfg_node is None:
            return {}
        return cast(dict, OmegaConf.to_container(self.cfg_node, resolve=True))

    @property
    def name(self) -> str:
        lam = self.result.get("lambda", self.cfg.get("lambda"))
        lam_text = f"{lam:g}" if isinstance(lam, (int, float)) else str(lam)
        experiment = self.result.get("experiment", self.cfg.get("name"))
        return f"{self.num} {experiment} λ={lam_text} seed={self.result.get('seed', self.cfg.get('seed'))}"

    def saved(self) -> dict:
        """What the driver saves as the job's result.json (failed.json): the result with its
        config (the traceback and log are not in the JobReturn)."""
        return {**self.result, "config": self.cfg, "status": self.status}

    @property
    def files(self) -> list[Path]:
        """The job's own files that the driver wrote (job.log; failed.json, whose traceback the
        JobReturn lacks), those that exist."""
        names = ("job.log",) if self.status == "ok" else ("failed.json", "job.log")
        return [p for p in (self.dir / n for n in names) if p.is_file()]

    def tags(self) -> dict[str, str]:
        tags = {k: str(self.result.get(k, self.cfg.get(k, ""))) for k in TAG_KEYS}
        tags.update(status=self.status, job=str(self.num), stage=self.stage or "")
        if self.status == "failed":
            tags["error"] = str(self.result.get("error", ""))[:1000]
        return tags

    def history(self) -> list[tuple[int, dict[str, float]]]:
        """(step, {"history/<key>": value}) per record point of the training history."""
        points = []
        for rec in self.result.get("history") or []:
            values = {
                f"history/{k}": float(v) for k, v in rec.items() if k != "step" and _is_number(v)
            }
            points.append((int(rec["step"]), values))
        return points

    def final_metrics(self) -> tuple[int, dict[str, float]]:
        """(last recorded step, the job's final metrics and timings)."""
        history = self.result.get("history") or []
        step = int(history[-1]["step"]) if history else 0
        return step, {
            k: float(self.result[k]) for k in FINAL_METRICS if _is_number(self.result.get(k))
        }


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def finished_job(
    job_return, num: int | None, ended_at: float, sweep_dir: Path | None, plan=None
) -> FinishedJob:
    """The job the driver just recorded, from what on_job_end receives: the JobReturn (its
    return value: an ok job's result, or a failed job's JobFailed; cfg, overrides,
    working_dir) and num = the job config's hydra.job.num. ended_at: when on_job_end was
    called, for a job whose result has no task times; plan (mlp.sweep.plan): a failed job's
    stage."""
    from mlp.sweep.plan import stage_of

    ok = job_return.status.name == "COMPLETED"
    # JobReturn.return_value raises a failed job's exception (and prints a line): read the field
    value = job_return._return_value
    if ok:
        result = dict(value) if isinstance(value, dict) else {}
    else:  # the exception may carry the failed result (`result`); its text is the error line
        result = dict(getattr(value, "result", None) or {})
        result.setdefault("error", str(value) if value is not None else "failed")
    where = result.get("sweep_job") or {}
    num = where.get("num", num)
    num = int(num) if num is not None else 0
    job_dir = Path(job_return.working_dir) if job_return.working_dir else Path.cwd()
    if sweep_dir is None:
        sweep_dir = Path(where.get("sweep_dir") or job_dir.parent)
    started, wall = result.get("task_started_at"), result.get("task_wall_s")
    if isinstance(started, (int, float)) and isinstance(wall, (int, float)):
        ended_at = started + wall
    return FinishedJob(
        num=num,
        stage=where.get("stage", stage_of(plan, num)),
        status="ok" if ok else "failed",
        dir=job_dir,
        sweep_dir=sweep_dir,
        result=result,
        overrides=list(job_return.overrides or []),
        started_at=started if isinstance(started, (int, float)) else ended_at,
        ended_at=ended_at,
        cfg_node=job_return.cfg,
    )


def flatten(cfg: dict, prefix: str = "") -> dict[str, str]:
    """Dotted keys to text values (lists as JSON), e.g. {"train.n_s": "500"}."""
    flat = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
    return flat


def hparam_value(value):
    """A value TensorBoard's HParams view accepts (bool, number or text)."""
    if isinstance(value, bool) or (isinstance(value, (int, float)) and math.isfinite(value)):
        return value
    return "" if value is None else str(value)
