"""The params of rung jobs (train.rung) at their ends, kept beside the result store so that a
successive-halving search continues its survivors, also after a driver restart.

A state is keyed by what it is: the job's config without its rung, plus the cycle it was taken
at (config_hash, so the data's content and the numerics version are in it). A rung job ending
at cycle c writes the state "config @ c"; a rung job starting at c reads it, whatever rung
trained it. Files are `<store>/rung_state/<key>.npz`, written atomically by the driver (workers
get a state as a task argument and return it with their result: no shared disk).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mlp.errors import UserError
from mlp.result_schema import config_hash

FOLDER = "rung_state"
PARAMS = ("W1", "b1", "W2", "b2")


def state_key(cfg: dict, fingerprint: str | None, at: float) -> str:
    """The key of a job's params at cycle `at` of its full-budget run (its rung left out)."""
    train = {k: v for k, v in cfg["train"].items() if k != "rung"}
    train["rung"] = {"state_at": float(at)}
    return config_hash(dict(cfg, train=train), fingerprint)


def rung_keys(cfg: dict, fingerprint: str | None) -> tuple[str | None, str]:
    """(the state a rung job starts from, None at cycle 0; the state it ends with)."""
    rung, cycles = cfg["train"]["rung"], cfg["train"]["cycles"]
    start = rung.get("start") or 0
    stop = cycles if rung.get("stop") is None else rung["stop"]
    ends = state_key(cfg, fingerprint, stop)
    return (state_key(cfg, fingerprint, start) if start else None), ends


class RungStates:
    """The folder of states: save (atomically), has, load."""

    def __init__(self, store_root: Path):
        self.root = Path(store_root) / FOLDER

    def path(self, key: str) -> Path:
        return self.root / f"{key}.npz"

    def has(self, key: str) -> bool:
        return self.path(key).is_file()

    def save(self, key: str, state: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{key}.", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as f:
                arrays: dict[str, Any] = {name: np.asarray(state[name]) for name in PARAMS}
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path(key))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load(self, key: str, what: str) -> dict[str, np.ndarray]:
        """The state `key`; a missing or unreadable file is a UserError naming `what` needs it."""
        try:
            with np.load(self.path(key)) as f:
                return {name: f[name] for name in PARAMS}
        except (OSError, KeyError, ValueError) as exc:
            raise UserError(
                f"{what} starts from rung state {self.path(key)}, which cannot be read "
                f"({type(exc).__name__}); rerun the search (its earlier rungs) with sweep.force=true"
            ) from None
