"""The result store: every finished job's result, keyed by config hash, in one Parquet dataset.

A folder of part files (`part-<time>-<pid>-<random>.parquet`), each written whole or not at all
(temp file, fsync, rename): a driver buffers finished results and appends them as one part every
`flush_rows` results or `flush_s` seconds, so a SIGKILL loses at most the results since the last
flush and never corrupts the store. Drivers never rewrite another's part, so several may append
at once; compaction (many small parts merged into one, under a file lock) keeps the number of
files bounded. Resume reads only the `config_hash` and `status` columns (mlp.sweep.launch).

Results stored as `<hash>.json` files by the runner before the Parquet store are migrated into
it the first time the store is opened, re-keyed by today's hash (docs/sweep-scale.md).
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from filelock import FileLock, Timeout

from mlp.atomic import fsync_dir
from mlp.errors import UserError
from mlp.result_schema import METRICS, config_hash

HISTORY_FIELDS = (
    ("step", pa.int64()),
    ("epoch", pa.float64()),
    ("eta", pa.float64()),
    ("train_loss", pa.float64()),
    ("train_cost", pa.float64()),
    ("train_acc", pa.float64()),
    ("val_loss", pa.float64()),
    ("val_cost", pa.float64()),
    ("val_acc", pa.float64()),
)
HISTORY_TYPE = pa.list_(pa.struct([pa.field(n, t) for n, t in HISTORY_FIELDS]))
_HISTORY_KEYS = {n for n, _ in HISTORY_FIELDS}
# Columns that hold the result itself; the others describe it for tools (flat, typed).
BODY = ("config", "history", "result")
SCHEMA = pa.schema(
    [
        ("config_hash", pa.string()),
        ("status", pa.string()),  # ok | failed
        ("sweep", pa.string()),  # the sweep folder that ran it
        ("job", pa.int64()),
        ("stage", pa.string()),
        ("overrides", pa.string()),  # JSON list: the job's command-line overrides
        ("experiment", pa.string()),
        ("seed", pa.int64()),
        ("lambda", pa.float64()),
        ("data_source", pa.string()),
        ("synthetic", pa.bool_()),
        *((m, pa.float64()) for m in METRICS),
        ("train_s", pa.float64()),
        ("wall_s", pa.float64()),  # the task's wall time for this job
        ("host", pa.string()),
        ("node_id", pa.string()),
        ("finished_at", pa.float64()),
        ("error", pa.string()),  # first line
        ("config", pa.string()),  # JSON: the resolved config the job ran
        ("history", HISTORY_TYPE),  # the curves (null when not of the usual shape: then in result)
        ("result", pa.string()),  # JSON: every other field of the result
        ("log", pa.string()),  # the job's captured output, its last LOG_CAP bytes
    ]
)
LOG_CAP = 64 * 1024
MAX_PARTS = 32  # more small parts than this: merge them
SMALL_PART_BYTES = 64 << 20


def _num(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def to_row(key: str, result: dict, status: str, job_info: dict) -> dict:
    """One store row from a result dict (as a task returns it) and where it ran."""
    rest = dict(result)
    config = rest.pop("config", None)
    log = rest.pop("log", None)
    history = rest.get("history")
    if (
        isinstance(history, list)
        and history
        and all(isinstance(r, dict) and set(r) == _HISTORY_KEYS for r in history)
    ):
        rest.pop("history")
    else:
        history = None
    for k in ("config_hash", "status", "sweep_job"):
        rest.pop(k, None)
    seed = result.get("seed")
    return {
        "config_hash": key,
        "status": status,
        "sweep": job_info.get("sweep"),
        "job": job_info.get("job"),
        "stage": job_info.get("stage"),
        "overrides": json.dumps(job_info.get("overrides") or []),
        "experiment": None if result.get("experiment") is None else str(result["experiment"]),
        "seed": seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        "lambda": _num(result.get("lambda")),
        "data_source": result.get("data_source"),
        "synthetic": result.get("synthetic") if isinstance(result.get("synthetic"), bool) else None,
        **{m: _num(result.get(m)) for m in METRICS},
        "train_s": _num(result.get("train_s")),
        "wall_s": _num(result.get("task_wall_s")),
        "host": result.get("host"),
        "node_id": result.get("node_id"),
        "finished_at": time.time(),
        "error": result.get("error") or None,
        "config": None if config is None else json.dumps(config),
        "history": history,
        "result": json.dumps(rest, default=str),
        "log": None if log is None else log[-LOG_CAP:],
    }


def to_result(row: dict) -> dict:
    """The result dict back from a store (or results.parquet) row."""
    result = json.loads(row["result"]) if row.get("result") else {}
    if row.get("config"):
        result["config"] = json.loads(row["config"])
    if row.get("history") is not None:
        result["history"] = row["history"]
    result["config_hash"] = row["config_hash"]
    result["status"] = row["status"]
    return result


def _new_part(root: Path) -> Path:
    """A part name no other writer (process, or this one later) can pick."""
    return root / f"part-{time.time_ns()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"


def _schema(columns: list[str] | None) -> pa.Schema:
    """The store's schema, or its part for these columns."""
    return SCHEMA if columns is None else pa.schema([SCHEMA.field(c) for c in columns])


