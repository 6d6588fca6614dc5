"""Measure the sweep figures of issue 3 side by side (run under `flock /tmp/cpu.lock`).

  python runners/measure_sweep.py fanout [--data cifar10_jpeg] [--rounds 2] [--set dtype=float64]
      # 6 lambda_coarse jobs: Ray sweep vs Hydra's basic launcher
  python runners/measure_sweep.py memory [--data cifar10_jpeg] [--sweep-data path]
      # peak PSS of a 2-task sweep of final-sized jobs

Prints the figures and writes them as JSON under outputs/sweeps/_measure/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import hydra

from mlp.bench.sweep import GRID, run_sampling
from mlp.cli import CONFIG_PATH

ROOT = Path(__file__).resolve().parent.parent  # a repository tool: it runs runners/ from there

# The same jobs under Hydra's basic launcher, one after another, BLAS on all cores: what
# `python runners/train.py -m ...` does; basic_job below is the same task function
# (run_experiment + result.json in the job dir), kept here so the baseline has no pre-check cost.
TRAIN_MULTIRUN = [sys.executable, __file__]


def run(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def fanout_once(args, out: Path, r: int, ray_first: bool) -> dict:
    """One Ray sweep and one basic-launcher run of the same 6 jobs, in the given order."""
    cores = os.cpu_count()
    sweep_dir, basic_dir = out / f"fanout_ray_{r}", out / f"fanout_basic_{r}"
    ray_cmd = [
        sys.executable,
        "runners/sweep.py",
        "-m",
        "experiment=lambda_coarse",
        f"data={args.data}",
        f"lambda={','.join(GRID)}",
        "seed=0",
        *args.set,
        f"hydra.sweep.dir={sweep_dir}",
        f"sweep.store={out / 'store'}",
        "sweep.force=true",
        "sweep.progress=false",
    ]
    basic_cmd = [
        *TRAIN_MULTIRUN,
        "-m",
        "experiment=lambda_coarse",
        f"data={args.data}",
        f"lambda={','.join(GRID)}",
        "seed=0",
        *args.set,
        f"hydra.sweep.dir={basic_dir}",
    ]
    if ray_first:
        ray_wall, basic_wall = run(ray_cmd), run(basic_cmd)
    else:
        basic_wall, ray_wall = run(basic_cmd), run(ray_cmd)
    summary = json.loads((sweep_dir / "sweep.json").read_text())
    res = [json.loads(p.read_text()) for p in sweep_dir.glob("*/result.json")]
    basic = [json.loads(p.read_text()) for p in basic_dir.glob("*/result.json")]
    train_sum = sum(r["train_s"] for r in res)
    start = summary["ray_start_s"]
    return {
        "order": "ray,basic" if ray_first else "basic,ray",
        "cores": cores,
        "jobs": len(res),
        "ray_sweep_wall_s": ray_wall,
        "basic_sequential_wall_s": basic_wall,
        "wall_ratio_ray_over_basic": ray_wall / basic_wall,
        "ray_start_s": start,
        "startup_to_first_job_s": summary["startup_to_first_job_s"],
        "ray_shutdown_s": summary.get("ray_shutdown_s"),
        "sum_train_s": train_sum,
        "efficiency": train_sum / (cores * (ray_wall - start)),
        "efficiency_to_last_result": train_sum
        / (cores * (summary["finished_at"] - summary["started_at"] - start)),
        "per_job_wall_minus_train_s_median": statistics.median(
            r["task_wall_s"] - r["train_s"] for r in res
        ),
        "per_job_task_minus_experiment_s_median": statistics.median(
            r["task_wall_s"] - r["wall_s"] for r in res
        ),
        "ray_train_s_per_job": sorted(round(r["train_s"], 2) for r in res),
        "basic_train_s_per_job": sorted(round(r["train_s"], 2) for r in basic),
        "val_acc_by_lambda": {
            r["lambda"]: r["val_acc"] for r in sorted(res, key=lambda r: r["lambda"])
        },
    }


def fanout(args, out: Path) -> dict:
    """Rounds in alternating order (Ray first, then basic first, ...): this VM's speed drifts by
    tens of percent over a minute, and a fixed order would hand the drift to one side."""
    rounds = [fanout_once(args, out, r, ray_first=(r % 2 == 0)) for r in range(args.rounds)]
    med = lambda key: statistics.median(r[key] for r in rounds)  # noqa: E731
    return {
        "rounds": len(rounds),
        "wall_ratio_ray_over_basic_median": med("wall_ratio_ray_over_basic"),
        "efficiency_median": med("efficiency"),
        "efficiency_min": min(r["efficiency"] for r in rounds),
        "startup_to_first_job_s_median": med("startup_to_first_job_s"),
        "per_job_wall_minus_train_s_median": med("per_job_wall_minus_train_s_median"),
        "per_round": rounds,
    }


def memory(args, out: Path) -> dict:
    """Peak of the summed PSS (shared pages split between their users) of the driver's whole
    process tree: driver, Ray's GCS/raylet/agents and the workers."""
    sweep_dir = out / "memory_final"
    cmd = [
        sys.executable,
        "runners/sweep.py",
        "-m",
        "experiment=final",
        f"data={args.data}",
        "seed=0,1",
        f"train.cycles={args.cycles}",
        f"hydra.sweep.dir={sweep_dir}",
        f"sweep.store={out / 'store'}",
        "sweep.force=true",
        "sweep.progress=false",
        "sweep.ray.num_cpus=2",
        f"sweep.data={args.sweep_data}",
    ]
    _, peak_gib, peak_n, code = run_sampling(cmd)
    res = [json.loads(p.read_text()) for p in sweep_dir.glob("*/result.json")]
    return {
        "jobs": len(res),
        "n_train": res[0]["n_train"] if res else None,
        "cycles": args.cycles,
        "peak_pss_gib": peak_gib,
        "processes_at_peak": peak_n,
        "exit_code": code,
        "sweep_data": args.sweep_data,
    }


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="config")
def basic_job(cfg) -> None:
    from hydra.core.hydra_config import HydraConfig

    from mlp.atomic import write_json_atomic
    from mlp.cli import absolutize_paths
    from mlp.experiment import run_experiment

    absolutize_paths(cfg, ROOT)
    out = Path(HydraConfig.get().runtime.output_dir) / "result.json"
    write_json_atomic(out, run_experiment(cfg))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["fanout", "memory"])
    ap.add_argument("--data", default="cifar10_jpeg")
    ap.add_argument(
        "--cycles",
        type=int,
        default=3,
        help="memory: cycles of the final jobs (size is what matters)",
    )
    ap.add_argument(
        "--rounds", type=int, default=2, help="fanout: Ray/basic pairs, in alternating order"
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="fanout: an override for both sides' jobs (e.g. dtype=float64), repeatable",
    )
    ap.add_argument(
        "--sweep-data",
        default="object_store",
        choices=["object_store", "path"],
        help="memory: data shipped through Ray's object store, or loaded by each task",
    )
    args = ap.parse_args()
    out = ROOT / "outputs" / "sweeps" / "_measure"
    figures = fanout(args, out) if args.what == "fanout" else memory(args, out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.what}.json").write_text(json.dumps(figures, indent=1))
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "-m":
        basic_job()
    else:
        main()
