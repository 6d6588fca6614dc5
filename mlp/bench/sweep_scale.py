"""Sweep-scale figures (issue 9): N tiny jobs through runners/sweep.py, this code and, where a
checkout of an older commit is given, that code side by side.

Per size: start → first job minus Ray start-up, driver overhead per job = (wall − Ray start-up −
Σ task wall / cluster CPUs) / jobs, and the driver's peak RSS (its own VmHWM, reported at exit).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlp.bench.e2e import _PEAK_TRAMPOLINE
from mlp.bench.table import Row

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "experiment=lambda_coarse",
    "data=synthetic",
    "data.n_train=1000",
    "data.n_test=200",
    "data.batch_size=200",
    "split.val_holdout=100",
    "train.n_s=1",
]
SIZES = (200, 1000, 5000)
# The current code runs as its module; an older checkout as its runners/sweep.py script.
_PATH_TRAMPOLINE = _PEAK_TRAMPOLINE.replace(
    "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)",
    "runpy.run_path(sys.argv[0], run_name='__main__')",
)
QUICK_SIZES = (40,)
OLD_MAX = 1000  # the old driver composes every job before the first starts: 5,000 takes too long


def run(root: Path, n: int, cpus: int) -> dict:
    """One sweep of n tiny jobs with the code checked out at root; its figures."""
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp_name:
        tmp = Path(tmp_name)
        peak_file = tmp / "peak_kib"
        cmd = [
            sys.executable,
            "-c",
            *(
                (_PEAK_TRAMPOLINE, "mlp.commands.sweep")
                if root == ROOT
                else (_PATH_TRAMPOLINE, "runners/sweep.py")
            ),
            "-m",
            *TINY,
            f"seed=range(0,{n})",
            f"sweep.ray.num_cpus={cpus}",
            "sweep.force=true",
            "sweep.progress=false",
            f"hydra.sweep.dir={tmp / 'sw'}",
            f"sweep.store={tmp / 'store'}",
        ]
        env = dict(os.environ, MLP_BENCH_PEAK_FILE=str(peak_file), RAY_ADDRESS="")
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or [""])[-1]
            raise RuntimeError(f"exit {proc.returncode}: {tail}")
        s = json.loads((tmp / "sw" / "sweep.json").read_text())
        with open(tmp / "sw" / "results.csv") as f:
            table = list(csv.DictReader(f))
        task_sum = sum(float(r["wall_s"]) for r in table if r["wall_s"])
        peak_gib = int(peak_file.read_text()) / 1024**2
    ok = sum(r["status"] == "ok" for r in table)
    return {
        "jobs": len(table),
        "ok": ok,
        "wall_s": wall,
        "ray_start_s": s["ray_start_s"],
        "first_job_s": s["startup_to_first_job_s"]
        - s["ray_start_s"]
        - (s.get("ray_start_began_after_s") or 0.0),
        "overhead_ms": 1000 * (wall - s["ray_start_s"] - task_sum / cpus) / len(table),
        "task_sum_s": task_sum,
        "peak_rss_gib": peak_gib,
    }


def old_checkout(commit: str, where: Path) -> Path | None:
    """A temporary `git worktree` of an older commit (None when git cannot make one)."""
    proc = subprocess.run(
        ["git", "worktree", "add", "--detach", str(where), commit],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return where if proc.returncode == 0 else None


def remove_checkout(where: Path) -> None:
    subprocess.run(
        ["git", "worktree", "remove", "--force", str(where)],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )


def part_sweep_scale(args, rows: list[Row]) -> None:
    cpus = os.cpu_count() or 1
    sizes: tuple[int, ...] = QUICK_SIZES if args.quick else SIZES
    if getattr(args, "scale_sizes", None):
        sizes = tuple(int(n) for n in str(args.scale_sizes).split(",") if n.strip())
    old_commit = None if args.quick else getattr(args, "old", None)
    with tempfile.TemporaryDirectory(prefix="bench-old-") as tmp:
        old_root = old_checkout(old_commit, Path(tmp) / "old") if old_commit else None
        try:
            for n in sizes:
                _size(rows, n, cpus, old_root if n <= OLD_MAX else None, old_commit)
        finally:
            if old_root is not None:
                remove_checkout(old_root)


def _size(
    rows: list[Row], n: int, cpus: int, old_root: Path | None, old_commit: str | None
) -> None:
    label = f"{n:,} tiny jobs"
    try:
        new = run(ROOT, n, cpus)
    except RuntimeError as exc:
        rows.append(Row("sweep-scale", f"{label}: sweep", float("nan"), "s", f"failed: {exc}"))
        return
    old = None
    if old_root is not None:
        try:
            old = run(old_root, n, cpus)
        except RuntimeError as exc:
            old = {"error": str(exc)}
    why_no_old = (
        "old code left out (takes too long)"
        if old_commit and n > OLD_MAX
        else ""
        if old_commit
        else "no old commit given"
    )

    def side(key: str, fmt: str) -> str:
        if old is None:
            return why_no_old
        if "error" in old:
            return f"{old_commit}: failed ({old['error']})"
        return f"{old_commit}: {fmt.format(old[key])}"

    what = (
        f"{new['ok']}/{new['jobs']} ok, {cpus} CPUs, wall {new['wall_s']:.1f} s, Ray start-up "
        f"{new['ray_start_s']:.1f} s, Σ task wall {new['task_sum_s']:.1f} s"
    )
    rows.append(
        Row(
            "sweep-scale",
            f"{label}: start → first job minus Ray start-up",
            new["first_job_s"],
            "s",
            f"target ≤ 3 s; {side('first_job_s', '{:.2f} s')}",
        )
    )
    rows.append(
        Row(
            "sweep-scale",
            f"{label}: driver overhead per job",
            new["overhead_ms"],
            "ms",
            f"target ≤ 5 ms; {side('overhead_ms', '{:.1f} ms')}; {what}",
        )
    )
    rows.append(
        Row(
            "sweep-scale",
            f"{label}: driver peak RSS",
            new["peak_rss_gib"],
            "GiB",
            f"target ≤ 1 GiB at 5,000; {side('peak_rss_gib', '{:.3f} GiB')}",
        )
    )
