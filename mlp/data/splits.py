"""The study's splits ('batch k', a validation batch or hold-out, the test set) and normalisation.

Splits are views into the raw uint8 rows wherever possible; normalisation happens per
mini-batch or evaluation chunk, so no float copy of the whole training set is held.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlp.data.sources import RawData
from mlp.errors import UserError
from mlp.validate import check_split

STATS_CHUNK = (
    500  # rows per pass: the uint16 squares stay in cache; ≤ 66,051 keeps uint32 sums exact
)


@dataclass
class Split:
    x: np.ndarray  # uint8 (n, 3072)
    y: np.ndarray  # uint8 (n,)

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Dataset:
    train: Split
    val: Split
    test: Split
    mean: np.ndarray  # float64 (3072,), from the training split only
    inv_std: np.ndarray  # float64 (3072,)
    source: str
    synthetic: bool


def _batch_rows(raw: RawData, batches: list[int], batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    n_batches = len(raw.train_y) // batch_size
    for k in batches:
        if not 1 <= k <= n_batches:
            raise UserError(f"split batch {k} does not exist (allowed: 1..{n_batches})")
    if batches == list(
        range(batches[0], batches[0] + len(batches))
    ):  # consecutive: a view, no copy
        lo, hi = (batches[0] - 1) * batch_size, (batches[-1]) * batch_size
        return raw.train_x[lo:hi], raw.train_y[lo:hi]
    idx = np.concatenate([np.arange((k - 1) * batch_size, k * batch_size) for k in batches])
    return raw.train_x[idx], raw.train_y[idx]


def feature_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and 1/std of uint8 rows, from exact integer sums.

    Sums of x and x² fit in uint64 for any realistic n, so no float copy of x is made
    and the result does not depend on summation order. Each chunk sums in uint32 (exact:
    STATS_CHUNK·255² < 2³²), which halves the bytes the reductions move (0.068 vs 0.112 s
    on 45,000 images).
    """
    total = np.zeros(x.shape[1], dtype=np.uint64)
    total_sq = np.zeros(x.shape[1], dtype=np.uint64)
    for lo in range(0, len(x), STATS_CHUNK):
        chunk = x[lo : lo + STATS_CHUNK]
        total += chunk.sum(axis=0, dtype=np.uint32)
        total_sq += np.square(chunk, dtype=np.uint16).sum(axis=0, dtype=np.uint32)
    n = len(x)
    mean = total / n
    var = np.maximum(total_sq / n - mean**2, 0.0)
    std = np.sqrt(var)
    return mean, 1.0 / np.where(std > 0, std, 1.0)


def build_dataset(raw: RawData, split_cfg, batch_size: int) -> Dataset:
    check_split(split_cfg)
    train_batches = list(split_cfg.train_batches)
    tx, ty = _batch_rows(raw, train_batches, batch_size)
    val_batch, holdout = split_cfg.val_batch, split_cfg.val_holdout
    if val_batch is not None:
        val = Split(*_batch_rows(raw, [val_batch], batch_size))
    else:
        if not 0 < holdout < len(ty):
            raise UserError(
                f"split.val_holdout={holdout} must be in 1..{len(ty) - 1} (training images: {len(ty)})"
            )
        val = Split(tx[-holdout:], ty[-holdout:])
        tx, ty = tx[:-holdout], ty[:-holdout]
    limit = split_cfg.train_limit
    if limit is not None:
        if not 0 < limit <= len(ty):
            raise UserError(f"split.train_limit={limit} must be in 1..{len(ty)}")
        tx, ty = tx[:limit], ty[:limit]
    mean, inv_std = feature_stats(tx)
    return Dataset(
        Split(tx, ty), val, Split(raw.test_x, raw.test_y), mean, inv_std, raw.source, raw.synthetic
    )
