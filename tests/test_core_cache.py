"""The decode-once cache: reuse, atomic writes, and one decode for concurrent processes."""

import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
import pytest

from mlp.data import cache


def fake_arrays(seed: int = 0):
    rng = np.random.default_rng(seed)
    return {
        "train_x": rng.integers(0, 256, (8, 3072), dtype=np.uint8),
        "train_y": np.arange(8, dtype=np.uint8) % 10,
        "test_x": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
        "test_y": np.arange(4, dtype=np.uint8),
    }


def test_second_load_reuses_cache_memory_mapped(tmp_path):
    calls = []

    def decode():
        calls.append(1)
        return fake_arrays()

    first, decoded = cache.cached_arrays(tmp_path, "k", "abc", decode)
    second, decoded_again = cache.cached_arrays(tmp_path, "k", "abc", decode)
    assert decoded and not decoded_again and len(calls) == 1
    assert isinstance(second["train_x"], np.memmap)
    np.testing.assert_array_equal(first["train_x"], second["train_x"])


def test_failed_decode_leaves_no_cache_and_next_call_decodes(tmp_path):
    def broken():
        raise RuntimeError("decoder crashed")

    with pytest.raises(RuntimeError):
        cache.cached_arrays(tmp_path, "k", "abc", broken)
    assert not cache.cache_dir_for(tmp_path, "k", "abc").exists()
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]  # no temp folder left
    _, decoded = cache.cached_arrays(tmp_path, "k", "abc", fake_arrays)
    assert decoded


def test_incomplete_cache_folder_is_not_trusted(tmp_path):
    final = cache.cache_dir_for(tmp_path, "k", "abc")
    final.mkdir(parents=True)
    (final / "train_x.npy").write_bytes(b"half-written")  # no 'complete' marker
    arrays, decoded = cache.cached_arrays(tmp_path, "k", "abc", fake_arrays)
    assert decoded and arrays["train_x"].shape == (8, 3072)


def test_fingerprint_follows_content(tmp_path):
    f = tmp_path / "data.tar.gz"
    f.write_bytes(b"one")
    a = cache.source_fingerprint(f)
    assert cache.source_fingerprint(f) == a
    f.write_bytes(b"two!")
    assert cache.source_fingerprint(f) != a


def _slow_decode_worker(cache_root: str, counter: str, barrier) -> None:
    def decode():
        with open(counter, "a") as fh:
            fh.write("x")
        time.sleep(0.5)  # a slow decode: the other process must wait, not decode again
        return fake_arrays()

    barrier.wait()
    arrays, _ = cache.cached_arrays(Path(cache_root), "k", "abc", decode)
    assert arrays["train_x"].shape == (8, 3072)


@pytest.mark.slow
def test_concurrent_processes_decode_once(tmp_path):
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(3)
    counter = tmp_path / "decodes"
    procs = [
        ctx.Process(target=_slow_decode_worker, args=(str(tmp_path / "c"), str(counter), barrier))
        for _ in range(3)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    assert counter.read_text() == "x"


def test_truncated_cache_file_is_rebuilt_with_one_line(tmp_path, capsys):
    """A cache damaged after it was written (disk full, a killed copy) is decoded again, said in
    one line, instead of `mmap length is greater than file size` on every run."""
    cache.cached_arrays(tmp_path, "k", "abc", fake_arrays)
    npy = cache.cache_dir_for(tmp_path, "k", "abc") / "train_x.npy"
    npy.write_bytes(npy.read_bytes()[:1000])  # truncated: the header promises 8×3072 bytes
    capsys.readouterr()
    arrays, decoded = cache.cached_arrays(tmp_path, "k", "abc", fake_arrays)
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        decoded
        and len(err) == 1
        and err[0].startswith("note: decode cache")
        and "rebuilding" in err[0]
    )
    np.testing.assert_array_equal(arrays["train_x"], fake_arrays()["train_x"])
    _, again = cache.cached_arrays(tmp_path, "k", "abc", fake_arrays)  # repaired: no third decode
    assert not again and capsys.readouterr().err == ""


def test_cache_file_that_is_not_npy_is_rebuilt(tmp_path, capsys):
    cache.cached_arrays(tmp_path, "k", "abc", fake_arrays)
    (cache.cache_dir_for(tmp_path, "k", "abc") / "test_y.npy").write_bytes(b"garbage, not an array")
    arrays, decoded = cache.cached_arrays(tmp_path, "k", "abc", fake_arrays)
    assert decoded and "rebuilding" in capsys.readouterr().err
    np.testing.assert_array_equal(arrays["test_y"], fake_arrays()["test_y"])
