"""Chunked tasks (mlp/sweep/chunk_task.py, mlp/sweep/chunking.py) on a real local Ray instance:
a chunk streams each unit's results in order as each unit ends, a failing job fails alone, a
worker killed mid-chunk loses only the unit it was running, and the chunk sizer's decisions."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
from chunk_faults import FAULTS, KILL, runs
from conftest import SMALL_SYNTHETIC, compose_cfg
from omegaconf import OmegaConf

from mlp.errors import UserError
from mlp.sweep import chunking, ray_session
from mlp.sweep.chunk_task import mlp_sweep_chunk
from mlp.sweep.chunking import Arrived, ChunkSizer, UnitQueue, run_chunks
from mlp.sweep.data_ship import DataShipper
from mlp.sweep.task import mlp_sweep_job

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
# Tiny jobs, ~50 ms of work each once a worker is warm.
TINY = ["experiment=lambda_coarse", *SMALL_SYNTHETIC, "split.val_holdout=100", "train.n_s=1"]
OPTIONS = {"num_cpus": 1.0, "retry_exceptions": False}  # as SweepRunner.remote_functions sets


def cfg(*overrides: str) -> dict:
    plain = OmegaConf.to_container(compose_cfg([*TINY, *overrides]), resolve=True)
    assert isinstance(plain, dict)
    plain["train"]["blas_threads"] = 1  # as SweepRunner.prepare sets it (cpus_per_job)
    return plain


@pytest.fixture(scope="module")
def ray_local():
    """A Ray instance with 2 CPUs in this process, on loopback when this process has not imported
    Ray yet (Ray reads ray_session.SINGLE_NODE when imported; the environment is put back after,
    so later tests' subprocesses do not inherit it). No token auth here: Ray caches that mode at
    import, and the suite's later in-process instances and cluster joins must not inherit it."""
    saved = dict(os.environ)  # ray.init sets RAY_AUTH_MODE=token and more in this process
    if "ray" not in sys.modules:
        os.environ[ray_session.SINGLE_NODE] = "0"
    import ray

    try:
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            logging_level="ERROR",
            log_to_driver=False,
            object_store_memory=200 * 2**20,
            runtime_env={  # test (c)'s faults: tests/chunk_faults.py, inert unless a task asks
                "env_vars": {"PYTHONPATH": str(TESTS)},
                "worker_process_setup_hook": "chunk_faults.install",
            },
        )
        yield ray
    finally:
        ray.shutdown()
        os.environ.clear()
        os.environ.update(saved)


def submitter(remote, shipper: DataShipper):
    """submit(units) for run_chunks: the chunk's data argument from its first job, as a sweep."""

    def submit(units: list[list[dict]]):
        _, *data = shipper.task_args(units[0][0])
        return remote.remote(units, *data)

    return submit


class FixedSize:
    """A sizer that puts up to n units in every chunk (the tests choose the chunks)."""

    def __init__(self, n: int):
        self.n = n

    def next_size(self, remaining=None) -> int:
        return self.n

    def observe_results(self, results) -> None:
        pass


def faulty(tmp: Path, kill: str) -> dict:
    """Task options whose workers kill themselves on the listed seeds (tests/chunk_faults.py)."""
    return {**OPTIONS, "runtime_env": {"env_vars": {FAULTS: str(tmp), KILL: kill}}}


# ---- (a) order and streaming ------------------------------------------------------------------
@pytest.mark.ray
@pytest.mark.slow  # the instance's first worker starts here
def test_chunk_streams_each_units_results_in_order(ray_local):
    ray = ray_local
    ship = DataShipper("object_store")
    # a lone job, a bundle of two λ, and three lone jobs whose training takes longer
    units = [
        [cfg("seed=0")],
        [cfg("seed=1", "lambda=1e-3"), cfg("seed=1", "lambda=1e-1")],
        *[[cfg(f"seed={s}", "train.n_s=5")] for s in (2, 3, 4)],
    ]
    remote = chunking.chunk_remote(OPTIONS)
    _, data = ship.task_args(units[0][0])
    gen = remote.remote(units, data)
    assert isinstance(gen, ray.ObjectRefGenerator)
    got, arrived_at = [], []
    for ref in gen:
        got.append(ray.get(ref))
        arrived_at.append(time.time())
    assert [len(r) for r in got] == [1, 2, 1, 1, 1]
    assert [[(r["seed"], r["lambda"]) for r in rs] for rs in got] == [
        [(c["seed"], c["lambda"]) for c in unit] for unit in units
    ]
    assert all(r["status"] == "ok" for rs in got for r in rs)
    # the first unit's results were here before the last unit started in the worker
    assert arrived_at[0] < got[-1][0]["task_started_at"]
    # a unit of one is what mlp_sweep_job returns; a bundle what mlp_sweep_bundle returns
    alone = mlp_sweep_job(units[0][0])  # here, loading its data itself
    assert got[0][0]["val_acc"] == alone["val_acc"] and set(got[0][0]) == set(alone)
    assert [r["bundle"]["size"] for r in got[1]] == [2, 2]
    assert got[1][0]["bundle_task_wall_s"] == pytest.approx(2 * got[1][0]["task_wall_s"])
    # one worker ran them all, one task
    assert len({r["pid"] for rs in got for r in rs}) == 1
    assert len({r["task_id"] for rs in got for r in rs}) == 1


