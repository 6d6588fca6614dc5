"""A worker that cannot import the project says so in one line (instead of Ray's
`RayTaskError(RuntimeError): ray::mlp_sweep_job() (pid=…)`), and the sweep stops launching."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sweep_support import ROOT, SMALL, rows, venv_env

pytestmark = [pytest.mark.ray, pytest.mark.slow]
# The machine's own interpreter: Ray, Hydra and NumPy are installed there, this project is not
# (only the worktree's venv has it), so its workers cannot import mlp while the driver can
# (runners/sweep.py puts the checkout on its own sys.path).
BASE_PYTHON = Path(sys.base_prefix) / "bin" / "python3"


def test_worker_without_the_project_is_one_line(tmp_path):
    probe = subprocess.run([str(BASE_PYTHON), "-c", "import ray, hydra; import mlp"], cwd=tmp_path,
                           capture_output=True, text=True, check=False)
    assert "No module named 'mlp'" in probe.stderr, "the base interpreter must lack the project"
    cmd = [str(BASE_PYTHON), str(ROOT / "runners" / "sweep.py"), "-m", "experiment=cyclic_1cycle",
           *SMALL, "seed=range(0,20)", "sweep.ray.num_cpus=2", "sweep.progress=false",
           f"hydra.sweep.dir={tmp_path / 'sw'}", f"sweep.store={tmp_path / 'store'}"]
    env = venv_env(RAY_ADDRESS="")
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: the worker cannot import the project (ModuleNotFoundError: "
                               "No module named 'mlp')"), lines[0]
    assert "\x1b" not in proc.stderr and "ray::" not in proc.stderr
    table = rows(tmp_path / "sw")
    assert table and all(r["status"] == "failed" for r in table) and len(table) < 20
