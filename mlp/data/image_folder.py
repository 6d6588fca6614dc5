"""Image-folder CIFAR-10 (`<root>/{train,test}/<class>/*.jpg`, as a folder or a .tar.gz of one).

Images are decoded with Pillow into the official layout: uint8 rows of 3072 values,
channel-major (all R, then G, then B), so both sources feed the same code.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from mlp.errors import UserError

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SPLITS = ("train", "test")
IMAGE_SHAPE = (32, 32, 3)


def _classify(parts: tuple[str, ...], where: str) -> tuple[str, int] | None:
    """(split, class index) for a file at <top?>/<split>/<class>/<file>, None for files outside the tree."""
    if len(parts) not in (3, 4) or parts[-3] not in SPLITS or parts[-1].startswith("."):
        return None
    if parts[-2] not in CLASSES:
        raise UserError(
            f"{where}: unknown class folder '{parts[-2]}' (allowed: {', '.join(CLASSES)})"
        )
    return parts[-3], CLASSES.index(parts[-2])


def _decode(raw: bytes, where: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(raw)) as img:
            pixels = np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise UserError(f"{where}: not a readable image ({exc})") from None
    if pixels.shape != IMAGE_SHAPE:
        raise UserError(f"{where}: image is {pixels.shape[1]}x{pixels.shape[0]}, expected 32x32")
    return pixels


def _iter_archive(archive: Path) -> Iterator[tuple[tuple[str, ...], str, bytes]]:
    try:
        with tarfile.open(archive, "r|gz") as tar:
            for member in tar:
                f = tar.extractfile(member) if member.isfile() else None
                if f is not None:
                    yield PurePosixPath(member.name).parts, f"{archive}:{member.name}", f.read()
    except (tarfile.TarError, EOFError, OSError, Image.DecompressionBombError) as exc:
        raise UserError(f"{archive}: corrupted or truncated archive ({exc})") from None


def _iter_folder(folder: Path) -> Iterator[tuple[tuple[str, ...], str, bytes]]:
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            yield f.relative_to(folder).parts, str(f), f.read_bytes()


def read(source: Path, permutation_seed: int) -> dict[str, np.ndarray]:
    """Decode every image; training images are put in a fixed seeded order so that
    'batch k' is simply the k-th block of 10,000 rows."""
    entries: dict[str, list[tuple[int, str, np.ndarray]]] = {s: [] for s in SPLITS}
    files = _iter_archive(source) if source.is_file() else _iter_folder(source)
    for parts, where, raw in files:
        hit = _classify(parts, where)
        if hit is None:
            continue
        split, label = hit
        entries[split].append((label, parts[-1], _decode(raw, where)))
    out = {}
    for split in SPLITS:
        if not entries[split]:
            raise UserError(
                f"{source}: no images under {split}/<class>/ "
                f"(expected {split}/airplane/..., {split}/truck/...)"
            )
        entries[split].sort(key=lambda e: (e[0], e[1]))
        labels = np.array([e[0] for e in entries[split]], dtype=np.uint8)
        pixels = np.stack([e[2] for e in entries[split]])  # (N, 32, 32, 3)
        rows = pixels.transpose(0, 3, 1, 2).reshape(len(labels), -1)
        if split == "train":
            order = np.random.default_rng(permutation_seed).permutation(len(labels))
            rows, labels = rows[order], labels[order]
        out[f"{split}_x"], out[f"{split}_y"] = np.ascontiguousarray(rows), labels
    return out