# ---- (b) a failing job ------------------------------------------------------------------------
@pytest.mark.ray
def test_a_failing_job_fails_alone_and_the_chunk_goes_on(ray_local):
    ray = ray_local
    bad = cfg("seed=1", "split.val_holdout=5000")  # more than the 1,000 training images
    units = [
        [cfg("seed=0")],
        [bad],
        [cfg("seed=2", "lambda=1e-3"), cfg("seed=2", "lambda=-1")],  # a bundle, one bad λ
        [cfg("seed=3")],
    ]
    gen = chunking.chunk_remote(OPTIONS).remote(units)  # sweep.data=path: each job loads its data
    got = [ray.get(ref) for ref in gen]
    statuses = [[r["status"] for r in rs] for rs in got]
    assert statuses == [["ok"], ["failed"], ["ok", "failed"], ["ok"]]
    assert "lambda=-1" in got[2][1]["error"] and 0 <= got[2][0]["val_acc"] <= 1
    failed = got[1][0]
    assert failed["error"].startswith("UserError: split.val_holdout=5000")
    assert failed["config"] == bad and "Traceback" in failed["traceback"]
    assert failed["task_wall_s"] > 0 and "log" in failed


# ---- (c) a worker killed mid-chunk -----------------------------------------------------------
@pytest.mark.ray
@pytest.mark.slow
def test_worker_killed_mid_chunk_keeps_yielded_units_and_reruns_the_rest(ray_local, tmp_path):
    """Seed 2 kills its worker once, seed 4 every time (sweep.max_retries=1): one chunk of six
    units. Units 0 and 1 came back before the first death and never run again; 2 runs again and
    succeeds; 4 is charged one attempt per death and fails after its second; 5 runs once, 3 once
    or, when its result was lost with the worker that died on 4, twice."""
    units = [[cfg(f"seed={s}")] for s in range(6)]
    remote = chunking.chunk_remote(faulty(tmp_path, "2:1,4:99"))
    seen: list[Arrived] = []
    flight = run_chunks(
        units,
        submitter(remote, DataShipper("object_store")),
        FixedSize(6),
        seen.append,
        max_retries=1,
        limit=1,
        job_key=lambda job: job["seed"],
    )
    ran = runs(tmp_path)
    # Units 0 and 1 came back long before the first death; a unit yielded just before a death
    # may not have reached the driver (its item is lost with the worker) and runs once more.
    assert ran.count(0) == ran.count(1) == 1 and ran.count(2) == 2 and ran.count(4) == 2
    assert 1 <= ran.count(3) <= 2 and ran.count(5) == 1
    by_seed = {a.unit[0]["seed"]: a for a in seen}
    assert sorted(by_seed) == list(range(6)) and len(seen) == 6
    assert [by_seed[s].results[0]["status"] for s in (0, 1, 2, 3, 5)] == ["ok"] * 5
    assert by_seed[4].results is None
    assert type(by_seed[4].error).__name__ == "WorkerCrashedError"
    assert flight.deaths[2] == 1 and flight.deaths[4] == 2 and flight.deaths.get(3, 0) <= 1
    # the first two units' results came from the first worker, the rest from later ones
    pids = [by_seed[s].results[0]["pid"] for s in (0, 1, 2, 3, 5)]
    assert pids[0] == pids[1] and pids[2] != pids[0]


