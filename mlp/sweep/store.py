"""Results keyed by a hash of the job's resolved config: what makes resume independent of directories.

Hydra's default sweep directory holds a timestamp, so re-running the same command lands in a
new directory; the store (one JSON per config hash) is what the re-run looks results up in.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mlp.cli import write_json_atomic
from mlp.version import NUMERICS_VERSION, RESULT_VERSION

# Keys that say how or where a job runs, not what it computes (the report groups runs by the same rule).
PLACEMENT_KEYS = ("sweep", "hydra", "paths", "train.blas_threads", "data.cache_dir")
IGNORED_KEYS = tuple(tuple(key.split(".")) for key in PLACEMENT_KEYS)


def is_placement_key(dotted: str) -> bool:
    """True for a dotted config key inside one of PLACEMENT_KEYS."""
    return any(dotted == k or dotted.startswith(k + ".") for k in PLACEMENT_KEYS)


def config_hash(cfg: dict) -> str:
    """sha256 of the resolved config (minus run-placement keys), the result format version and
    the numerics version (results of older arithmetic are not reused)."""
    cfg = json.loads(json.dumps(cfg))  # deep copy, plain types
    for path in IGNORED_KEYS:
        node = cfg
        for key in path[:-1]:
            node = node.get(key, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(path[-1], None)
    if isinstance(cfg.get("lambda"), int):  # lambda=1 and lambda=1.0 are the same job
        cfg["lambda"] = float(cfg["lambda"])
    blob = json.dumps(
        {"v": RESULT_VERSION, "n": NUMERICS_VERSION, "cfg": cfg},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class ResultStore:
    """A folder of <hash>.json results of finished (status ok) jobs."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def get(self, key: str) -> dict | None:
        path = self.root / f"{key}.json"
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return result if result.get("config_hash") == key else None

    def put(self, key: str, result: dict) -> None:
        write_json_atomic(self.root / f"{key}.json", result)


def scan_sweep_dir(sweep_dir: Path) -> dict[str, dict]:
    """Finished results already in a sweep directory (explicit hydra.sweep.dir=DIR re-runs), by hash."""
    found = {}
    for path in Path(sweep_dir).glob("*/result.json"):
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if result.get("status") in ("ok", "cached") and result.get("config_hash"):
            found[result["config_hash"]] = result
    return found
