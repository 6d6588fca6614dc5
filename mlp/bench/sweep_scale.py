"""Sweep-scale figures: N tiny jobs through `mlp-sweep` as a user runs them, then the same
command resumed into a new folder, `mlp-report` over the sweep, and a dry run of 1,000,000 jobs.

The tiny job is the smallest the runner allows: 90 synthetic training images, 2 SGD steps of
10 images, evaluation on 10 validation and 10 test images (TINY). Per size: wall against the
ideal (Ray start-up + Σ task wall / CPUs) in ms per job, the files and bytes left (sweep folder
and store), the driver's peak RSS, the resume's wall and the report's wall.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from mlp.bench.e2e import _PEAK_TRAMPOLINE
from mlp.bench.table import Row

TINY = [
    "experiment=lambda_coarse",
    "data=synthetic",
    "data.n_train=100",
    "data.n_test=10",
    "data.batch_size=20",
    "split.val_holdout=10",
    "train.n_s=1",
    "train.batch_size=10",
    "train.cycles=1",
]
SIZES = (10_000,)
QUICK_SIZES = (40,)
DRY_RUN_JOBS = 1_000_000


def _run(module: str, args: list[str], cwd: Path, peak_file: Path) -> tuple[float, float, str]:
    """(wall s, peak RSS GiB, stdout) of `python -m module ARGS` (raises on a non-zero exit)."""
    env = dict(os.environ, MLP_BENCH_PEAK_FILE=str(peak_file), RAY_ADDRESS="")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _PEAK_TRAMPOLINE, module, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or [""])[-1]
        raise RuntimeError(f"{module} exit {proc.returncode}: {tail}")
    return wall, int(peak_file.read_text()) / 1024**2, proc.stdout


def _files_and_bytes(*roots: Path) -> tuple[int, int]:
    files = [p for root in roots for p in root.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def sweep_args(tmp: Path, n: int, folder: str, cpus: int) -> list[str]:
    return [
        "-m",
        *TINY,
        f"seed=range(0,{n})",
        f"sweep.ray.num_cpus={cpus}",
        "sweep.progress=false",
        f"hydra.sweep.dir={tmp / folder}",
        f"sweep.store={tmp / 'store'}",
    ]


def measure(n: int, cpus: int) -> dict:
    """One sweep of n tiny jobs, its resume into a new folder, the report over it."""
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as name:
        tmp = Path(name)
        peak = tmp / "peak_kib"
        wall, rss, _ = _run("mlp.commands.sweep", sweep_args(tmp, n, "sw", cpus), tmp, peak)
        s = json.loads((tmp / "sw" / "sweep.json").read_text())
        table = pd.read_parquet(tmp / "sw" / "results.parquet", columns=["status", "wall_s"])
        files, size = _files_and_bytes(tmp / "sw", tmp / "store")
        ideal = s["ray_start_s"] + table["wall_s"].sum() / cpus
        resume, resume_rss, _ = _run(
            "mlp.commands.sweep", sweep_args(tmp, n, "sw2", cpus), tmp, peak
        )
        report, _, _ = _run(
            "mlp.commands.report", [str(tmp / "sw"), "--out", str(tmp / "report")], tmp, peak
        )
    return {
        "jobs": len(table),
        "ok": int((table["status"] == "ok").sum()),
        "wall_s": wall,
        "ideal_s": ideal,
        "over_ms": 1000 * (wall - ideal) / n,
        "files": files,
        "mb": size / 1e6,
        "rss_gib": rss,
        "resume_s": resume,
        "resume_rss_gib": resume_rss,
        "report_s": report,
        "task_mean_ms": 1000 * table["wall_s"].mean(),
    }


def dry_run(n: int) -> tuple[float, float, str]:
    with tempfile.TemporaryDirectory(prefix="bench-dry-") as name:
        tmp = Path(name)
        args = [*sweep_args(tmp, n, "sw", 1), "sweep.dry_run=true"]
        wall, rss, out = _run("mlp.commands.sweep", args, tmp, tmp / "peak_kib")
    return wall, rss, out.strip().splitlines()[-1]


def part_sweep_scale(args, rows: list[Row]) -> None:
    cpus = os.cpu_count() or 1
    sizes: tuple[int, ...] = QUICK_SIZES if args.quick else SIZES
    if getattr(args, "scale_sizes", None):
        sizes = tuple(int(n) for n in str(args.scale_sizes).split(",") if n.strip())
    for n in sizes:
        label = f"{n:,} tiny jobs"
        try:
            m = measure(n, cpus)
        except RuntimeError as exc:
            rows.append(Row("sweep-scale", f"{label}: sweep", float("nan"), "s", f"failed: {exc}"))
            continue
        what = (
            f"{m['ok']}/{m['jobs']} ok, {cpus} CPUs, wall {m['wall_s']:.1f} s, ideal "
            f"{m['ideal_s']:.1f} s, mean task {m['task_mean_ms']:.1f} ms"
        )
        for name, value, unit, note in (
            ("driver overhead per job (wall − ideal) / N", m["over_ms"], "ms", what),
            ("files left (sweep folder + store)", m["files"], "files", f"{m['mb']:.1f} MB"),
            ("driver peak RSS", m["rss_gib"], "GiB", ""),
            (
                "resume into a new folder (whole command)",
                m["resume_s"],
                "s",
                f"RSS {m['resume_rss_gib']:.2f} GiB",
            ),
            ("mlp-report over the sweep (whole command)", m["report_s"], "s", ""),
        ):
            rows.append(Row("sweep-scale", f"{label}: {name}", value, unit, note))
    n = QUICK_SIZES[0] * 10 if args.quick else DRY_RUN_JOBS
    wall, rss, line = dry_run(n)
    rows.append(Row("sweep-scale", f"{n:,}-job dry run (whole command)", wall, "s", line))
    rows.append(Row("sweep-scale", f"{n:,}-job dry run: peak RSS", rss, "GiB", ""))
