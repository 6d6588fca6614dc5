"""The result store and the config hash: what resume rests on (no Ray).

Batches are whole or absent, a SIGKILL loses only what was not flushed, two writers at once
lose nothing, compaction keeps every row, old JSON results are migrated, the data's content
(not its path) keys a result, and a full disk is one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pyarrow.parquet as pq
import pytest

import mlp.result_schema as schema
from mlp.data.fingerprint import content_fingerprint
from mlp.errors import UserError
from mlp.result_schema import config_hash
from mlp.sweep.store import ResultStore


def _cfg(**over):
    cfg = {
        "name": "x",
        "seed": 0,
        "lambda": 0.01,
        "train": {"n_s": 10, "blas_threads": 1},
        "data": {"name": "synthetic", "cache_dir": "/a"},
        "sweep": {"force": False},
    }
    for k, v in over.items():
        node = cfg
        *path, last = k.split(".")
        for p in path:
            node = node[p]
        node[last] = v
    return cfg


def _result(seed: int, val_acc: float = 0.5) -> dict:
    history = [
        {
            "step": t,
            "epoch": t / 10,
            "eta": 0.01,
            "train_loss": 1.0 / (t + 1),
            "train_cost": 1.1,
            "train_acc": 0.4,
            "val_loss": 1.2,
            "val_cost": 1.3,
            "val_acc": val_acc,
        }
        for t in (0, 5)
    ]
    return {
        "version": 1,
        "experiment": "x",
        "seed": seed,
        "lambda": 0.01,
        "data_source": "SYNTHETIC",
        "synthetic": True,
        "history": history,
        "val_acc": val_acc,
        "test_acc": 0.25,
        "config": _cfg(seed=seed),
        "log": "hello\n",
        "task_wall_s": 0.1,
    }


def _info(num: int) -> dict:
    return {"sweep": "/s", "job": num, "stage": None, "overrides": [f"seed={num}"]}


def test_config_hash_keys_what_a_job_computes():
    base = config_hash(_cfg())
    placement = {"train.blas_threads": 2, "data.cache_dir": "/b", "sweep.force": True}
    assert config_hash(_cfg(**placement)) == base
    assert config_hash(_cfg(**{"lambda": 0.02})) != base
    assert config_hash(_cfg(**{"train.n_s": 11})) != base
    assert config_hash(_cfg(**{"lambda": 1})) == config_hash(_cfg(**{"lambda": 1.0}))
    cfg = _cfg()
    config_hash(cfg, "sha256:x")
    assert cfg == _cfg()  # the caller's config is left as it was


def test_config_hash_changes_with_the_numerics_version(monkeypatch):
    """A stored result of older arithmetic is not served for a run of this code."""
    base = config_hash(_cfg())
    monkeypatch.setattr(schema, "NUMERICS_VERSION", schema.NUMERICS_VERSION + 1)
    assert config_hash(_cfg()) != base


def test_the_data_content_keys_a_result_not_its_path(tmp_path):
    a, b = tmp_path / "a.tar.gz", tmp_path / "elsewhere" / "b.tar.gz"
    b.parent.mkdir()
    a.write_bytes(b"images v1")
    b.write_bytes(b"images v1")
    key = lambda p: config_hash(_cfg(**{"data.root": str(p)}), content_fingerprint(p))
    assert key(a) == key(b)  # the same data under another path (another machine's volume)
    time.sleep(0.01)
    a.write_bytes(b"images v2")  # a changed file at the same path
    assert key(a) != key(b)
    assert content_fingerprint(tmp_path / "missing") is None


def test_round_trip_index_and_batches(tmp_path):
    store = ResultStore(tmp_path / "store", flush_rows=3, flush_s=60)
    for i in range(7):
        store.add(f"h{i}", _result(i), "ok" if i != 4 else "failed", _info(i))
    assert len(store.parts()) == 2 and len(store.buffer) == 1  # two batches of 3 flushed
    store.flush()
    assert store.index() == {f"h{i}" for i in range(7)} - {"h4"}  # failed jobs run again
    back = store.results(["h2", "h4", "nope"])
    assert set(back) == {"h2"}
    expected = {k: v for k, v in _result(2).items() if k != "log"}
    assert {k: v for k, v in back["h2"].items() if k not in ("config_hash", "status")} == expected
    assert store.get_many(["h2"], ["log"])["h2"]["log"] == "hello\n"


def test_a_batch_is_flushed_after_flush_s(tmp_path):
    store = ResultStore(tmp_path, flush_rows=1000, flush_s=0.2)
    store.add("a", _result(0), "ok", _info(0))
    store.maybe_flush()
    assert not store.parts()
    time.sleep(0.25)
    store.maybe_flush()
    assert len(store.parts()) == 1 and store.index() == {"a"}


def test_compaction_bounds_the_files_and_keeps_every_row(tmp_path, monkeypatch):
    import mlp.sweep.store as store_module

    monkeypatch.setattr(store_module, "MAX_PARTS", 4)
    store = ResultStore(tmp_path, flush_rows=2, flush_s=60)
    for i in range(40):
        store.add(f"h{i}", _result(i), "ok", _info(i))
    assert len(store.parts()) <= 5
    assert store.index() == {f"h{i}" for i in range(40)}
    # a re-run of h3 that failed does not hide its ok result; its latest ok result wins
    store.add("h3", _result(3), "failed", _info(3))
    store.add("h5", _result(5, val_acc=0.9), "ok", _info(5))
    store.flush()
    store.compact(force=True)
    assert len(store.parts()) == 1
    assert "h3" in store.index() and store.results(["h5"])["h5"]["val_acc"] == 0.9


WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_store import _info, _result
    from mlp.sweep.store import ResultStore
    import mlp.sweep.store as m
    m.MAX_PARTS = 3
    store = ResultStore({root!r}, flush_rows=5, flush_s=60)
    for i in range({n}):
        store.add(f"{{sys.argv[1]}}{{i}}", _result(i), "ok", _info(i))
        if i == 4:
            print("flushed once", flush=True)
    store.flush()
    """
)


