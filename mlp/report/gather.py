"""Find every result under some folders, check it, and tabulate it: each sweep's
results.parquet (one row per job), and result.json files outside sweeps (mlp-train runs), with
the λ-search and reproduction summaries.

The report must be a pure function of these files, so everything here is sorted by path and
nothing depends on time, the environment or the order the file system lists things in.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mlp.result_schema import is_placement_key
from mlp.sweep.store import to_result
from mlp.version import RESULT_VERSION

RESULT_NAME = "result.json"
TABLE_NAME = "results.parquet"
SEARCH_NAME = "lambda_search.json"
REPRODUCE_NAME = "reproduce.json"
REQUIRED = ("experiment", "seed", "lambda", "data_source", "synthetic", "config")
REQUIRED_TRAIN = (
    "history",
    "train_acc",
    "val_acc",
    "test_acc",
    "final_train_loss",
    "final_val_loss",
)
OK_STATUS = ("ok", "done", "success", "succeeded", "completed", "cached")


def is_neutral(key: str) -> bool:
    """Config keys left out when deciding "same configuration": the seed, and where/how a job ran."""
    return key == "seed" or is_placement_key(key)


@dataclass
class Gathered:
    runs: pd.DataFrame  # one row per usable result (duplicates dropped)
    results: dict[str, dict]  # path → the result dict (for histories, gradcheck tables)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, why it was skipped)
    # lambda_search.json files, "_path" and "_sweep_wall_s" (its sweep.json's wall_s) added
    searches: list[dict] = field(default_factory=list)
    reproductions: list[dict] = field(default_factory=list)  # reproduce.json files, "_path" added
    duplicates: int = 0
    rungs: int = 0  # rung results (search=halving): parts of runs, left out of the tables


def flatten(d: dict, prefix: str = "") -> dict:
    """{"train": {"n_s": 5}} → {"train.n_s": 5}; lists are kept as JSON text so they stay hashable."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif isinstance(v, list):
            out[key] = json.dumps(v, sort_keys=True)
        else:
            out[key] = v
    return out


