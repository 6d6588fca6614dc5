"""Measure what tracking costs a sweep (issue 12), run under `flock /tmp/cpu.lock`:

  python runners/measure_tracking.py [--rounds 2] [--variants none,mlflow,...] [key=value ...]

Runs the study's λ search (48 jobs: 6 coarse λ + 10 fine λ, seeds 0-2) on synthetic data
without tracking (none), with `+tracking=mlflow` on its default SQLite store (mlflow), on
MLflow's legacy file store (mlflow-file, the default before), with MLflow's sweep run only
(mlflow-sweep: max_job_runs=0, as above the limit) and with `+tracking=tensorboard`,
in rotating order, every job rerun (sweep.force=true); the stores live in --out and are kept
across rounds (the first MLflow sweep into a new SQLite store also creates its tables).
Reports each sweep's wall, the difference against the untracked run of the same round, and the
trackers' own cost (<sweep dir>/tracking_<name>.json: setup, logging per job, the wait for the
tracking thread at the end, and the thread's CPU time, also as a share of the sweep's CPU:
cluster CPUs x the untracked wall). Extra key=value arguments go to every sweep. JSON under
outputs/sweeps/_measure/.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = {
    "none": [],
    "mlflow": ["+tracking=mlflow"],
    "mlflow-file": ["+tracking=mlflow"],
    "mlflow-sweep": ["+tracking=mlflow", "hydra.callbacks.mlflow.max_job_runs=0"],
    "tensorboard": ["+tracking=tensorboard"],
}
SEARCH = ["search=lambda", "data=synthetic", "sweep.force=true", "sweep.progress=false"]


def one_sweep(out: Path, variant: str, r: int, extra: list[str]) -> dict:
    sweep_dir = out / f"{variant}_{r}"
    cmd = [
        sys.executable,
        str(ROOT / "runners" / "sweep.py"),
        *SEARCH,
        *extra,
        *VARIANTS[variant],
        f"hydra.sweep.dir={sweep_dir}",
        f"sweep.store={out / 'store'}",
    ]
    store_new = None
    if variant in ("mlflow", "mlflow-sweep"):
        cmd.append(f"hydra.callbacks.mlflow.tracking_uri=sqlite:///{out / 'mlflow.db'}")
        store_new = not (out / "mlflow.db").exists()
    elif variant == "mlflow-file":
        cmd.append(f"hydra.callbacks.mlflow.tracking_uri={(out / 'mlruns').as_uri()}")
        store_new = not (out / "mlruns").exists()
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    summary = json.loads((sweep_dir / "sweep.json").read_text())
    row = {
        "variant": variant,
        "round": r,
        "wall_s": wall,
        "jobs": summary["jobs"],
        "ran": summary["ran"],
        "ray_start_s": summary["ray_start_s"],
        "startup_to_first_job_s": summary["startup_to_first_job_s"],
        "cluster_cpus": summary.get("cluster_cpus"),
        "task_wall_sum_s": summary.get("task_wall_sum_s"),
        "store_new": store_new,
    }
    own = sweep_dir / f"tracking_{variant.split('-')[0]}.json"
    if own.is_file():
        row.update(
            {f"tracker_{k}": v for k, v in json.loads(own.read_text()).items() if k != "tracker"}
        )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "outputs" / "sweeps" / "_measure" / "tracking"
    )
    args, extra = parser.parse_known_args()
    rows = []
    names = args.variants.split(",")
    if "none" not in names or not set(names) <= set(VARIANTS):
        parser.error(f"--variants: 'none' and any of {', '.join(VARIANTS)}")
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]  # rotate: no variant always first
        walls = {}
        for variant in order:
            row = one_sweep(args.out, variant, r, extra)
            walls[variant] = row["wall_s"]
            rows.append(row)
        for row in rows[-len(order) :]:
            row["overhead_s"] = row["wall_s"] - walls["none"]
            row["overhead_pct"] = 100 * row["overhead_s"] / walls["none"]
            row["overhead_ms_per_job"] = 1000 * row["overhead_s"] / row["jobs"]
            budget = (row.get("cluster_cpus") or 1) * walls["none"]  # CPU-seconds of the sweep
            row["tracker_cpu_pct"] = 100 * row.get("tracker_cpu_s", 0.0) / budget
    print(
        f"{'variant':12} {'round':>5} {'wall s':>8} {'Δ wall %':>9} {'log ms/job':>10} "
        f"{'cpu ms/job':>10} {'setup s':>8} {'end wait s':>10} {'thread cpu s':>12} {'cpu %':>6}"
    )
    for row in rows:
        print(
            f"{row['variant']:12} {row['round']:5d} {row['wall_s']:8.2f} {row['overhead_pct']:9.2f} "
            f"{row.get('tracker_log_ms_per_job', 0):10.1f} "
            f"{row.get('tracker_log_cpu_ms_per_job', 0):10.1f} "
            f"{row.get('tracker_setup_s', 0):8.2f} {row.get('tracker_wait_at_end_s', 0):10.3f} "
            f"{row.get('tracker_cpu_s', 0):12.2f} {row['tracker_cpu_pct']:6.2f}"
        )
    for variant in names:
        mine = [row for row in rows if row["variant"] == variant]
        if variant == "none" or not mine:
            continue
        med = statistics.median
        print(
            f"{variant}: median Δ wall {med(r['overhead_pct'] for r in mine):.2f} % of the "
            f"untracked sweep; tracking thread: median {med(r['tracker_log_ms_per_job'] for r in mine):.1f} "
            f"ms ({med(r['tracker_log_cpu_ms_per_job'] for r in mine):.1f} ms CPU) per job, "
            f"{med(r['tracker_cpu_s'] for r in mine):.2f} s CPU in all = "
            f"{med(r['tracker_cpu_pct'] for r in mine):.2f} % of the sweep's CPU"
        )
    out = args.out / f"tracking_{time.strftime('%Y-%m-%dT%H-%M-%S')}.json"
    out.write_text(json.dumps(rows, indent=1))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
