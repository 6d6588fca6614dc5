"""Measure what tracking costs a sweep, run under `flock /tmp/cpu.lock`:

  python runners/measure_tracking.py [--rounds 2] [--variants none,mlflow,...] [key=value ...]

Runs the study's λ search (48 jobs, every job rerun: sweep.force=true) without tracking (none),
with `+tracking=mlflow` (its default SQLite store, kept in --out across rounds), with MLflow's
sweep run only (mlflow-sweep: max_job_runs=0, as above the limit) and with
`+tracking=tensorboard`, in rotating order. Data: synthetic unless a `data=...` argument says
otherwise; extra key=value arguments go to every sweep. Prints each sweep's wall, its difference
from the untracked sweep of the same round, and the tracking thread's own figures
(<sweep dir>/tracking_<name>.json: setup, CPU per job, the wait at the end, CPU in all);
the rows as JSON under --out.
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
    "mlflow-sweep": ["+tracking=mlflow", "hydra.callbacks.mlflow.max_job_runs=0"],
    "tensorboard": ["+tracking=tensorboard"],
}
COLUMNS = ("setup_s", "log_cpu_ms_per_job", "wait_at_end_s", "cpu_s")


def one_sweep(out: Path, variant: str, r: int, extra: list[str]) -> dict:
    sweep_dir = out / f"{variant}_{r}"
    data = [] if any(a.startswith("data=") for a in extra) else ["data=synthetic"]
    cmd = [sys.executable, str(ROOT / "runners" / "sweep.py"), "search=lambda", *data, *extra]
    cmd += ["sweep.force=true", "sweep.progress=false", f"sweep.store={out / 'store'}"]
    cmd += [*VARIANTS[variant], f"hydra.sweep.dir={sweep_dir}"]
    if variant.startswith("mlflow"):
        cmd.append(f"hydra.callbacks.mlflow.tracking_uri=sqlite:///{out / 'mlflow.db'}")
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    row = {"variant": variant, "round": r, "wall_s": time.perf_counter() - t0}
    row["jobs"] = json.loads((sweep_dir / "sweep.json").read_text())["jobs"]
    own = sweep_dir / f"tracking_{variant.split('-')[0]}.json"
    if own.is_file():
        row.update({k: v for k, v in json.loads(own.read_text()).items() if k in COLUMNS})
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
    names = args.variants.split(",")
    if "none" not in names or not set(names) <= set(VARIANTS):
        parser.error(f"--variants: 'none' and any of {', '.join(VARIANTS)}")
    rows = []
    print(f"{'variant':12} {'round':>5} {'wall s':>7} {'Δ wall %':>8} " + " ".join(COLUMNS))
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]  # rotate: no variant always first
        mine = [one_sweep(args.out, variant, r, extra) for variant in order]
        untracked = next(row["wall_s"] for row in mine if row["variant"] == "none")
        for row in mine:
            row["overhead_pct"] = 100 * (row["wall_s"] / untracked - 1)
            own = " ".join(f"{row.get(k, 0):{len(k)}.2f}" for k in COLUMNS)
            print(
                f"{row['variant']:12} {r:5d} {row['wall_s']:7.1f} {row['overhead_pct']:8.1f} {own}"
            )
        rows += mine
    for variant in (n for n in names if n != "none"):
        pcts = [row["overhead_pct"] for row in rows if row["variant"] == variant]
        print(f"{variant}: median Δ wall {statistics.median(pcts):.1f} % ({len(pcts)} rounds)")
    args.out.mkdir(parents=True, exist_ok=True)
    saved = args.out / f"tracking_{time.strftime('%Y-%m-%dT%H-%M-%S')}.json"
    saved.write_text(json.dumps(rows, indent=1))
    print(f"-> {saved}")


if __name__ == "__main__":
    main()
