"""Sweep figures: a 6-job λ sweep on Ray (runners/sweep.py) against the same jobs run one
after another (runners/train.py, one process each), Ray start-up, per-job overhead, and the
peak memory of the whole sweep (summed PSS of the driver's process tree: driver, Ray's
GCS/raylet/agents and the workers, so shared memory-mapped pages are counted once)."""

from __future__ import annotations

import csv
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlp.bench.table import Row

ROOT = Path(__file__).resolve().parents[2]
GRID = ("1e-5", "1e-4", "1e-3", "1e-2", "1e-1", "1")


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    todo, seen = [root], []
    while todo:
        pid = todo.pop()
        seen.append(pid)
        todo.extend(children.get(pid, []))
    return seen


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_sampling(cmd: list[str], interval_s: float = 0.25) -> tuple[float, float, int, int]:
    """Run cmd; (wall s, peak summed PSS GiB of its process tree, processes at that peak, exit code)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak, peak_n = 0, 0
    while proc.poll() is None:
        pids = process_tree(proc.pid)
        total = sum(pss_kib(p) for p in pids)
        if total > peak:
            peak, peak_n = total, len(pids)
        time.sleep(interval_s)
    return time.perf_counter() - t0, peak / 1024**2, peak_n, proc.returncode


def available() -> str | None:
    """None when runners/sweep.py is there, else why not."""
    if not (ROOT / "runners" / "sweep.py").is_file():
        return "sweep machinery not available (runners/sweep.py missing)"
    return None


def measure(experiment: str, data: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp_name:
        tmp = Path(tmp_name)
        sweep_dir = tmp / "ray"
        cmd = [
            sys.executable,
            "runners/sweep.py",
            "-m",
            f"experiment={experiment}",
            *data,
            f"lambda={','.join(GRID)}",
            "seed=0",
            f"hydra.sweep.dir={sweep_dir}",
            f"sweep.store={tmp / 'store'}",
            "sweep.force=true",
            "sweep.progress=false",
        ]
        ray_wall, peak_gib, _, code = run_sampling(cmd)
        if code != 0 or not (sweep_dir / "results.csv").is_file():
            raise RuntimeError(f"sweep failed (exit {code}): {' '.join(cmd)}")
        summary = json.loads((sweep_dir / "sweep.json").read_text())
        rows = list(csv.DictReader((sweep_dir / "results.csv").open()))
        seq_wall = 0.0
        for i, lam in enumerate(GRID):
            t0 = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "runners/train.py",
                    f"experiment={experiment}",
                    *data,
                    f"lambda={lam}",
                    "seed=0",
                    f"hydra.run.dir={tmp / 'seq' / str(i)}",
                ],
                cwd=ROOT,
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            seq_wall += time.perf_counter() - t0
    return {
        "jobs": len(rows),
        "ok": sum(r["status"] == "ok" for r in rows),
        "ray_wall_s": ray_wall,
        "seq_wall_s": seq_wall,
        "ray_start_s": summary.get("ray_start_s"),
        "startup_to_first_job_s": summary.get("startup_to_first_job_s"),
        "overhead_s": statistics.median(float(r["wall_s"]) - float(r["train_s"]) for r in rows),
        "sum_train_s": sum(float(r["train_s"]) for r in rows),
        "peak_pss_gib": peak_gib,
    }


def memory(data: list[str], sweep_data: str, cycles: int = 1) -> float:
    """Peak summed PSS (GiB) of a sweep of two `final`-sized jobs side by side, with the data
    shipped through Ray's object store or loaded by each task from its path (docs/cluster.md)."""
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp_name:
        tmp = Path(tmp_name)
        cmd = [
            sys.executable,
            "runners/sweep.py",
            "-m",
            "experiment=final",
            *data,
            "seed=0,1",
            f"train.cycles={cycles}",
            f"hydra.sweep.dir={tmp / 'sweep'}",
            f"sweep.store={tmp / 'store'}",
            "sweep.force=true",
            "sweep.progress=false",
            "sweep.ray.num_cpus=2",
            f"sweep.data={sweep_data}",
        ]
        _, peak_gib, _, code = run_sampling(cmd)
    if code != 0:
        raise RuntimeError(f"sweep failed (exit {code}): {' '.join(cmd)}")
    return peak_gib


# --quick: 5 synthetic batches of 800 (lambda_coarse trains on batches 1-5) and a smaller hold-out
QUICK_SEARCH_DATA = [
    "data=synthetic",
    "data.n_train=4000",
    "data.n_test=1000",
    "data.batch_size=800",
    "split.val_holdout=500",
]


def part_sweep(args, rows: list[Row]) -> None:
    why = available()
    if why:
        rows.append(Row("sweep", "6-job sweep on Ray", float("nan"), "s", why))
        return
    data = QUICK_SEARCH_DATA if args.quick else ["data=cifar10_jpeg"]
    try:
        m = measure("lambda_coarse", data)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        rows.append(
            Row(
                "sweep",
                "6-job sweep on Ray",
                float("nan"),
                "s",
                f"sweep machinery not usable: {exc}",
            )
        )
        return
    what = f"{m['jobs']} lambda_coarse jobs ({m['ok']} ok), {' '.join(data)}"
    rows.append(Row("sweep", "6-job sweep on Ray: wall", m["ray_wall_s"], "s", what))
    rows.append(
        Row(
            "sweep",
            "same 6 jobs one after another (runners/train.py): wall",
            m["seq_wall_s"],
            "s",
            f"ratio sequential/Ray {m['seq_wall_s'] / m['ray_wall_s']:.2f}×",
        )
    )
    rows.append(
        Row(
            "sweep",
            "Ray start-up",
            m["ray_start_s"],
            "s",
            f"first job started {m['startup_to_first_job_s']:.1f} s after launch",
        )
    )
    rows.append(
        Row(
            "sweep",
            "per-job overhead (median wall_s − train_s)",
            m["overhead_s"],
            "s",
            f"sum of train_s {m['sum_train_s']:.1f} s",
        )
    )
    rows.append(
        Row(
            "sweep",
            "peak memory of the sweep (PSS, every process)",
            m["peak_pss_gib"],
            "GiB",
            "driver + Ray processes + workers, sampled every 0.25 s",
        )
    )
    if args.quick:
        return
    for sweep_data in ("object_store", "path"):
        rows.append(
            Row(
                "sweep",
                f"peak memory, 2 final-sized jobs (1 cycle), sweep.data={sweep_data}",
                memory(data, sweep_data),
                "GiB",
                "PSS of every process, sampled every 0.25 s",
            )
        )
