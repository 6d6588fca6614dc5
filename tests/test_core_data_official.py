"""The official-format loader on batch files the tests write themselves in the official pickle format."""

import hashlib
import http.server
import pickle
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from mlp.data import load_raw
from mlp.data.official import TRAIN_FILES
from mlp.errors import UserError

N_PER_BATCH = 12


def make_batches(rng) -> dict[str, tuple[np.ndarray, list[int]]]:
    out = {}
    for name in TRAIN_FILES + ("test_batch",):
        out[name] = (
            rng.integers(0, 256, size=(N_PER_BATCH, 3072), dtype=np.uint8),
            rng.integers(0, 10, size=N_PER_BATCH).tolist(),
        )
    return out


def write_folder(folder: Path, batches, override: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (x, y) in batches.items():
        payload = {b"batch_label": name.encode(), b"data": x, b"labels": y, b"filenames": []}
        raw = pickle.dumps(payload, protocol=2)
        if override and name in override:
            raw = override[name](raw)
        (folder / name).write_bytes(raw)
    return folder


def write_archive(path: Path, folder: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    return path


def data_cfg(cfg_factory, root: Path, **extra):
    cfg = cfg_factory(
        ["data=cifar10", f"data.root={root}", "data.batch_size=12", "data.download.enabled=false"]
    )
    for k, v in extra.items():
        cfg.data[k] = v
    return cfg.data


def check_arrays(raw, batches):
    want_x = np.concatenate([batches[n][0] for n in TRAIN_FILES])
    assert raw.train_x.shape == (5 * N_PER_BATCH, 3072) and raw.train_x.dtype == np.uint8
    np.testing.assert_array_equal(raw.train_x, want_x)
    np.testing.assert_array_equal(raw.train_y, sum((batches[n][1] for n in TRAIN_FILES), []))
    np.testing.assert_array_equal(raw.test_x, batches["test_batch"][0])
    assert not raw.synthetic


def test_reads_extracted_folder_and_archive_identically(cfg_factory, tmp_path):
    batches = make_batches(np.random.default_rng(0))
    folder = write_folder(tmp_path / "root" / "cifar-10-batches-py", batches)
    raw_dir = load_raw(data_cfg(cfg_factory, tmp_path / "root"))
    check_arrays(raw_dir, batches)
    archive = write_archive(tmp_path / "cifar-10-python.tar.gz", folder)
    raw_tar = load_raw(data_cfg(cfg_factory, archive))
    check_arrays(raw_tar, batches)
    assert raw_tar.decoded_now


def test_batch_k_is_data_batch_k(cfg_factory, tmp_path):
    from mlp.data import build_dataset

    batches = make_batches(np.random.default_rng(1))
    write_folder(tmp_path / "cifar-10-batches-py", batches)
    cfg = cfg_factory(
        [
            "data=cifar10",
            f"data.root={tmp_path}",
            "data.batch_size=12",
            "split.train_batches=[3]",
            "split.val_batch=5",
        ]
    )
    ds = build_dataset(load_raw(cfg.data), cfg.split, 12)
    np.testing.assert_array_equal(ds.train.x, batches["data_batch_3"][0])
    np.testing.assert_array_equal(ds.val.x, batches["data_batch_5"][0])


@pytest.mark.parametrize(
    "name,corrupt,message",
    [
        ("data_batch_2", lambda raw: raw[: len(raw) // 2], "not a readable CIFAR-10 pickle"),
        ("data_batch_1", lambda raw: b"garbage", "not a readable CIFAR-10 pickle"),
        (
            "test_batch",
            lambda raw: pickle.dumps({b"data": np.zeros((3, 100), np.uint8), b"labels": [0, 1, 2]}),
            "must be uint8 of shape",
        ),
        (
            "data_batch_4",
            lambda raw: pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}),
            "labels out of range",
        ),
        (
            "data_batch_5",
            lambda raw: pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1]}),
            "labels for 2 images",
        ),
    ],
)
def test_bad_batch_files_give_one_line_naming_the_file(
    cfg_factory, tmp_path, name, corrupt, message
):
    batches = make_batches(np.random.default_rng(2))
    write_folder(tmp_path / "cifar-10-batches-py", batches, {name: corrupt})
    with pytest.raises(UserError) as err:
        load_raw(data_cfg(cfg_factory, tmp_path))
    assert message in str(err.value) and name in str(err.value) and "\n" not in str(err.value)


def test_truncated_archive_is_reported(cfg_factory, tmp_path):
    batches = make_batches(np.random.default_rng(3))
    archive = write_archive(
        tmp_path / "cifar-10-python.tar.gz", write_folder(tmp_path / "src", batches)
    )
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="corrupted or truncated archive"):
        load_raw(data_cfg(cfg_factory, archive))


def test_missing_data_without_download_says_where_to_put_it(cfg_factory, tmp_path):
    with pytest.raises(UserError, match="put cifar-10-python.tar.gz or cifar-10-batches-py/ there"):
        load_raw(data_cfg(cfg_factory, tmp_path / "nothing_here"))


def _serve(directory: Path):
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(
        *a, directory=str(directory), **k
    )  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_download_verifies_md5_then_reads(cfg_factory, tmp_path):
    batches = make_batches(np.random.default_rng(4))
    served = tmp_path / "served"
    served.mkdir()
    archive = write_archive(
        served / "cifar-10-python.tar.gz", write_folder(tmp_path / "src", batches)
    )
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    server = _serve(served)
    try:
        url = f"http://127.0.0.1:{server.server_port}/cifar-10-python.tar.gz"
        cfg = cfg_factory(
            [
                "data=cifar10",
                f"data.root={tmp_path / 'dl'}",
                f"data.download.url={url}",
                f"data.download.md5={md5}",
                "data.download.timeout_s=5",
            ]
        )
        check_arrays(load_raw(cfg.data), batches)
        assert (tmp_path / "dl" / "cifar-10-python.tar.gz").is_file()
        cfg.data.root = str(tmp_path / "dl2")
        cfg.data.download.md5 = "0" * 32
        with pytest.raises(UserError, match="md5"):
            load_raw(cfg.data)
        assert not list((tmp_path / "dl2").glob("*"))  # nothing half-written left behind
    finally:
        server.shutdown()


def test_offline_download_fails_with_one_line(cfg_factory, tmp_path):
    cfg = cfg_factory(
        [
            "data=cifar10",
            f"data.root={tmp_path / 'dl'}",
            "data.download.url=http://127.0.0.1:9/cifar-10-python.tar.gz",
            "data.download.timeout_s=2",
        ]
    )
    with pytest.raises(UserError) as err:
        load_raw(cfg.data)
    msg = str(err.value)
    assert "download" in msg and str(tmp_path / "dl") in msg and "\n" not in msg
    assert not (tmp_path / "dl").exists()  # no empty folder left behind
