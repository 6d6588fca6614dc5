"""The machine line: CPU model, cores, BLAS libraries and their thread counts (threadpoolctl)."""

from __future__ import annotations

import os
import platform

import numpy as np
from threadpoolctl import threadpool_info


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_libraries() -> list[str]:
    """'openblas 0.3.31 (SkylakeX, 2 threads, libscipy_openblas64_)' for every BLAS loaded."""
    out = []
    for lib in threadpool_info():
        if lib.get("user_api") != "blas":
            continue
        name = os.path.basename(lib.get("filepath", "")).split("-")[0].split(".so")[0]
        out.append(
            f"{lib.get('internal_api')} {lib.get('version')} ({lib.get('architecture')}, "
            f"{lib.get('num_threads')} threads, {name})"
        )
    return out


def machine_line() -> str:
    blas = "; ".join(blas_libraries()) or "no BLAS found by threadpoolctl"
    env = " ".join(
        f"{k}={os.environ[k]}"
        for k in (
            "OPENBLAS_CORETYPE",
            "OPENBLAS_L2_SIZE",
            "OMP_NUM_THREADS",
            "OPENBLAS_NUM_THREADS",
        )
        if k in os.environ
    )
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}, NumPy {np.__version__}, "
        f"BLAS: {blas}" + (f", env: {env}" if env else "")
    )
