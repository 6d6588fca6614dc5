"""The official CIFAR-10 python version: `cifar-10-batches-py/` or `cifar-10-python.tar.gz`."""

from __future__ import annotations

import hashlib
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

from mlp.errors import UserError

BATCH_FOLDER = "cifar-10-batches-py"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
TRAIN_FILES = tuple(f"data_batch_{k}" for k in range(1, 6))
TEST_FILE = "test_batch"
N_FEATURES = 3072
N_CLASSES = 10


def parse_batch(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode one pickled batch dict and check it has the official layout."""
    try:
        batch = pickle.loads(raw, encoding="bytes")
    except Exception as exc:  # truncated or not a pickle at all
        raise UserError(
            f"{name}: not a readable CIFAR-10 pickle ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise UserError(f"{name}: CIFAR-10 batch must be a dict with b'data' and b'labels'")
    x = np.asarray(batch[b"data"])
    y = np.asarray(batch[b"labels"])
    if x.ndim != 2 or x.shape[1] != N_FEATURES or x.dtype != np.uint8:
        raise UserError(
            f"{name}: b'data' must be uint8 of shape (N, {N_FEATURES}), got {x.dtype} {x.shape}"
        )
    if y.shape != (x.shape[0],):
        raise UserError(f"{name}: {y.shape[0] if y.ndim else 0} labels for {x.shape[0]} images")
    if y.size and (y.min() < 0 or y.max() >= N_CLASSES):
        raise UserError(
            f"{name}: labels out of range 0..{N_CLASSES - 1} (found {y.min()}..{y.max()})"
        )
    return x, y.astype(np.uint8)


def _stack(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def read_folder(folder: Path) -> dict[str, np.ndarray]:
    parts = {}
    for name in TRAIN_FILES + (TEST_FILE,):
        f = folder / name
        if not f.is_file():
            raise UserError(
                f"{f}: missing CIFAR-10 batch file (need {', '.join(TRAIN_FILES)}, {TEST_FILE})"
            )
        parts[name] = parse_batch(f.read_bytes(), str(f))
    train_x, train_y = _stack([parts[n] for n in TRAIN_FILES])
    test_x, test_y = parts[TEST_FILE]
    return {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}


def read_archive(archive: Path) -> dict[str, np.ndarray]:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            parts = {}
            for name in TRAIN_FILES + (TEST_FILE,):
                if name not in members:
                    raise UserError(f"{archive}: archive has no {name}")
                member = tar.extractfile(members[name])
                if member is None:
                    raise UserError(f"{archive}: {name} is not a regular file")
                parts[name] = parse_batch(member.read(), f"{archive}:{name}")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise UserError(f"{archive}: corrupted or truncated archive ({exc})") from None
    train_x, train_y = _stack([parts[n] for n in TRAIN_FILES])
    test_x, test_y = parts[TEST_FILE]
    return {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}


def md5_of(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(url: str, md5: str, dest_dir: Path, timeout_s: float) -> Path:
    """Fetch the official archive into dest_dir, verify its md5, return its path."""
    created = not dest_dir.exists()
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / ARCHIVE_NAME
    with tempfile.NamedTemporaryFile(dir=dest_dir, suffix=".part", delete=False) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as resp:
                shutil.copyfileobj(resp, tmp)
        except Exception as exc:
            Path(tmp.name).unlink(missing_ok=True)
            if created:
                dest_dir.rmdir()  # leave the disk as it was
            raise UserError(
                f"CIFAR-10 not found at {dest_dir} and download from {url} failed ({exc}); "
                f"put {ARCHIVE_NAME} or {BATCH_FOLDER}/ there, or set data.root"
            ) from None
    got = md5_of(Path(tmp.name))
    if got != md5:
        Path(tmp.name).unlink(missing_ok=True)
        raise UserError(f"{url}: downloaded archive has md5 {got}, expected {md5}")
    Path(tmp.name).rename(target)
    return target


def locate(root: Path) -> Path | None:
    """The batch folder or archive under root, or None when neither is there."""
    if root.is_file():
        return root
    for candidate in (root / BATCH_FOLDER, root):
        if (candidate / TRAIN_FILES[0]).is_file():
            return candidate
    if (root / ARCHIVE_NAME).is_file():
        return root / ARCHIVE_NAME
    return None


def resolve_source(root: Path, download_cfg) -> Path:
    """Find the official data under root, downloading it when allowed and absent."""
    found = locate(root)
    if found is not None:
        return found
    if root.suffixes[-2:] == [".tar", ".gz"]:
        raise UserError(f"{root}: no such archive")
    if not download_cfg.enabled:
        raise UserError(
            f"CIFAR-10 not found at {root}: put {ARCHIVE_NAME} or {BATCH_FOLDER}/ there, or set data.root"
        )
    return download(download_cfg.url, download_cfg.md5, root, download_cfg.timeout_s)


def read(source: Path) -> dict[str, np.ndarray]:
    return read_archive(source) if source.is_file() else read_folder(source)
