"""The sweep's own table: one row per job, `results.csv` for people and `results.parquet` (the
same rows plus each result's config, history and the rest) for tools and the report.

While the sweep runs the driver keeps only a short record per job (number, hash, status, swept
values), spilled to a hidden Parquet file every SPILL_ROWS jobs so memory stays flat; the
tables are built once at the end by joining those records with the result store, so a job
that was already stored costs the sweep no file of its own.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlp.atomic import write_atomic
from mlp.result_schema import METRICS
from mlp.sweep.store import BODY, ResultStore, write_part

TAIL = ("train_s", "wall_s", "host", "status", "error", "config_hash", "synthetic", "dir")
FROM_STORE: tuple[str, ...] = ("experiment", "seed", "lambda", *METRICS, "train_s", "wall_s")
FROM_STORE += ("host", "error", "synthetic", "data_source")
SPILL_ROWS = 50_000
_SPILL_GLOB = ".jobs-*.parquet"


def columns(swept_keys: list[str]) -> list[str]:
    """job, stage, every swept key, experiment, seed, lambda, metrics, timings, status."""
    head = ["job", "stage"] + [k for k in swept_keys if k not in ("experiment", "seed", "lambda")]
    return head + ["experiment", "seed", "lambda", *METRICS, *TAIL]


class SweepTable:
    """Per-job records of one sweep (launch() may add several stages); finish() writes the tables."""

    def __init__(self, sweep_dir: Path):
        self.dir = Path(sweep_dir)
        self.records: list[dict] = []
        self.spilled: list[Path] = []
        self.count = 0
        self._cleared = False

    def add(self, job, status: str, folder: bool) -> None:
        """Record one job: ok | failed | cached, and whether its folder was written."""
        if not self._cleared:  # a killed earlier run into the same folder left its records
            for stale in self.dir.glob(_SPILL_GLOB):
                stale.unlink(missing_ok=True)
            self._cleared = True
        self.records.append(
            {
                "job": job.num,
                "stage": job.stage or "",
                "config_hash": job.key,
                "status": status,
                "dir": job.subdir if folder else "",
                "overrides": json.dumps(job.overrides),
                "swept": json.dumps(job.swept),
            }
        )
        self.count += 1
        if len(self.records) >= SPILL_ROWS:
            path = self.dir / f".jobs-{len(self.spilled):05d}.parquet"
            write_part(path, pa.Table.from_pylist(self.records))
            self.spilled.append(path)
            self.records = []

    def frame(self, store: ResultStore, swept_keys: list[str]) -> pd.DataFrame:
        """Every job's row: its record joined with its result in the store (this sweep's own
        row first, else the stored ok row)."""
        parts = [pq.read_table(p).to_pandas() for p in self.spilled]
        jobs = pd.concat([*parts, pd.DataFrame(self.records)], ignore_index=True)
        if jobs.empty:
            return pd.DataFrame(columns=[*columns(swept_keys), "overrides", *BODY])
        jobs = jobs.drop_duplicates("job", keep="last").sort_values("job", ignore_index=True)
        swept = pd.DataFrame([json.loads(s) for s in jobs.pop("swept")], index=jobs.index)
        for key in swept_keys:
            jobs[key] = swept[key] if key in swept else ""
        stored = store.rows(set(jobs["config_hash"]), [*FROM_STORE, *BODY], str(self.dir))
        body = stored.select(["config_hash", *FROM_STORE, *BODY]).to_pandas()
        table = jobs.merge(body, on="config_hash", how="left", suffixes=("_swept", ""))
        for key in ("experiment", "seed", "lambda"):  # swept and stored: the stored value wins
            if f"{key}_swept" in table:
                table[key] = table[key].where(table[key].notna(), table.pop(f"{key}_swept"))
        return table[[*columns(swept_keys), "overrides", *BODY]]

    def finish(self, store: ResultStore, swept_keys: list[str]) -> int:
        """Write results.parquet and results.csv (sorted by job number); returns the row count."""
        if self.count == 0:
            return 0
        table = self.frame(store, swept_keys)
        write_part(self.dir / "results.parquet", pa.Table.from_pandas(table, preserve_index=False))
        flat = table[columns(swept_keys)]
        write_atomic(self.dir / "results.csv", flat.to_csv(index=False, lineterminator="\n"))
        for path in self.spilled:
            path.unlink(missing_ok=True)
        return len(table)
