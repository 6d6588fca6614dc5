"""The store seen from the sweep command (real Ray: the suite's shared head): large sweeps leave
folders only for failed jobs, a resume writes nothing per job, a dry run starts nothing, any
job's folder comes back with `mlp-job`, the data's content keys its results, a full disk is one
line, and two sweeps on one store at once lose nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sweep_support import ROOT, joining, ray_processes, run_sweep, summary, venv_env, wait_gone
from test_core_data_official import make_batches, write_folder

from mlp.bench.sweep_scale import TINY as SMALLEST_JOB
from mlp.sweep.store import ResultStore

pytestmark = [pytest.mark.slow, pytest.mark.ray]

TINY = [*SMALLEST_JOB, "sweep.progress=false"]  # the runner's smallest job (mlp-bench's)


def listing(folder) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_large_sweep_keeps_failed_folders_only_and_resume_writes_nothing(tmp_path, shared_ray):
    # 6 jobs above job_files_auto_max=4: jobs with train.batch_size=500 (> 90 images) fail
    args = ["-m", *TINY, "seed=0,1,2", "train.batch_size=10,500", "sweep.job_files_auto_max=4"]
    args += joining(shared_ray)
    first = run_sweep(tmp_path, *args)
    assert first.returncode == 1 and "3 job(s) failed" in first.stderr, first.stderr
    table = pd.read_csv(tmp_path / "sw" / "results.csv", dtype={"dir": str})
    assert len(table) == 6 and sorted(table["status"]) == ["failed"] * 3 + ["ok"] * 3
    failed_dirs = {str(d) for d in table.loc[table["status"] == "failed", "dir"]}
    folders = {p.parent.name for p in (tmp_path / "sw").glob("*/failed.json")}
    assert folders == failed_dirs and not list((tmp_path / "sw").glob("*/result.json"))
    assert table.loc[table["status"] == "ok", "dir"].isna().all()

    # the same sweep in a new folder: the ok jobs are found in the store, the failed run again;
    # only the sweep's own tables and the failed jobs' folders are written
    again = run_sweep(tmp_path, *args, sweep_dir="sw2")
    assert again.returncode == 1
    s = summary(tmp_path / "sw2")
    assert (s["cached"], s["ran"], s["failed"]) == (3, 3, 3)
    files = listing(tmp_path / "sw2")
    per_job = {f for f in files if "/" in f}
    assert {f.split("/")[0] for f in per_job} == failed_dirs
    assert {f for f in files if "/" not in f} == {
        "results.csv",
        "results.parquet",
        "sweep.json",
        "multirun.yaml",
    }
    parquet = pd.read_parquet(tmp_path / "sw2" / "results.parquet")
    ok = parquet[parquet["status"] == "cached"]
    assert len(ok) == 3 and ok["result"].notna().all() and ok["config"].notna().all()
    first_ok = table[table["status"] == "ok"].set_index("config_hash")["val_acc"]
    assert ok.set_index("config_hash")["val_acc"].to_dict() == first_ok.to_dict()

    # mlp-job writes an ok job's folder from the store, as a small sweep would have
    job = int(ok["job"].iloc[0])
    out = subprocess.run(
        [sys.executable, str(ROOT / "runners" / "job.py"), str(tmp_path / "sw2"), str(job)],
        capture_output=True,
        text=True,
        env=venv_env(),
    )
    assert out.returncode == 0, out.stderr
    folder = tmp_path / "sw2" / str(job)
    assert listing(folder) == {
        ".hydra/config.yaml",
        ".hydra/hydra.yaml",
        ".hydra/overrides.yaml",
        "job.log",
        "result.json",
    }
    result = json.loads((folder / "result.json").read_text())
    assert result["val_acc"] == ok["val_acc"].iloc[0] and result["history"]
    assert json.loads(ok["overrides"].iloc[0]) == [
        line.strip()[2:] for line in (folder / ".hydra" / "overrides.yaml").read_text().splitlines()
    ]


def test_dry_run_counts_without_ray_or_files(tmp_path, shared_ray):
    done = run_sweep(tmp_path, "-m", *TINY, "seed=0,1", *joining(shared_ray))
    before = ray_processes(tmp_path)
    assert done.returncode == 0, done.stderr
    dry = run_sweep(tmp_path, "-m", *TINY, "seed=range(0,5)", "sweep.dry_run=true", sweep_dir="d")
    assert dry.returncode == 0, dry.stderr
    assert "dry run: 5 jobs, 2 stored, 3 to run" in dry.stdout
    assert not (tmp_path / "d").exists()
    assert not wait_gone(ray_processes(tmp_path) - before)


def _official(folder, seed: int):
    return write_folder(folder, make_batches(np.random.default_rng(seed)))


def test_the_data_content_not_its_path_keys_results(tmp_path, shared_ray):
    data = _official(tmp_path / "cifar", 0)
    official = [
        "-m",
        "experiment=lambda_coarse",
        "data=cifar10",
        "data.batch_size=12",
        "data.download.enabled=false",
        "split.val_holdout=10",
        "train.n_s=1",
        "train.batch_size=10",
        "train.cycles=1",
        "seed=0",
        *joining(shared_ray),
    ]
    first = run_sweep(tmp_path, *official, f"data.root={data}", sweep_dir="a")
    assert first.returncode == 0 and summary(tmp_path / "a")["ran"] == 1, first.stderr
    moved = tmp_path / "elsewhere" / "cifar"
    shutil.copytree(data, moved)  # the same files under another path (another node's volume)
    same = run_sweep(tmp_path, *official, f"data.root={moved}", sweep_dir="b")
    assert same.returncode == 0 and summary(tmp_path / "b")["cached"] == 1, same.stderr
    _official(data, 1)  # new content at the first path: its result is not served again
    changed = run_sweep(tmp_path, *official, f"data.root={data}", sweep_dir="c")
    assert changed.returncode == 0 and summary(tmp_path / "c")["ran"] == 1, changed.stderr
    a, c = (pd.read_csv(tmp_path / d / "results.csv") for d in "ac")
    assert a["config_hash"][0] != c["config_hash"][0]


def test_a_full_disk_is_one_line_and_keeps_what_was_written(tmp_path, shared_ray):
    """The store on a 200 KiB tmpfs (a mount namespace of the sweep's own): launching stops with
    one error line, the parts already written stay whole, a re-run elsewhere resumes from them."""
    store = tmp_path / "small"
    store.mkdir()
    cmd = [
        sys.executable,
        str(ROOT / "runners" / "sweep.py"),
        "-m",
        *TINY,
        "seed=range(0,400)",
        *joining(shared_ray),
        "sweep.store_flush_rows=20",
        "sweep.job_files=none",
        f"sweep.store={store}",
        f"hydra.sweep.dir={tmp_path / 'sw'}",
    ]
    script = f'mount -t tmpfs -o size=200k tmpfs {store} && exec "$@"'
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *cmd],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=venv_env(),
        timeout=600,
    )
    if "unshare failed" in proc.stderr or "mount: " in proc.stderr:
        pytest.skip(f"no mount namespace here: {proc.stderr.strip()[:200]}")
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert proc.returncode != 0 and len(errors) == 1, proc.stderr[-2000:]
    assert "cannot write results to the store" in errors[0] and "No space left" in errors[0]
    assert "Traceback" not in proc.stderr


def test_two_sweeps_on_one_store_at_once_lose_nothing(tmp_path, shared_ray):
    env = venv_env()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "runners" / "sweep.py"),
                "-m",
                *TINY,
                f"seed=range({lo},{lo + 30})",
                *joining(shared_ray),
                "sweep.store_flush_rows=4",
                "sweep.job_files=none",
                f"sweep.store={tmp_path / 'store'}",
                f"hydra.sweep.dir={tmp_path / name}",
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, lo in (("a", 0), ("b", 20))  # seeds 20-29 in both
    ]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
    index = ResultStore(tmp_path / "store").index()
    hashes = set()
    for name in "ab":
        table = pd.read_csv(tmp_path / name / "results.csv")
        assert len(table) == 30 and set(table["status"]) <= {"ok", "cached"}
        hashes |= set(table["config_hash"])
    assert len(hashes) == 50 and hashes <= index
