"""A driver stopped mid-sweep (Ctrl-C, SIGTERM, SIGKILL) keeps every finished result, leaves no
process of its private Ray instance behind, and the same command then trains only the rest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sweep_support import (
    ROOT,
    SMALL,
    _ppid,
    joining,
    ray_processes,
    results,
    rows,
    summary,
    venv_env,
    wait_gone,
)

from mlp.sweep.store import ResultStore

pytestmark = [pytest.mark.ray, pytest.mark.slow]
N_JOBS = 16


def _command(tmp: Path) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "runners" / "sweep.py"),
        "-m",
        "experiment=cyclic_1cycle",
        *SMALL,
        "train.n_s=100",  # ~0.4 s a job
        f"seed=range(0,{N_JOBS})",
        "sweep.ray.num_cpus=2",
        "sweep.progress=false",
        # every result reaches the store at once: a SIGKILL then loses no finished job (with the
        # default batches it loses those since the last flush: tests/test_store.py)
        "sweep.store_flush_rows=1",
        f"hydra.sweep.dir={tmp / 'sw'}",
        f"sweep.store={tmp / 'store'}",
    ]


def _descendants(root: int) -> set[int]:
    """Ray processes started by this driver (its private instance: GCS, raylet, workers, ...)."""
    found = set()
    for pid in ray_processes():
        chain = pid
        for _ in range(6):
            chain = _ppid(chain)
            if chain == root:
                found.add(pid)
                break
            if chain <= 1:
                break
    return found


def _finished(sweep_dir: Path) -> dict[str, str]:
    """config hash -> task id of every job whose result.json is on disk."""
    return {r["config_hash"]: r["task_id"] for r in results(sweep_dir) if r["status"] == "ok"}


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name
)
def test_interrupted_sweep_keeps_results_and_leaves_no_ray_process(tmp_path, sig, shared_ray):
    env = venv_env(RAY_ADDRESS="")
    proc = subprocess.Popen(  # one job at a time: ~5 s of work left when the third result lands
        [*_command(tmp_path), "sweep.max_in_flight=1", "sweep.chunk=off"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # Ctrl-C reaches a terminal's foreground job at its default action; in the full suite the
        # test process had SIGINT ignored (SigIgn 0x1001006), the driver inherited that and ran on
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 180
    while time.time() < deadline and len(list((tmp_path / "sw").glob("*/result.json"))) < 3:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    assert proc.poll() is None, "the sweep ended before the signal: nothing left to interrupt"
    ours = _descendants(proc.pid)
    assert ours, "the private Ray instance was not found under the driver"
    if sig == signal.SIGINT:  # Ctrl-C: the terminal signals the whole foreground group
        os.killpg(proc.pid, sig)
    else:
        os.kill(proc.pid, sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0, (out[-2000:], err[-3000:])
    assert not wait_gone(ours, timeout=30), "Ray processes outlived the driver"
    before = _finished(tmp_path / "sw")
    stored = ResultStore(tmp_path / "store").index()
    assert 3 <= len(before) < N_JOBS
    if sig != signal.SIGKILL:  # a driver that could clean up says so and leaves a sorted table
        assert "interrupted" in err, err
        table = rows(tmp_path / "sw")
        assert {r["config_hash"] for r in table if r["status"] == "ok"} >= set(before)
        assert [int(r["job"]) for r in table] == sorted(int(r["job"]) for r in table)

    again = subprocess.run(  # the resume's subject is the store, not Ray's start: join the suite's
        # head (sweep.* keys are not in a job's config hash, so the same jobs)
        [*_command(tmp_path), *joining(shared_ray)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    after = {r["config_hash"]: r for r in results(tmp_path / "sw")}
    assert len(after) == N_JOBS and all(r["status"] in ("ok", "cached") for r in after.values())
    for key, task_id in before.items():  # nothing finished was lost or trained again
        assert after[key]["task_id"] == task_id
    # a job is stored before its folder is written: a kill in between leaves it stored only
    assert set(before) <= stored
    s = summary(tmp_path / "sw")
    assert (s["cached"], s["ran"]) == (len(stored), N_JOBS - len(stored))
    assert len(rows(tmp_path / "sw")) == N_JOBS
