"""End-to-end runs of mlp-train in a child process: wall time and the child's peak RSS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The child reports its own high-water mark (VmHWM) at exit. ru_maxrss from wait4 would not do:
# Linux carries it across execve, so it starts at the size of this (large) benchmark process.
_PEAK_TRAMPOLINE = """
import atexit, os, runpy, sys
def _report():
    with open('/proc/self/status') as f:
        kib = next(int(l.split()[1]) for l in f if l.startswith('VmHWM:'))
    with open(os.environ['MLP_BENCH_PEAK_FILE'], 'w') as f:
        f.write(str(kib))
atexit.register(_report)
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)
"""


def run_train(overrides: list[str]) -> dict:
    """Run `mlp-train OVERRIDES` to completion (from the current folder); returns wall_s,
    peak_rss_gib and result.json."""
    with tempfile.TemporaryDirectory(prefix="bench-run-") as out:
        peak_file = Path(out) / "peak_kib"
        cmd = [
            sys.executable,
            "-c",
            _PEAK_TRAMPOLINE,
            "mlp.commands.train",
            *overrides,
            f"hydra.run.dir={out}",
        ]
        t0 = time.perf_counter()
        with open(Path(out) / "stderr.txt", "w+") as err:
            proc = subprocess.Popen(
                cmd,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=dict(os.environ, MLP_BENCH_PEAK_FILE=str(peak_file)),
            )
            _, status, _ = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)
            err.seek(0)
            tail = err.read().strip().splitlines()[-1:]
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {tail}")
        result = json.loads((Path(out) / "result.json").read_text())
        peak_kib = int(peak_file.read_text())
    return {"wall_s": wall, "peak_rss_gib": peak_kib / 1024**2, "result": result}
