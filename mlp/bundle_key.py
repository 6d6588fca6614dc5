"""Which jobs can train together as one bundle (mlp.bundle): those whose resolved configs are
equal but for λ. A module of its own, importing nothing numerical, so the sweep driver can
group jobs (mlp.sweep.bundling) before the numerics are loaded."""

from __future__ import annotations

import hashlib
import json

# Keys that may differ between the jobs of one bundle; all others, placement included, are equal.
FREE_KEYS = ("lambda",)


def bundle_key(cfg: dict) -> str | None:
    """Jobs with equal keys can share a bundle; None: this job trains alone (not a training
    job, or λ drawn from the seed)."""
    if cfg.get("kind") != "train" or cfg.get("lambda") is None:
        return None
    rest = {k: v for k, v in cfg.items() if k not in FREE_KEYS}
    blob = json.dumps(rest, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()
