"""Ray's per-task overhead for tiny jobs: one task per job vs chunked tasks, side by side on one
private local Ray instance (mlp/sweep/chunking.py).

  python -m mlp.bench.chunks [--jobs 400] [--cpus 2] [--rounds 2] [--target-s 1.0]

Every mode fans the same N tiny jobs (TINY below, seed = 0..N-1) out over the
instance's CPUs and records nothing but the results; per mode: the fan-out's wall (first
submit → last result), Σ task_wall_s of the jobs, and the overhead per job
(wall − Σ task_wall_s / CPUs) / N. Modes:

- plain: today's tasks (mlp_sweep_job, one ObjectRef each), the driver loop of SweepRunner._run;
- chunk-off: chunk tasks of one unit each (streaming generators, sweep.chunk=off);
- chunk-auto: chunk tasks sized by ChunkSizer (sweep.chunk=auto, ~target-s per task).

A warm-up fan-out starts the workers first; rounds alternate the modes' order.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from omegaconf import OmegaConf

from mlp.cli import CONF_MODULE, conf_file
from mlp.sweep import chunking, ray_session
from mlp.sweep.data_ship import DataShipper

MODES = ("plain", "chunk-off", "chunk-auto")
# Tiny jobs, ~50 ms of work each on a quiet core (docs/sweep-scale.md's first tiny jobs).
TINY = [
    "experiment=lambda_coarse",
    "data=synthetic",
    "data.n_train=1000",
    "data.n_test=200",
    "data.batch_size=200",
    "split.val_holdout=100",
    "train.n_s=1",
]


def tiny_cfgs(n: int) -> list[dict]:
    """N resolved job configs that differ only in their seed, as the sweep's driver makes them."""
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module=CONF_MODULE, version_base="1.3"):
        base = OmegaConf.to_container(compose(config_name="config", overrides=TINY), resolve=True)
    assert isinstance(base, dict)
    base["train"]["blas_threads"] = 1  # sweep.cpus_per_job=1
    out = []
    for seed in range(n):
        cfg = OmegaConf.to_container(OmegaConf.create(base))  # a deep copy
        assert isinstance(cfg, dict)
        cfg["seed"] = seed
        out.append(cfg)
    return out


def fan_out_plain(cfgs: list[dict], shipper: DataShipper, limit: int) -> list[dict]:
    """One mlp_sweep_job task per job, up to `limit` in flight (SweepRunner._run's loop)."""
    import ray

    from mlp.sweep.task import mlp_sweep_job

    remote = ray.remote(mlp_sweep_job).options(num_cpus=1.0, max_retries=3, retry_exceptions=False)
    todo = iter(cfgs)
    in_flight: set = set()
    results: list[dict] = []
    more = True
    while True:
        while more and len(in_flight) < limit:
            cfg = next(todo, None)
            if cfg is None:
                more = False
                break
            in_flight.add(remote.remote(*shipper.task_args(cfg)))
        if not in_flight:
            return results
        done, _ = ray.wait(list(in_flight), num_returns=1, timeout=1.0)
        for ref in done:
            in_flight.discard(ref)
            results.append(ray.get(ref))


def fan_out_chunks(
    cfgs: list[dict], shipper: DataShipper, limit: int, sizer: chunking.ChunkSizer
) -> tuple[list[dict], int]:
    """Chunk tasks through chunking.run_chunks; the results and the number of tasks."""
    remote = chunking.chunk_remote({"num_cpus": 1.0, "retry_exceptions": False})
    results: list[dict] = []
    tasks = 0

    def submit(units: list[list[dict]]):
        nonlocal tasks
        tasks += 1
        _, *data = shipper.task_args(units[0][0])
        return remote.remote(units, *data)

    def arrived(a: chunking.Arrived) -> None:
        if a.results is None:
            raise RuntimeError(f"a chunk failed: {a.error}")
        results.extend(a.results)

    chunking.run_chunks(
        ([cfg] for cfg in cfgs),
        submit,
        sizer,
        arrived,
        max_retries=3,
        limit=limit,
        total_jobs=len(cfgs),
    )
    return results, tasks


def measure(mode: str, cfgs: list[dict], shipper: DataShipper, cpus: int, target_s: float) -> dict:
    limit = 2 * cpus + 4  # SweepRunner.in_flight_limit()'s default
    t0 = time.perf_counter()
    if mode == "plain":
        results, tasks = fan_out_plain(cfgs, shipper, limit), len(cfgs)
    else:
        sizer = chunking.ChunkSizer(
            mode="off" if mode == "chunk-off" else "auto", target_s=target_s, slots=cpus
        )
        results, tasks = fan_out_chunks(cfgs, shipper, limit, sizer)
    wall = time.perf_counter() - t0
    if len(results) != len(cfgs) or any(r["status"] != "ok" for r in results):
        raise RuntimeError(f"{mode}: {sum(r['status'] == 'ok' for r in results)} ok results")
    task_sum = sum(r["task_wall_s"] for r in results)
    return {
        "mode": mode,
        "wall_s": wall,
        "task_sum_s": task_sum,
        "tasks": tasks,
        "overhead_ms": 1000 * (wall - task_sum / cpus) / len(cfgs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--target-s", type=float, default=1.0)
    args = parser.parse_args(argv)
    cfgs = tiny_cfgs(args.jobs)
    ray_cfg = OmegaConf.load(conf_file("sweep.yaml")).sweep.ray
    ray_cfg.num_cpus, ray_cfg.object_store_mb = args.cpus, 300
    info = ray_session.connect(ray_cfg)
    rows: list[dict] = []
    try:
        shipper = DataShipper("object_store")
        fan_out_plain(cfgs[: 4 * args.cpus], shipper, 2 * args.cpus + 4)  # warm-up: the workers
        for r in range(args.rounds):
            for mode in MODES if r % 2 == 0 else tuple(reversed(MODES)):
                row = measure(mode, cfgs, shipper, args.cpus, args.target_s)
                row["round"] = r + 1
                rows.append(row)
                print(
                    f"round {r + 1}  {mode:10s}  wall {row['wall_s']:6.2f} s  "
                    f"Σ task_wall_s {row['task_sum_s']:6.2f} s  tasks {row['tasks']:4d}  "
                    f"overhead {row['overhead_ms']:6.2f} ms/job",
                    flush=True,
                )
    finally:
        ray_session.disconnect()
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"\n{args.jobs} tiny jobs, {args.cpus} CPUs (Ray start {info['start_s']:.1f} s, load "
        f"average {load} at the end); median over {args.rounds} round(s):"
    )
    print(
        f"{'mode':10s}  {'wall s':>7s}  {'Σ task s':>8s}  {'tasks':>5s}  {'overhead ms/job':>15s}"
    )
    for mode in MODES:
        mine = [row for row in rows if row["mode"] == mode]
        med = {k: statistics.median(row[k] for row in mine) for k in mine[0] if k != "mode"}
        print(
            f"{mode:10s}  {med['wall_s']:7.2f}  {med['task_sum_s']:8.2f}  {med['tasks']:5.0f}  "
            f"{med['overhead_ms']:15.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