def config_group(config: dict) -> str:
    """A short hash of the configuration without the seed: runs sharing it are seeds of one setting."""
    flat = {k: v for k, v in flatten(config).items() if not is_neutral(k)}
    return hashlib.sha1(json.dumps(flat, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _check(result, path: Path) -> str | None:
    """Why this result cannot be used, or None."""
    if not isinstance(result, dict):
        return "not a result object"
    status = result.get("status")
    if status is not None and str(status).lower() not in OK_STATUS:
        return f"job status {status!r}"
    if "version" not in result:
        return "no 'version' field (not a result of this project)"
    if result["version"] != RESULT_VERSION:
        return f"incompatible version {result['version']!r} (this report reads version {RESULT_VERSION})"
    missing = [k for k in REQUIRED if k not in result]
    if "gradcheck" not in result:
        missing += [k for k in REQUIRED_TRAIN if k not in result]
    if missing:
        return f"missing fields: {', '.join(missing)}"
    return _check_shapes(result)


HISTORY_KEYS = ("step", "train_loss", "train_cost", "train_acc", "val_loss", "val_cost", "val_acc")


def _check_shapes(result: dict) -> str | None:
    """The nested parts the tables and figures read: a history of records, or a gradcheck table."""
    if "gradcheck" in result:
        gc = result["gradcheck"]
        ok = (
            isinstance(gc, dict)
            and gc
            and all(
                isinstance(c, dict)
                and {"n_samples", "dims", "params"} <= set(c)
                and isinstance(c["params"], dict)
                and all(isinstance(v, dict) and "max_rel_error" in v for v in c["params"].values())
                for c in gc.values()
            )
        )
        return None if ok else "malformed 'gradcheck' table"
    h = result["history"]
    if not isinstance(h, list) or not h:
        return "empty or malformed 'history'"
    if not all(isinstance(r, dict) and all(k in r for k in HISTORY_KEYS) for r in h):
        return f"'history' records lack some of {', '.join(HISTORY_KEYS)}"
    return None


def _load(path: Path) -> tuple[dict | None, str | None]:
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"unreadable: {exc.__class__.__name__}"
    except json.JSONDecodeError as exc:
        return None, f"corrupt JSON ({exc.msg} at line {exc.lineno})"
    return obj, None


def _files(roots: list[Path], name: str, exclude: list[Path]) -> list[Path]:
    found = set()
    for root in roots:
        root = Path(root)
        candidates = [root] if root.is_file() else root.rglob(name)
        for p in candidates:
            if p.name != name or any(p.resolve().is_relative_to(e.resolve()) for e in exclude):
                continue
            found.add(p)
    return sorted(found, key=lambda p: p.as_posix())


def _row(path: str, r: dict) -> dict:
    cfg = r["config"]
    train = cfg.get("train", {})
    row = {
        "path": path,
        "experiment": r["experiment"],
        "kind": "gradcheck" if "gradcheck" in r else "train",
        "seed": int(r["seed"]),
        "lambda": float(r["lambda"]),
        "dtype": r.get("dtype"),
        "data_source": r["data_source"],
        "synthetic": bool(r["synthetic"]),
        "n_train": r.get("n_train"),
        "n_val": r.get("n_val"),
        "n_test": r.get("n_test"),
        "group": config_group(cfg),
        "n_s": r.get("n_s"),
        "steps": r.get("steps"),
        "cycles": train.get("cycles"),
        "eta_min": train.get("eta_min"),
        "eta_max": train.get("eta_max"),
        "eta": train.get("eta"),
        "epochs": train.get("epochs"),
        "batch_size": train.get("batch_size"),
        "schedule": train.get("schedule"),
        "train_s": r.get("train_s"),
        "wall_s": r.get("wall_s"),
    }
    for k in (
        "train_acc",
        "val_acc",
        "test_acc",
        "final_train_loss",
        "final_val_loss",
        "final_train_cost",
        "final_val_cost",
        "test_loss",
        "max_rel_error",
        "tolerance",
        "passed",
    ):
        row[k] = r.get(k)
    return row


def _display(path: Path, base: Path | None) -> str:
    """Paths relative to base (the folder the report runs from), never absolute: the report does
    not name this machine's folders."""
    return Path(os.path.relpath(path.resolve(), (base or Path.cwd()).resolve())).as_posix()


def _table_results(path: Path, shown: str) -> list[tuple[str, dict | None, str | None]]:
    """A sweep table's finished jobs as (path#job, result, problem)."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as exc:
        return [(shown, None, f"unreadable table ({exc.__class__.__name__})")]
    if "result" not in table.column_names or "status" not in table.column_names:
        return [(shown, None, "not a sweep table (no 'result' column)")]
    out: list[tuple[str, dict | None, str | None]] = []
    for row in table.to_pylist():
        if row["status"] in ("ok", "cached") and row.get("result"):
            out.append((f"{shown}#{row['job']}", to_result(row), None))
    return out


def _sweep_wall(folder: Path) -> float | None:
    """The wall time its sweep.json records, if it has one."""
    obj, err = _load(folder / "sweep.json") if (folder / "sweep.json").is_file() else (None, "")
    wall = obj.get("wall_s") if isinstance(obj, dict) and err is None else None
    return float(wall) if isinstance(wall, (int, float)) and _finite(wall) else None


def gather(roots: list[Path], exclude: Sequence[Path] = (), base: Path | None = None) -> Gathered:
    """Read every result below roots; unusable files become (path, reason) problems, never errors."""
    results: dict[str, dict] = {}
    rows: list[dict] = []
    problems: list[tuple[str, str]] = []
    tables = _files(roots, TABLE_NAME, list(exclude))
    swept = {t.parent.resolve() for t in tables}
    found: list[tuple[str, dict | None, str | None]] = []
    for table in tables:
        found += _table_results(table, _display(table, base))
    for path in _files(roots, RESULT_NAME, list(exclude)):
        if path.parent.parent.resolve() in swept:  # a sweep's job folder: its table has the job
            continue
        obj, err = _load(path)
        found.append((_display(path, base), obj, err))
    rungs = 0
    for shown, obj, err in found:
        if err is None and isinstance(obj, dict) and "rung" in obj:
            rungs += 1  # a part of a run (search=halving): its search's own section shows it
            continue
        err = err or _check(obj, Path(shown))
        if err or obj is None:
            problems.append((shown, err or "empty"))
            continue
        try:
            rows.append(_row(shown, obj))
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            problems.append((shown, f"malformed field ({exc.__class__.__name__}: {exc})"))
            continue
        results[shown] = obj
    runs = pd.DataFrame(rows, columns=list(_row("", _EXAMPLE).keys()))
    before = len(runs)
    # The same configuration and seed found twice (e.g. a single run and a sweep): keep the last path.
    runs = runs.drop_duplicates(subset=["experiment", "group", "seed"], keep="last").reset_index(
        drop=True
    )
    searches = []
    for path in _files(roots, SEARCH_NAME, list(exclude)):
        shown = _display(path, base)
        obj, err = _load(path)
        if err is None and not (isinstance(obj, dict) and _finite(obj.get("chosen_lambda"))):
            err = "no numeric 'chosen_lambda'"
        if err or obj is None:
            problems.append((shown, err or "empty"))
            continue
        searches.append({**obj, "_path": shown, "_sweep_wall_s": _sweep_wall(path.parent)})
    reproductions = []
    for path in _files(roots, REPRODUCE_NAME, list(exclude)):
        obj, err = _load(path)
        if err is None and isinstance(obj, dict) and isinstance(obj.get("invocations"), list):
            reproductions.append({**obj, "_path": _display(path, base)})
    return Gathered(
        runs=runs,
        results=results,
        problems=problems,
        searches=searches,
        reproductions=reproductions,
        duplicates=before - len(runs),
        rungs=rungs,
    )


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


_EXAMPLE = {
    "experiment": "",
    "seed": 0,
    "lambda": 0.0,
    "data_source": "",
    "synthetic": False,
    "config": {},
}
