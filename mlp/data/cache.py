"""Decode-once cache: arrays written atomically under a file lock, read back memory-mapped.

Concurrent tasks on one machine share one decode and one set of page-cache pages,
so N tasks never hold N private copies of the raw training set.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from filelock import FileLock

ARRAYS = ("train_x", "train_y", "test_x", "test_y")
CACHE_VERSION = "1"


def source_fingerprint(path: Path) -> str:
    """Key a data source by what it holds: size+mtime of the file, or of every file in a folder."""
    path = Path(path).resolve()
    h = hashlib.sha256(CACHE_VERSION.encode())
    h.update(str(path).encode())
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(path.parent)}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def cache_dir_for(cache_root: Path, kind: str, key: str) -> Path:
    return Path(cache_root) / f"{kind}-{key}"


def load_cached(folder: Path) -> dict[str, np.ndarray]:
    return {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in ARRAYS}


def _load_or_reason(folder: Path) -> tuple[dict[str, np.ndarray] | None, str]:
    """The cached arrays, or None and why not: absent, or a file that is truncated or not .npy
    (np.load checks the header and that the file holds every byte the header promises)."""
    if not (folder / "complete").exists():
        return None, ""
    try:
        return load_cached(folder), ""
    except (OSError, ValueError, EOFError) as exc:
        return None, (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def cached_arrays(
    cache_root: Path, kind: str, key: str, decode: Callable[[], dict[str, np.ndarray]]
) -> tuple[dict[str, np.ndarray], bool]:
    """Return memory-mapped arrays for (kind, key), decoding once if absent.

    Returns (arrays, decoded_now). The lock makes a second process wait for the first
    decode instead of repeating it; the rename makes a half-written cache invisible.
    """
    cache_root = Path(cache_root)
    cache_root.mkdir(parents=True, exist_ok=True)
    final = cache_dir_for(cache_root, kind, key)
    arrays, _ = _load_or_reason(final)
    if arrays is not None:
        return arrays, False
    with FileLock(str(final) + ".lock"):
        arrays, broken = _load_or_reason(final)  # another process may have just written it
        if arrays is not None:
            return arrays, False
        if broken:
            print(
                f"note: decode cache {final} is unreadable ({broken}); rebuilding it",
                file=sys.stderr,
                flush=True,
            )
        arrays = decode()
        tmp = Path(tempfile.mkdtemp(prefix=f".{kind}-{key}.", dir=cache_root))
        try:
            for name in ARRAYS:
                np.save(tmp / f"{name}.npy", np.ascontiguousarray(arrays[name]))
            (tmp / "complete").write_text(CACHE_VERSION)
            if final.exists():  # a stale folder: a crashed writer's, or a damaged one
                shutil.rmtree(final)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return load_cached(final), True
