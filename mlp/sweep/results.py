"""One row per job in results.csv: appended as each job finishes (an interrupted sweep keeps
every finished row), rewritten sorted by job number once at the end."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TextIO

from mlp.cli import write_atomic

METRICS = (
    "val_acc",
    "test_acc",
    "train_acc",
    "final_train_loss",
    "final_val_loss",
    "final_train_cost",
    "final_val_cost",
)
TAIL = ("train_s", "wall_s", "host", "status", "error", "config_hash", "synthetic", "dir")


def make_row(job, result: dict, status: str) -> dict:
    """Flatten a job (its swept values) and its result into one CSV row."""
    row = {"job": job.num, "stage": job.stage or ""}
    row.update(job.swept)
    row.update(
        experiment=result.get("experiment", job.cfg.get("name")),
        seed=result.get("seed", job.cfg.get("seed")),
        **{"lambda": result.get("lambda", job.cfg.get("lambda"))},
    )
    for key in METRICS:
        row[key] = result.get(key, "")
    row.update(
        train_s=result.get("train_s", ""),
        wall_s=result.get("task_wall_s", ""),
        host=result.get("host", ""),
        status=status,
        error=result.get("error", ""),
        config_hash=job.key,
        synthetic=result.get("synthetic", ""),
        dir=job.subdir,
    )
    return row


def columns(swept_keys: list[str]) -> list[str]:
    """job, stage, every swept key, experiment, seed, lambda, metrics, timings, status."""
    head = ["job", "stage"] + [k for k in swept_keys if k not in ("experiment", "seed", "lambda")]
    return head + ["experiment", "seed", "lambda", *METRICS, *TAIL]


def _csv_text(rows, cols: list[str], header: bool) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_csv_atomic(path: Path, rows: list[dict], swept_keys: list[str]) -> None:
    """The whole table sorted by job number, written atomically."""
    rows = sorted(rows, key=lambda r: r["job"])
    write_atomic(path, _csv_text(rows, columns(swept_keys), header=True))


class ResultsCsv:
    """results.csv of one sweep: O(1) per finished job (one appended line, flushed).

    The header is written when the first row arrives; when a later stage sweeps a new key the
    file is rewritten once with the wider header. finish() sorts it by job number."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.rows: dict[int, dict] = {}
        self.cols: list[str] | None = None
        self.file: TextIO | None = None

    def add(self, row: dict, swept_keys: list[str]) -> None:
        self.rows[row["job"]] = row
        cols = columns(swept_keys)
        if cols != self.cols or self.file is None:
            self.cols = cols
            self._rewrite(cols)
        else:
            self.file.write(_csv_text([row], cols, header=False))
            self.file.flush()

    def _rewrite(self, cols: list[str]) -> None:
        self.close()
        write_atomic(self.path, _csv_text(list(self.rows.values()), cols, header=True))
        self.file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115  (open for the sweep)

    def finish(self, swept_keys: list[str]) -> None:
        """Sorted by job number, atomically (the appended file is in finishing order)."""
        self.close()
        if self.rows:
            write_csv_atomic(self.path, list(self.rows.values()), swept_keys)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
