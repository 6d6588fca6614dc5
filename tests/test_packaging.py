"""A wheel, installed non-editable into a fresh venv, runs `mlp-train` from an empty folder:
the configs ship inside the package (conf/ -> mlp.conf) and no code looks for the repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, SMALL_SYNTHETIC

pytestmark = pytest.mark.slow
PURELIB = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
PLATLIB = "import sysconfig; print(sysconfig.get_paths()['platlib'])"


def run(cmd: list, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=600, env=env
    )
    assert proc.returncode == 0, f"{cmd}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    return proc


def test_wheel_installs_and_trains_from_an_empty_folder(tmp_path):
    # built from a copy (setuptools writes build/ and *.egg-info next to the sources); pip builds
    # in isolation (fetches setuptools from PyPI once, then from its cache); no dependencies
    src = tmp_path / "src"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "outputs", "build", "*.egg-info", "__pycache__", "tests", "docs"
        ),
    )
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path / "dist", src],
        tmp_path,
    )
    (wheel,) = (tmp_path / "dist").glob("mlp_study-*.whl")
    # a venv of its own, with no site-packages of the machine's Python: the dependencies come
    # from the environment running the tests (a path entry, so its .pth files, this checkout's
    # editable install among them, are not processed); the wheel's own mlp comes first
    base = Path(getattr(sys, "_base_executable", sys.executable))
    run([base, "-m", "venv", "--without-pip", tmp_path / "venv"], tmp_path)
    venv_python = tmp_path / "venv" / "bin" / "python"
    own_site = Path(run([venv_python, "-c", PURELIB], tmp_path).stdout.strip())
    deps = {run([sys.executable, "-c", p], tmp_path).stdout.strip() for p in (PURELIB, PLATLIB)}
    (own_site / "test-deps.pth").write_text("".join(f"{d}\n" for d in sorted(deps)))
    bin_dir = tmp_path / "venv" / "bin"
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            venv_python,
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            wheel,
        ],
        tmp_path,
    )

    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    where = run(
        [bin_dir / "python", "-c", "import mlp, mlp.conf; print(mlp.__file__)"], empty, env
    ).stdout
    assert str(tmp_path / "venv") in where and str(ROOT) not in where

    proc = run(
        [bin_dir / "mlp-train", "experiment=cyclic_1cycle", *SMALL_SYNTHETIC, "train.n_s=10"],
        empty,
        env,
    )
    (result_file,) = (empty / "outputs" / "runs" / "cyclic_1cycle").glob("*/result.json")
    assert proc.stdout.strip().splitlines()[-1] == str(result_file.resolve())
    result = json.loads(result_file.read_text())
    assert result["synthetic"] and result["steps"] == 20 and 0 < result["val_acc"] <= 1
    # every config group shipped: a wrong name lists them all
    bad = subprocess.run(
        [bin_dir / "mlp-train", "experiment=nope"],
        cwd=empty,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert (
        bad.returncode == 2
        and "allowed: cyclic_1cycle, cyclic_3cycles, final, gradcheck" in bad.stderr
    )
