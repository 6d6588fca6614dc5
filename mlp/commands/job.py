"""Write one sweep job's folder from the result store: `mlp-job SWEEP_DIR JOB [--out DIR]`.

Large sweeps write no per-job folders (`sweep.job_files`, docs/sweeps.md); this makes any job's
folder as a small sweep would have left it: `.hydra/{config,hydra,overrides}.yaml` (composed
again from the job's overrides), `result.json` (or `failed.json`) and `job.log`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlp.atomic import write_json_atomic
from mlp.cli import CONF_MODULE, compose_error, fail
from mlp.errors import UserError


def _job_row(sweep_dir: Path, num: int) -> dict:
    table_path = sweep_dir / "results.parquet"
    if not table_path.is_file():
        raise UserError(f"{sweep_dir}: no results.parquet (not a finished sweep folder)")
    table = pq.read_table(table_path, columns=["job", "config_hash", "status", "overrides"])
    rows = table.filter(pc.equal(table["job"], num)).to_pylist()
    if not rows:
        last = pc.max(table["job"]).as_py()
        raise UserError(f"job {num} is not in {table_path} (jobs 0..{last})")
    return rows[0]


def materialise(sweep_dir: Path, num: int, out: Path | None, store_dir: Path | None) -> Path:
    """The job's folder (default <sweep dir>/<job>); returns its path."""
    from hydra import compose, initialize_config_module
    from omegaconf import open_dict

    from mlp.sweep.job_folder import write_job_folder
    from mlp.sweep.store import ResultStore, to_result

    row = _job_row(sweep_dir, num)
    summary = sweep_dir / "sweep.json"
    if store_dir is None:
        try:
            store_dir = Path(json.loads(summary.read_text())["store"])
        except (OSError, ValueError, KeyError):
            raise UserError(f"{summary} does not name the store; give --store DIR") from None
    stored = ResultStore(store_dir).get_many([row["config_hash"]], prefer_sweep=str(sweep_dir))
    if row["config_hash"] not in stored:
        raise UserError(f"job {num} ({row['config_hash']}) is not in the store {store_dir}")
    store_row = stored[row["config_hash"]]
    result = to_result(store_row)
    overrides = json.loads(row["overrides"])
    job_dir = out or sweep_dir / str(num)
    try:
        with initialize_config_module(config_module=CONF_MODULE, version_base="1.3"):
            cfg = compose(config_name="sweep", overrides=overrides, return_hydra_config=True)
    except Exception as exc:
        raise UserError(compose_error(exc)) from None
    with open_dict(cfg):
        cfg.hydra.overrides.task = overrides
        cfg.hydra.job.num = num
        cfg.hydra.job.id = str(num)
    write_job_folder(job_dir, cfg, store_row.get("log"))
    name = "failed.json" if result["status"] == "failed" else "result.json"
    write_json_atomic(job_dir / name, result)
    return job_dir


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sweep_dir", type=Path, help="the sweep folder (holds results.parquet)")
    p.add_argument("job", type=int, help="the job number (results.csv's first column)")
    p.add_argument("--out", type=Path, default=None, help="where to write (default SWEEP_DIR/JOB)")
    p.add_argument("--store", type=Path, default=None, help="the store (default: sweep.json's)")
    args = p.parse_args(sys.argv[1:])
    try:
        print(materialise(args.sweep_dir.resolve(), args.job, args.out, args.store))
    except UserError as exc:
        fail(str(exc))


if __name__ == "__main__":
    main()