def write_part(path: Path, table: pa.Table) -> None:
    """A Parquet file whole or not at all: temp file in the same folder, fsync, rename, fsync dir."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            pq.write_table(table, f, compression="zstd")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def winners(table: pa.Table, prefer_sweep: str | None = None) -> pa.Table:
    """One row per config hash: its latest ok row, else its latest row (prefer_sweep: a row of
    that sweep folder before any other)."""
    if table.num_rows == 0:
        return table
    order = table.append_column("_ok", pc.equal(table["status"], "ok"))
    keys = [("config_hash", "ascending")]
    if prefer_sweep is not None:
        order = order.append_column("_mine", pc.equal(order["sweep"], prefer_sweep))
        keys.append(("_mine", "descending"))
    order = order.sort_by([*keys, ("_ok", "descending"), ("finished_at", "descending")])
    hashes = order["config_hash"].to_numpy(zero_copy_only=False)
    keep = np.ones(len(hashes), dtype=bool)
    keep[1:] = hashes[1:] != hashes[:-1]
    return order.filter(keep).drop_columns([c for c in ("_ok", "_mine") if c in order.column_names])


class ResultStore:
    """Append finished results in batches; look them up by config hash."""

    def __init__(self, root: Path, flush_rows: int = 500, flush_s: float = 5.0):
        self.root = Path(root)
        self.flush_rows, self.flush_s = flush_rows, flush_s
        self.buffer: list[dict] = []
        self.first_buffered_at: float | None = None
        self.parts_written = 0
        self.error: str | None = None  # why the last flush failed (the sweep stops launching)

    # ---- writing ------------------------------------------------------------------------------
    def add(self, key: str, result: dict, status: str, job_info: dict) -> None:
        """Buffer one finished result; flushes when the batch is full or old enough."""
        self.buffer.append(to_row(key, result, status, job_info))
        if self.first_buffered_at is None:
            self.first_buffered_at = time.monotonic()
        self.maybe_flush()

    def maybe_flush(self) -> None:
        due = self.first_buffered_at is not None and (
            time.monotonic() - self.first_buffered_at >= self.flush_s
        )
        if len(self.buffer) >= self.flush_rows or (self.buffer and due):
            self.flush()

    def flush(self) -> None:
        """Write the buffered results as one part (raises UserError when the store cannot take
        it: the results stay buffered, nothing half-written is left)."""
        if not self.buffer:
            return
        table = pa.Table.from_pylist(self.buffer, schema=SCHEMA)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            write_part(_new_part(self.root), table)
        except OSError as exc:
            self.error = (
                f"cannot write results to the store {self.root}: {exc.strerror or exc} "
                f"({len(self.buffer)} results not stored; finished results before them are kept)"
            )
            raise UserError(self.error) from None
        self.buffer, self.first_buffered_at = [], None
        self.parts_written += 1
        self.compact()

    # ---- reading ------------------------------------------------------------------------------
    def parts(self) -> list[Path]:
        return sorted(self.root.glob("part-*.parquet"))

    def _read(self, columns: list[str] | None, filters=None) -> pa.Table:
        """Every part's rows (a part removed by a concurrent compaction: list again)."""
        for _ in range(5):
            try:
                tables = [pq.read_table(p, columns=columns, filters=filters) for p in self.parts()]
                break
            except FileNotFoundError:
                continue
        else:
            raise UserError(f"the store {self.root} kept changing while it was read")
        schema = _schema(columns)
        if not tables:
            return schema.empty_table()
        return pa.concat_tables([t.cast(schema) for t in tables])

    def index(self) -> set[str]:
        """The config hashes with an ok result: what a resume skips. Reads two columns."""
        self.migrate_json()
        table = self._read(["config_hash", "status"])
        ok = table.filter(pc.equal(table["status"], "ok"))["config_hash"]
        return set(ok.to_pylist())

    def rows(
        self, keys: Iterable[str], columns: list[str] | None = None, prefer_sweep: str | None = None
    ) -> pa.Table:
        """The winner row per config hash among keys (see winners), with the columns asked for
        and those the choice needs."""
        keys = list(keys)
        cols = None
        if columns is not None:
            cols = list(dict.fromkeys(["config_hash", "status", "finished_at", "sweep", *columns]))
        if not keys:
            return _schema(cols).empty_table()
        return winners(self._read(cols, filters=[("config_hash", "in", keys)]), prefer_sweep)

    def get_many(
        self, keys: Iterable[str], columns: list[str] | None = None, prefer_sweep: str | None = None
    ) -> dict[str, dict]:
        """rows() as dicts, by config hash."""
        return {r["config_hash"]: r for r in self.rows(keys, columns, prefer_sweep).to_pylist()}

    def results(self, keys: Iterable[str]) -> dict[str, dict]:
        """Full result dicts of the ok results among keys."""
        rows = self.get_many(keys, [c for c in SCHEMA.names if c != "log"])
        return {k: to_result(r) for k, r in rows.items() if r["status"] == "ok"}

    # ---- keeping the files bounded ------------------------------------------------------------
    def compact(self, force: bool = False) -> bool:
        """Merge the small parts into one when there are more than MAX_PARTS (or force). Under a
        lock; the merged part is written before the parts it replaces are removed, so a crash
        leaves duplicates (read as one) and never loses a row."""
        small = self._small_parts()
        if len(small) < 2 or (len(small) <= MAX_PARTS and not force):
            return False
        try:
            with FileLock(str(self.root / ".compact.lock"), timeout=0):
                small = self._small_parts()  # parts vanish only under this lock
                if len(small) < 2:
                    return False
                table = pa.concat_tables([pq.read_table(p).cast(SCHEMA) for p in small])
                try:
                    write_part(_new_part(self.root), winners(table))
                except OSError:  # no room to merge (a full disk): the parts stay as they are
                    return False
                for p in small:
                    p.unlink(missing_ok=True)
                fsync_dir(self.root)
                return True
        except Timeout:  # another driver is compacting
            return False

    def forget(self, keys: Iterable[str]) -> int:
        """Remove every row of these config hashes (their jobs run again); returns rows removed.
        Each part holding one is rewritten without it, under the compaction lock."""
        keys = list(keys)
        removed = 0
        with FileLock(str(self.root / ".compact.lock")):
            for part in self.parts():
                table = pq.read_table(part).cast(SCHEMA)
                hit = pc.is_in(table["config_hash"], pa.array(keys, pa.string()))
                n = pc.sum(hit).as_py() or 0
                if n:
                    kept = table.filter(pc.invert(hit))
                    if kept.num_rows:
                        write_part(_new_part(self.root), kept)
                    part.unlink()
                    removed += n
        return removed

    def _small_parts(self) -> list[Path]:
        small = []
        for p in self.parts():
            try:
                if p.stat().st_size < SMALL_PART_BYTES:
                    small.append(p)
            except FileNotFoundError:  # compacted away by another driver meanwhile
                continue
        return small

    def migrate_json(self) -> int:
        """Move results of the JSON store (`<hash>.json`, one per result) into a Parquet part,
        re-keyed by today's config hash; the JSON files are removed once the part is on disk."""
        from mlp.data.fingerprint import content_fingerprint

        files = sorted(self.root.glob("*.json")) if self.root.is_dir() else []
        if not files:
            return 0
        with FileLock(str(self.root / ".compact.lock")):
            files = [f for f in files if f.exists()]
            rows = []
            for f in files:
                try:
                    result = json.loads(f.read_text())
                    cfg = result["config"]
                except (OSError, ValueError, KeyError, TypeError):
                    continue  # unreadable: left in place
                root = (cfg.get("data") or {}).get("root")
                fingerprint = content_fingerprint(root) if root else None
                job = result.get("sweep_job") or {}
                info = {
                    "sweep": job.get("sweep_dir"),
                    "job": job.get("num"),
                    "stage": job.get("stage"),
                    "overrides": job.get("overrides"),
                }
                rows.append((f, to_row(config_hash(cfg, fingerprint), result, "ok", info)))
            if rows:
                write_part(
                    _new_part(self.root),
                    pa.Table.from_pylist([r for _, r in rows], schema=SCHEMA),
                )
                for f, _ in rows:
                    f.unlink(missing_ok=True)
        print(
            f"result store: moved {len(rows)} JSON results into Parquet ({self.root})",
            file=sys.stderr,
        )
        return len(rows)
