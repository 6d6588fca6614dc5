import numpy as np
import pytest

from mlp.data import RawData, build_dataset
from mlp.data.splits import feature_stats
from mlp.errors import UserError


def raw_data(n_batches=5, per_batch=20):
    rng = np.random.default_rng(0)
    n = n_batches * per_batch
    return RawData(
        rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        (np.arange(n) % 10).astype(np.uint8),
        rng.integers(0, 256, (7, 3072), dtype=np.uint8),
        np.zeros(7, np.uint8),
        "test",
        False,
        False,
        0.0,
    )


def split(**kw):
    from omegaconf import OmegaConf

    base = {"train_batches": [1], "val_batch": 2, "val_holdout": None, "train_limit": None}
    return OmegaConf.create({**base, **kw})


def test_batches_holdout_and_stats_from_training_split_only():
    raw = raw_data()
    ds = build_dataset(
        raw, split(train_batches=[1, 2, 3, 4, 5], val_batch=None, val_holdout=15), 20
    )
    assert len(ds.train) == 85 and len(ds.val) == 15 and len(ds.test) == 7
    np.testing.assert_array_equal(ds.val.x, raw.train_x[85:])
    assert np.shares_memory(ds.train.x, raw.train_x)  # a view, not a copy
    np.testing.assert_allclose(ds.mean, raw.train_x[:85].mean(0))
    np.testing.assert_allclose(1 / ds.inv_std, raw.train_x[:85].astype(float).std(0))
    # the hold-out rows do not leak into the statistics
    assert not np.allclose(ds.mean, raw.train_x.mean(0))


def test_non_consecutive_batches_and_limit():
    raw = raw_data()
    ds = build_dataset(raw, split(train_batches=[1, 3], val_batch=5, train_limit=30), 20)
    np.testing.assert_array_equal(
        ds.train.x, np.concatenate([raw.train_x[:20], raw.train_x[40:50]])
    )
    np.testing.assert_array_equal(ds.val.x, raw.train_x[80:])


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"train_batches": [6]}, "split batch 6 does not exist"),
        ({"val_batch": 1}, "also a training batch"),
        ({"val_batch": None}, "exactly one of"),
        ({"val_batch": None, "val_holdout": 20}, "split.val_holdout=20"),
        ({"train_limit": 0}, "split.train_limit=0"),
        ({"train_batches": []}, "empty"),
    ],
)
def test_bad_splits(kw, message):
    with pytest.raises(UserError, match=message):
        build_dataset(raw_data(), split(**kw), 20)


def test_feature_stats_exact_over_many_chunks():
    """Several STATS_CHUNK chunks, including all-255 columns (the largest per-chunk uint32 sums)."""
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, size=(1_337, 64), dtype=np.uint8)
    x[:, :4] = 255
    mean, inv_std = feature_stats(x)
    xf = x.astype(np.float64)
    np.testing.assert_allclose(mean, xf.mean(axis=0), rtol=1e-14)
    std = xf.std(axis=0)
    np.testing.assert_allclose(inv_std, 1.0 / np.where(std > 0, std, 1.0), rtol=1e-9)
