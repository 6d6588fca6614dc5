"""glibc's mmap and trim thresholds, set explicitly while steps are timed.

A plain NumPy loop allocates fresh batch-sized temporaries (2.4 MB for 100 × 3072 float64)
every step. With glibc's default thresholds (128 KiB) each is mmapped, or trimmed off the
heap top when freed, so every step page-faults ~1,200 pages in again: measured here, the
plain loop then runs at less than half its speed. glibc raises both thresholds by itself
once the process frees a bigger mmapped block, so whether it does depends on what ran
before (PyTorch's step in the same process, for one). Setting them explicitly makes the
timing independent of the process's history (the plain loop at its best); the benchmark
times the plain loop as a fresh process runs it in a child process (steps.plain_in_fresh_process):
once a process's heap has grown, lowering the thresholds again does not bring the faults
back. The project's step allocates nothing batch-sized.
"""

from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers
RAISED = (32 * 1024 * 1024, 64 * 1024 * 1024)  # glibc's own ceiling for mmap, trim at twice that


def _mallopt():
    try:
        return ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return None


def set_thresholds(thresholds: tuple[int, int]) -> bool:
    """(mmap, trim) thresholds in bytes; True when glibc took both."""
    fn = _mallopt()
    if fn is None:
        return False
    mmap, trim = thresholds
    return fn(M_MMAP_THRESHOLD, int(mmap)) == 1 and fn(M_TRIM_THRESHOLD, int(trim)) == 1
