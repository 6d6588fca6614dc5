"""What a tracker logs about one finished job, read from the job's folder and its JobReturn:
the same data whichever tracker logs it."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import cast

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
    dir: Path
    sweep_dir: Path
    result: dict  # result.json (or failed.json) as written by the driver
    cfg: dict  # the resolved config the task ran
    overrides: list[str]
    started_at: float
    ended_at: float

    @property
    def name(self) -> str:
        lam = self.result.get("lambda", self.cfg.get("lambda"))
        lam_text = f"{lam:g}" if isinstance(lam, (int, float)) else str(lam)
        experiment = self.result.get("experiment", self.cfg.get("name"))
        return f"{self.num} {experiment} λ={lam_text} seed={self.result.get('seed', self.cfg.get('seed'))}"

    @property
    def files(self) -> list[Path]:
        """The job's result (result.json, or failed.json) and its log, those that exist."""
        names = ("result.json",) if self.status == "ok" else ("failed.json",)
        return [p for p in (self.dir / n for n in (*names, "job.log")) if p.is_file()]

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


def read_finished_job(job_return) -> FinishedJob:
    """The job the driver just recorded: JobReturn.working_dir is its folder."""
    job_dir = Path(job_return.working_dir)
    ok = job_return.status.name == "COMPLETED"
    result = json.loads((job_dir / ("result.json" if ok else "failed.json")).read_text())
    where = result.get("sweep_job") or {}
    cfg = cast(dict, OmegaConf.to_container(job_return.cfg, resolve=True))
    started = result.get("task_started_at")
    wall = result.get("task_wall_s")
    ended = started + wall if _is_number(started) and _is_number(wall) else job_dir.stat().st_mtime
    return FinishedJob(
        num=int(where.get("num", 0)),
        stage=where.get("stage"),
        status="ok" if ok else "failed",
        dir=job_dir,
        sweep_dir=Path(where.get("sweep_dir", job_dir.parent)),
        result=result,
        cfg=cfg,
        overrides=list(job_return.overrides or []),
        started_at=started if _is_number(started) else ended,
        ended_at=ended,
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
