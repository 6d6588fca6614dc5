"""What a stored result is keyed and described by, shared by the sweep driver, the store, the
report and the trackers (a module below all of them, importing nothing of the project's but
the versions).

A result's key is a hash of what the job computes: its resolved config minus the keys that only
say where or how it runs, with the data source's content fingerprint in place of its path, plus
the result-format and numerics versions.
"""

from __future__ import annotations

import hashlib
import json

from mlp.version import NUMERICS_VERSION, RESULT_VERSION

# The final metrics of a training result, in the order tables show them.
METRICS = (
    "val_acc",
    "test_acc",
    "train_acc",
    "final_train_loss",
    "final_val_loss",
    "final_train_cost",
    "final_val_cost",
)
# Keys that say how or where a job runs, not what it computes (the report groups runs by the same rule).
PLACEMENT_KEYS = ("sweep", "hydra", "paths", "train.blas_threads", "data.cache_dir")
_PLACEMENT_PATHS = tuple(tuple(key.split(".")) for key in PLACEMENT_KEYS)


def is_placement_key(dotted: str) -> bool:
    """True for a dotted config key inside one of PLACEMENT_KEYS."""
    return any(dotted == k or dotted.startswith(k + ".") for k in PLACEMENT_KEYS)


def config_hash(cfg: dict, data_fingerprint: str | None = None) -> str:
    """sha256 of the resolved config minus placement keys, with data.root replaced by the data's
    content fingerprint when one is given (a changed file at the same path is another job; the
    same file under another path is the same job), plus the result and numerics versions."""
    view = dict(cfg)  # copies only the dicts it changes: cfg itself is left as it is
    for path in _PLACEMENT_PATHS:
        node = view
        for key in path[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                break
            child = dict(child)
            node[key] = child
            node = child
        else:
            node.pop(path[-1], None)
    if data_fingerprint is not None and isinstance(view.get("data"), dict):
        view["data"] = {**view["data"], "root": data_fingerprint}
    if isinstance(view.get("lambda"), int):  # lambda=1 and lambda=1.0 are the same job
        view["lambda"] = float(view["lambda"])
    blob = json.dumps(
        {"v": RESULT_VERSION, "n": NUMERICS_VERSION, "cfg": view},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