def _writer(tmp_path, prefix: str, n: int) -> subprocess.Popen:
    code = WRITER.format(tests=os.path.dirname(__file__), root=str(tmp_path / "store"), n=n)
    return subprocess.Popen([sys.executable, "-c", code, prefix], stdout=subprocess.PIPE, text=True)


def test_two_writers_at_once_lose_nothing(tmp_path):
    procs = [_writer(tmp_path, p, 300) for p in ("a", "b")]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    index = ResultStore(tmp_path / "store").index()
    assert index == {f"{p}{i}" for p in "ab" for i in range(300)}


def test_sigkill_mid_flush_loses_only_unflushed_results(tmp_path):
    proc = _writer(tmp_path, "k", 100_000)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "flushed once"
    time.sleep(1.0)  # many flushes and compactions under way
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    store = ResultStore(tmp_path / "store")
    for part in store.parts():  # every part that exists is whole
        assert pq.read_table(part).num_rows > 0
    index = store.index()
    n = len(index)
    assert n >= 5 and index == {f"k{i}" for i in range(n)}  # a prefix: nothing lost before it
    store.add("after", _result(0), "ok", _info(0))  # and the store takes new results
    store.flush()
    assert "after" in store.index()


def test_old_json_results_are_migrated_and_rekeyed(tmp_path):
    data = tmp_path / "data.bin"
    data.write_bytes(b"pixels")
    cfg = _cfg(**{"data.root": str(data)})
    old = dict(_result(0), config=cfg, config_hash="oldkey", status="ok")
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "oldkey.json").write_text(json.dumps(old))
    (tmp_path / "store" / "broken.json").write_text("{half")
    store = ResultStore(tmp_path / "store")
    new_key = config_hash(cfg, content_fingerprint(data))
    assert store.index() == {new_key}
    assert store.results([new_key])[new_key]["val_acc"] == old["val_acc"]
    assert not (tmp_path / "store" / "oldkey.json").exists()
    assert (tmp_path / "store" / "broken.json").exists()  # unreadable: left for the user


def test_an_unwritable_store_is_one_line_and_keeps_the_batch(tmp_path):
    (tmp_path / "store").write_text("a file where the store's folder should be")
    store = ResultStore(tmp_path / "store", flush_rows=1)
    with pytest.raises(UserError) as err:
        store.add("a", _result(0), "ok", _info(0))
    assert "cannot write results to the store" in str(err.value)
    assert "\n" not in str(err.value) and len(store.buffer) == 1


def test_forget_removes_only_those_results(tmp_path):
    store = ResultStore(tmp_path, flush_rows=2)
    for i in range(5):
        store.add(f"h{i}", _result(i), "ok", _info(i))
    store.flush()
    assert store.forget(["h1", "h4"]) == 2
    assert store.index() == {"h0", "h2", "h3"}