@pytest.mark.ray
@pytest.mark.slow
def test_rays_own_retry_reruns_the_units_already_yielded(ray_local, tmp_path):
    """Why chunk tasks get max_retries=0: Ray retries a streaming generator from its start, so
    the units yielded before the worker died train again (the caller drops their duplicates)."""
    ray = ray_local
    units = [[cfg(f"seed={s}")] for s in range(3)]
    remote = ray.remote(mlp_sweep_chunk).options(
        num_returns="streaming", max_retries=1, **faulty(tmp_path, "1:1")
    )
    _, data = DataShipper("object_store").task_args(units[0][0])
    got = [ray.get(ref) for ref in remote.remote(units, data)]
    assert [rs[0]["seed"] for rs in got] == [0, 1, 2]  # each unit once on the caller's side
    assert runs(tmp_path) == [0, 1, 0, 1, 2]  # but unit 0 ran twice


# ---- (d) the chunk sizer ---------------------------------------------------------------------
def test_sizer_starts_at_one_unit_then_aims_at_the_target():
    sizer = ChunkSizer(target_s=1.0, max_units=32, slots=2)
    assert sizer.next_size() == 1 and sizer.unit_wall_s is None
    sizer.observe(0.05)
    assert sizer.next_size() == 1  # one wall per slot first
    sizer.observe_results([{"task_wall_s": 0.05}])
    assert sizer.next_size() == 20  # 1 s of 50 ms units
    assert sizer.next_size(remaining=400) == 20
    assert sizer.next_size(remaining=30) == 8  # the tail: ≥ 2 chunks per slot, ceil(30/4)
    assert sizer.next_size(remaining=3) == 1
    assert sizer.next_size(remaining=0) == 1
    for _ in range(32):  # units of 0.4 s: two per task; the window forgets the 50 ms ones
        sizer.observe(0.4)
    assert sizer.next_size() == 2
    # a bundle's results: each job carries its share, the unit's wall is their sum
    big = ChunkSizer(target_s=1.0, max_units=32, slots=1, warmup=1)
    big.observe_results([{"task_wall_s": 0.3}] * 4)
    assert big.unit_wall_s == pytest.approx(1.2) and big.next_size() == 1  # longer than 1 s
    fast = ChunkSizer(target_s=1.0, max_units=32, slots=1)
    fast.observe(0.001)
    assert fast.next_size() == 32  # sweep.chunk_max caps it
    fast.observe(0.0)
    assert fast.next_size() == 32
    off = ChunkSizer(mode="off", slots=1)
    off.observe(0.001)
    assert off.next_size() == 1


def test_chunk_settings_in_sweep_yaml_and_bad_values():
    settings = OmegaConf.load(ROOT / "conf" / "sweep.yaml").sweep
    chunking.check_settings(settings)
    sizer = ChunkSizer.from_settings(settings, slots=4)
    assert (sizer.mode, sizer.target_s, sizer.max_units, sizer.warmup) == ("auto", 1.0, 32, 4)
    for key, value, says in [
        ("chunk", "on", "sweep.chunk='on' is not allowed (allowed: auto, off)"),
        ("chunk_target_s", 0, "sweep.chunk_target_s=0 must be a number of seconds > 0"),
        ("chunk_target_s", "1s", "sweep.chunk_target_s='1s' must be"),
        ("chunk_max", 0, "sweep.chunk_max=0 must be a whole number ≥ 1"),
        ("chunk_max", 2.5, "sweep.chunk_max=2.5 must be a whole number ≥ 1"),
    ]:
        bad = OmegaConf.merge(settings, {key: value})
        with pytest.raises(UserError) as err:
            chunking.check_settings(bad)
        assert says in str(err.value)


def test_unit_queue_retries_first_keeps_one_key_per_chunk_and_defers_errors():
    def stream():
        yield ["a1"]
        yield ["a2", "a3"]
        yield ["b1"]
        yield ["b2"]
        raise UserError("job 9: bad")

    queue = UnitQueue(stream(), key=lambda unit: unit[0][0], total_jobs=6)
    assert queue.remaining() == 6
    assert queue.take(5) == [["a1"], ["a2", "a3"]]  # b1 has another data key: next chunk
    assert queue.remaining() == 1 + 6 - 4
    queue.push_front([["a2", "a3"]])  # a worker died under it
    assert queue.take(5) == [["a2", "a3"]]
    assert queue.take(5) == [["b1"], ["b2"]]  # the error waits: these still run
    with pytest.raises(UserError, match="job 9"):
        queue.take(5)
    assert queue.take(5) == [] and queue.remaining() == 0
