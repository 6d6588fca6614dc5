"""Sizing the local object store for the shipped data, the shipped data's keys, and (on a real
Ray instance) that tasks read the shipped arrays zero-copy from the object store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from mlp.data import RawData
from mlp.data.cache import ARRAYS
from mlp.errors import UserError
from mlp.sweep.data_ship import DataShipper, data_key, pack, size_object_store, unpack


def master(data: dict, mode: str = "object_store", store_mb=None):
    return OmegaConf.create(
        {"data": data, "sweep": {"data": mode, "ray": {"object_store_mb": store_mb}}}
    )


def test_object_store_is_sized_for_cifar10_plus_headroom():
    cfg = master({"name": "cifar10_jpeg", "root": "x"})
    size_object_store(cfg)
    # 60,000 images × 3,073 bytes = 175.8 MiB; × 1.25 = 219.8 → 220, plus 256 for results
    assert cfg.sweep.ray.object_store_mb == 476


def test_synthetic_size_follows_its_image_count_and_path_mode_ships_nothing():
    cfg = master({"name": "synthetic", "n_train": 10_000, "n_test": 2_000})
    size_object_store(cfg)
    assert cfg.sweep.ray.object_store_mb == 256 + 44  # 12,000 × 3,073 B × 1.25 = 43.96 MiB
    cfg = master({"name": "cifar10", "root": "x"}, mode="path")
    size_object_store(cfg)
    assert cfg.sweep.ray.object_store_mb == 256


def test_an_explicit_object_store_size_is_kept():
    cfg = master({"name": "cifar10", "root": "x"}, store_mb=1000)
    size_object_store(cfg)
    assert cfg.sweep.ray.object_store_mb == 1000


def test_jobs_differing_only_in_batch_size_share_one_shipment():
    a = {"name": "synthetic", "n_train": 1000, "batch_size": 200, "seed": 0}
    assert data_key(a) == data_key({**a, "batch_size": 500}) != data_key({**a, "seed": 1})


def test_bad_mode_and_missing_data_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="sweep.data='disk' is not allowed"):
        DataShipper("disk")
    shipper = DataShipper("object_store")
    cfg = {
        "data": {
            "name": "cifar10_jpeg",
            "root": str(tmp_path / "none.tar.gz"),
            "cache_dir": str(tmp_path),
            "permutation_seed": 0,
        }
    }
    with pytest.raises(UserError, match="no such image folder or archive"):
        shipper.preload([cfg])
    synthetic = {
        "data": {
            "name": "synthetic",
            "n_train": 50,
            "n_test": 10,
            "class_sep": 3.0,
            "noise": 50.0,
            "seed": 0,
        }
    }
    shipper.preload([synthetic])
    (raw,) = shipper.loaded.values()
    assert all(getattr(raw, name).dtype.name == "uint8" for name in ARRAYS)
    assert DataShipper("path").task_args(synthetic) == (synthetic,)  # path mode: no reference


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads Linux's /proc/self/maps")
def test_tasks_read_the_cached_arrays_zero_copy_and_read_only(tmp_path):
    """The decode cache hands out np.memmap, which numpy pickles in-band (a private copy in every
    task); packed, the arrays reach a real Ray task as read-only views of the object store: their
    bytes lie in the worker's shared mapping of Ray's plasma file, not in its private heap, and
    two tasks see the one copy. The unpacked memmap, shipped as is, is the control: a private,
    writeable copy."""
    import hashlib

    import ray

    from mlp.data.cache import cached_arrays

    # Defined here so that Ray ships them by value (the test module is not importable there).
    def mapping_of(address: int) -> tuple[str, str] | None:
        """(permissions, path) of this process's memory mapping that holds address (Linux)."""
        with open("/proc/self/maps") as maps:
            for line in maps:
                parts = line.split(None, 5)
                low, high = (int(v, 16) for v in parts[0].split("-"))
                if low <= address < high:
                    return parts[1], parts[5].strip() if len(parts) > 5 else ""
        return None

    def seen_by_task(data: dict) -> dict:
        """What a task sees of the shipped train_x: flags, owner, the mapping its bytes live in."""
        x = unpack(data).train_x
        return {
            "writeable": bool(x.flags.writeable),
            "owndata": bool(x.flags.owndata),
            "base": type(x.base).__name__,
            "mapping": mapping_of(x.ctypes.data),
            "sha": hashlib.sha256(np.ascontiguousarray(x).data).hexdigest(),
        }

    rng = np.random.default_rng(0)
    arrays, _ = cached_arrays(
        tmp_path,
        "k",
        "abc",
        lambda: {
            "train_x": rng.integers(0, 256, (2000, 3072), dtype=np.uint8),
            "train_y": np.zeros(2000, np.uint8),
            "test_x": np.zeros((10, 3072), np.uint8),
            "test_y": np.zeros(10, np.uint8),
        },
    )
    assert isinstance(arrays["train_x"], np.memmap)
    raw = RawData(**arrays, source="t", synthetic=True, decoded_now=False, load_s=0.0)
    driver_sha = hashlib.sha256(np.ascontiguousarray(arrays["train_x"]).data).hexdigest()

    probe = ray.remote(seen_by_task)
    ray.init(
        address="local",
        num_cpus=1,
        include_dashboard=False,
        logging_level="ERROR",
        object_store_memory=100 * 2**20,
    )
    try:
        ref = ray.put(pack(raw))
        first, second = ray.get([probe.remote(ref), probe.remote(ref)])
        unpacked = ray.get(probe.remote(ray.put({**arrays, "source": "t", "synthetic": True})))
    finally:
        ray.shutdown()
    for seen in (first, second):
        assert not seen["writeable"] and not seen["owndata"] and seen["base"] != "NoneType"
        perms, path = seen["mapping"]
        assert perms.endswith("s") and "plasma" in path, seen  # shared: Ray's store file
        assert seen["sha"] == driver_sha
    assert first["mapping"] == second["mapping"]  # one node, one copy for both tasks
    # The control: pickled in-band, the memmap arrives as a private, writeable copy.
    perms, _ = unpacked["mapping"]
    assert unpacked["writeable"] and perms.endswith("p") and unpacked["sha"] == driver_sha
