"""Tracking's bad input (no Ray started) and the task's output capture."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from sweep_support import ROOT, SMALL, free_port, venv_env

ARGS = ["-m", "experiment=cyclic_1cycle", *SMALL, "lambda=0,0.01"]


def sweep(tmp_path, *args, prelude: str = "pass") -> subprocess.CompletedProcess:
    """runners/sweep.py as a user runs it; prelude: Python run first in the same interpreter."""
    code = (
        f"import runpy, sys; {prelude}; sys.argv = ['sweep.py'] + sys.argv[1:]; "
        f"runpy.run_path({str(ROOT / 'runners' / 'sweep.py')!r}, run_name='__main__')"
    )
    return subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            *args,
            f"hydra.sweep.dir={tmp_path / 'sw'}",
            f"sweep.store={tmp_path / 'store'}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=venv_env(),
        check=False,
    )


def test_unreachable_tracking_server_stops_the_sweep_in_one_line(tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"
    start = time.perf_counter()
    proc = sweep(tmp_path, *ARGS, "+tracking=mlflow", f"hydra.callbacks.mlflow.tracking_uri={uri}")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        (
            f"error: cannot reach the MLflow tracking server at {uri} "
            f"([Errno 111] Connection refused); start it, or set "
            f"MLFLOW_TRACKING_URI / hydra.callbacks.mlflow.tracking_uri"
        )
    ]
    assert not (tmp_path / "sw").exists() and time.perf_counter() - start < 60


def test_missing_package_names_the_extra(tmp_path):
    for name in ("mlflow", "tensorboard"):
        proc = sweep(tmp_path, *ARGS, f"+tracking={name}", prelude=f"sys.modules[{name!r}] = None")
        assert proc.returncode == 2
        assert proc.stderr.strip() == (
            f"error: +tracking={name} needs the '{name}' package, which is not "
            f"installed: pip install -e '.[tracking]'"
        )
        assert not (tmp_path / "sw").exists()


def test_bad_max_job_runs_is_one_line(tmp_path):
    proc = sweep(
        tmp_path, *ARGS, "+tracking=tensorboard", "hydra.callbacks.tensorboard.max_job_runs=-1"
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: hydra.callbacks.tensorboard.max_job_runs=-1 must be a whole number ≥ 0 or null"
    )
    assert not (tmp_path / "sw").exists()


def test_unknown_tracking_choice_is_one_line(tmp_path):
    proc = sweep(tmp_path, *ARGS, "+tracking=wandb")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: unknown tracking 'wandb' (allowed: mlflow, tensorboard)"


CAPTURE = """
import json, os, subprocess, sys
from mlp.sweep.capture import captured_output
print("before")
with captured_output() as log:
    print("from print")
    sys.stderr.write("from stderr\\n")
    os.write(1, b"from fd 1\\n")
    subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('from a child\\\\n')"], check=True)
print(json.dumps(log.text))
"""


def test_capture_holds_prints_stderr_and_child_processes():
    """In a process of its own, as in a Ray worker: the block's output at the descriptor level,
    passed on to the original descriptors after it."""
    proc = subprocess.run(
        [sys.executable, "-c", CAPTURE],
        capture_output=True,
        text=True,
        timeout=60,
        env=venv_env(),
        check=True,
    )
    text = json.loads(proc.stdout.splitlines()[-1])
    assert text.splitlines() == ["from print", "from stderr", "from fd 1", "from a child"]
    assert proc.stdout.splitlines()[:-1] == [
        "before",
        "from print",
        "from stderr",
        "from fd 1",
        "from a child",
    ]
