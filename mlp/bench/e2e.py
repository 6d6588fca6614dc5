"""End-to-end runs of runners/train.py in a child process: wall time and the child's peak RSS."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_train(overrides: list[str]) -> dict:
    """Run `python runners/train.py OVERRIDES` to completion; returns wall_s, peak_rss_gib and result.json."""
    with tempfile.TemporaryDirectory(prefix="bench-run-") as out:
        cmd = [sys.executable, "runners/train.py", *overrides, f"hydra.run.dir={out}"]
        t0 = time.perf_counter()
        with open(Path(out) / "stderr.txt", "w+") as err:
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
            _, status, usage = os.wait4(proc.pid, 0)   # the child's own rusage, incl. its peak RSS
            wall = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)
            err.seek(0)
            tail = err.read().strip().splitlines()[-1:]
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {tail}")
        result = json.loads((Path(out) / "result.json").read_text())
    return {"wall_s": wall, "peak_rss_gib": usage.ru_maxrss / 1024**2, "result": result}
