"""Pick the configured source, decode it once through the cache, check what came out."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlp.data import cache, image_folder, official, synthetic
from mlp.errors import UserError

SOURCES = ("cifar10", "cifar10_jpeg", "synthetic")


@dataclass
class RawData:
    """Whole training and test sets as uint8 rows (usually memory-mapped from the cache)."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    source: str  # a human-readable description of where the arrays came from
    synthetic: bool
    decoded_now: bool  # True when this call paid for the decode
    load_s: float


def _check(arrays: dict[str, np.ndarray], where: str) -> None:
    for split in ("train", "test"):
        x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
        if x.ndim != 2 or x.shape[1] != official.N_FEATURES or len(y) != len(x):
            raise UserError(f"{where}: {split} arrays have wrong shapes {x.shape} / {y.shape}")
        if len(y) and int(y.max()) >= official.N_CLASSES:
            raise UserError(f"{where}: {split} labels out of range 0..{official.N_CLASSES - 1}")


def load_raw(data_cfg) -> RawData:
    name = data_cfg.name
    if name not in SOURCES:
        raise UserError(f"unknown data source '{name}' (allowed: {', '.join(SOURCES)})")
    start = time.perf_counter()
    if name == "synthetic":
        arrays = synthetic.make(
            data_cfg.n_train, data_cfg.n_test, data_cfg.class_sep, data_cfg.noise, data_cfg.seed
        )
        return RawData(
            **arrays,
            source=f"SYNTHETIC (seed {data_cfg.seed}; not CIFAR-10)",
            synthetic=True,
            decoded_now=True,
            load_s=time.perf_counter() - start,
        )
    root = Path(str(data_cfg.root)).expanduser()
    if name == "cifar10":
        src = official.resolve_source(root, data_cfg.download)
        decode, kind = (lambda: official.read(src)), "cifar10"
    else:
        if not root.exists():
            raise UserError(f"{root}: no such image folder or archive (set data.root)")
        src = root
        decode = lambda: image_folder.read(src, data_cfg.permutation_seed)  # noqa: E731
        kind = f"cifar10_jpeg-p{data_cfg.permutation_seed}"
    cache_root = Path(str(data_cfg.cache_dir)).expanduser()
    arrays, decoded_now = cache.cached_arrays(
        cache_root, kind, cache.source_fingerprint(src), decode
    )
    _check(arrays, str(src))
    return RawData(
        **arrays,
        source=f"{name}: {src}",
        synthetic=False,
        decoded_now=decoded_now,
        load_s=time.perf_counter() - start,
    )
