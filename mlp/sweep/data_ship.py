"""Data through Ray's object store: the driver loads each distinct data config once and
`ray.put`s its uint8 arrays; tasks get the reference and read the arrays zero-copy.

Worker nodes then need no data path, no download and no decode, and every task on a node
shares that node's one read-only copy (Ray maps numpy buffers straight from its shared-memory
store). `sweep.data=path` keeps the old way (each task loads data.root itself) for data too
large to ship.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
from omegaconf import OmegaConf

from mlp.data import RawData, load_raw
from mlp.data.cache import ARRAYS
from mlp.data.official import N_FEATURES
from mlp.errors import UserError

MODES = ("object_store", "path")
CIFAR10_IMAGES = 60_000  # 50,000 training + 10,000 test images, whichever CIFAR-10 source
BYTES_PER_IMAGE = N_FEATURES + 1  # uint8 pixels + a uint8 label
HEADROOM = 1.25  # the store never fills to the brim: Ray spills to disk above ~80 %
BASE_STORE_MB = 256  # results, task arguments and Ray's own objects (the old default)


def check_mode(mode) -> str:
    if mode not in MODES:
        raise UserError(f"sweep.data={mode!r} is not allowed (allowed: {', '.join(MODES)})")
    return mode


def data_bytes(data_cfg) -> int:
    """The uint8 arrays' size for a data config, known before anything is loaded (Ray starts
    early, while the driver composes the jobs)."""
    if data_cfg.get("name") == "synthetic":
        images = int(data_cfg.n_train) + int(data_cfg.n_test)
    else:
        images = CIFAR10_IMAGES
    return images * BYTES_PER_IMAGE


def size_object_store(master) -> None:
    """Fill sweep.ray.object_store_mb when it is null: the shipped arrays plus headroom plus the
    old 256 MB for results (an explicit number is kept as given)."""
    ray_cfg = master.sweep.ray
    if ray_cfg.get("object_store_mb") is not None:
        return
    shipped = 0 if master.sweep.get("data", "object_store") == "path" else data_bytes(master.data)
    ray_cfg.object_store_mb = BASE_STORE_MB + math.ceil(shipped * HEADROOM / 2**20)


def data_key(data_cfg: dict) -> str:
    """Jobs whose data configs differ only in batch_size (how batches are cut) share the arrays."""
    return json.dumps({k: v for k, v in data_cfg.items() if k != "batch_size"}, sort_keys=True)


def pack(raw: RawData) -> dict:
    """What goes into the object store: the arrays and what describes them, nothing else.

    The cache's arrays are np.memmap; numpy pickles that subclass in-band (a private copy on
    the driver and in every task), so they go in as plain ndarray views: Ray then stores the
    buffers out-of-band and tasks map them zero-copy."""
    return {
        **{name: np.asarray(getattr(raw, name)) for name in ARRAYS},
        "source": raw.source,
        "synthetic": raw.synthetic,
    }


def unpack(data: dict) -> RawData:
    """A task's RawData from the shipped dict; the arrays stay read-only views of the store."""
    start = time.perf_counter()
    arrays = {name: data[name] for name in ARRAYS}
    return RawData(
        **arrays,
        source=data["source"],
        synthetic=data["synthetic"],
        decoded_now=False,
        load_s=time.perf_counter() - start,
    )


class DataShipper:
    """One per sweep: loads each distinct data config on the driver (so a missing or corrupt
    file is an error before any job starts), puts it once, and hands tasks the reference."""

    def __init__(self, mode: str):
        self.mode = check_mode(mode)
        self.loaded: dict[str, RawData] = {}
        self.refs: dict[str, object] = {}

    def preload(self, cfgs: list[dict]) -> None:
        """Load every distinct data config now (decoding into the cache if needed); raises UserError."""
        if self.mode == "path":
            return
        for cfg in cfgs:
            key = data_key(cfg["data"])
            if key not in self.loaded and key not in self.refs:
                self.loaded[key] = load_raw(OmegaConf.create(cfg["data"]))

    def task_args(self, cfg: dict) -> tuple:
        """The task's arguments: (cfg,) in path mode, else (cfg, reference to its data)."""
        if self.mode == "path":
            return (cfg,)
        import ray

        key = data_key(cfg["data"])
        if key not in self.refs:
            self.preload([cfg])
            self.refs[key] = ray.put(pack(self.loaded.pop(key)))  # the driver keeps no copy
        return (cfg, self.refs[key])
