"""Data-loading figures: first decode of an image-folder source into a fresh cache, the cached
load every later run does, and the official pickle format (on batch files written here)."""

from __future__ import annotations

import io
import pickle
import tempfile
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from PIL import Image

from mlp.data import official
from mlp.data.image_folder import CLASSES
from mlp.data.sources import load_raw


def _cfg(name: str, root: Path, cache_dir: Path):
    return OmegaConf.create(
        {
            "name": name,
            "root": str(root),
            "cache_dir": str(cache_dir),
            "batch_size": 10000,
            "permutation_seed": 0,
            "download": {"enabled": False},
        }
    )


def time_image_folder(source: Path) -> tuple[float, float, int]:
    """(first decode s, cached load s, images) through the project's loader, into a fresh temp cache."""
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as cache:
        cfg = _cfg("cifar10_jpeg", source, Path(cache))
        t0 = time.perf_counter()
        raw = load_raw(cfg)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = load_raw(cfg)
        cached = time.perf_counter() - t0
        assert not again.decoded_now
        return first, cached, len(raw.train_y) + len(raw.test_y)


def write_image_folder(folder: Path, per_class: int, seed: int = 0) -> Path:
    """A small {train,test}/<class>/*.jpg tree of random 32×32 images (quick runs)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", per_class), ("test", max(1, per_class // 5))):
        for c in CLASSES:
            d = folder / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                buf = io.BytesIO()
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
                    buf, "JPEG", quality=75
                )
                (d / f"{i:04d}.jpg").write_bytes(buf.getvalue())
    return folder


def write_official_batches(folder: Path, rows_per_batch: int, seed: int = 0) -> Path:
    """data_batch_1..5 and test_batch as pickled dicts in the official layout (bytes keys)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name in official.TRAIN_FILES + (official.TEST_FILE,):
        batch = {
            b"batch_label": name.encode(),
            b"labels": rng.integers(0, 10, rows_per_batch).tolist(),
            b"data": rng.integers(0, 256, (rows_per_batch, 3072), dtype=np.uint8),
            b"filenames": [f"{i}.png".encode() for i in range(rows_per_batch)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    return folder


def time_official(rows_per_batch: int) -> tuple[float, float, int]:
    """(pickle load s, first load through the cache s, rows) on generated official batch files."""
    with tempfile.TemporaryDirectory(prefix="bench-official-") as tmp:
        folder = write_official_batches(Path(tmp) / official.BATCH_FOLDER, rows_per_batch)
        t0 = time.perf_counter()
        arrays = official.read(folder)
        parse = time.perf_counter() - t0
        t0 = time.perf_counter()
        load_raw(_cfg("cifar10", folder, Path(tmp) / "cache"))
        first = time.perf_counter() - t0
        return parse, first, len(arrays["train_y"]) + len(arrays["test_y"])
