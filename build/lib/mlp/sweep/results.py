"""One row per job for results.csv, rewritten atomically after every finished job."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from mlp.cli import write_atomic

METRICS = ("val_acc", "test_acc", "train_acc", "final_train_loss", "final_val_loss",
           "final_train_cost", "final_val_cost")
TAIL = ("train_s", "wall_s", "host", "status", "error", "config_hash", "synthetic", "dir")


def make_row(job, result: dict, status: str) -> dict:
    """Flatten a job (its swept values) and its result into one CSV row."""
    row = {"job": job.num, "stage": job.stage or ""}
    row.update(job.swept)
    row.update(experiment=result.get("experiment", job.cfg.get("name")),
               seed=result.get("seed", job.cfg.get("seed")),
               **{"lambda": result.get("lambda", job.cfg.get("lambda"))})
    for key in METRICS:
        row[key] = result.get(key, "")
    row.update(train_s=result.get("train_s", ""), wall_s=result.get("task_wall_s", ""),
               host=result.get("host", ""), status=status, error=result.get("error", ""),
               config_hash=job.key, synthetic=result.get("synthetic", ""), dir=job.subdir)
    return row


def write_csv_atomic(path: Path, rows: list[dict], swept_keys: list[str]) -> None:
    """Columns: job, stage, every swept key, experiment, seed, lambda, metrics, timings, status."""
    head = ["job", "stage"] + [k for k in swept_keys if k not in ("experiment", "seed", "lambda")]
    columns = head + ["experiment", "seed", "lambda", *METRICS, *TAIL]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in sorted(rows, key=lambda r: r["job"]):
        writer.writerow(row)
    write_atomic(path, buf.getvalue())
