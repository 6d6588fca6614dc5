"""The fused training step (W updates inside the backward GEMMs) against the plain
gradients-then-update path, over several steps and a partial last batch."""

import numpy as np
import pytest

from mlp.model import init_params
from mlp.sgd import SGDStep


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-4)])
def test_fused_step_equals_gradients_then_update(dtype, rtol):
    rng = np.random.default_rng(11)
    x_u8 = rng.integers(0, 256, size=(250, 3072)).astype(np.uint8)
    y = rng.integers(0, 10, size=250).astype(np.uint8)
    mean, inv_std = x_u8.mean(0), 1 / x_u8.std(0)
    init = init_params(3072, 50, 10, np.random.default_rng(4), dtype)
    fused_p = {k: v.copy() for k, v in init.items()}
    plain_p = {k: v.copy() for k, v in init.items()}
    fused = SGDStep(fused_p, 100, mean, inv_std)
    plain = SGDStep(plain_p, 100, mean, inv_std, fused=False)
    assert (
        fused.gemm is not None and plain.gemm is None
    )  # scipy is a dependency: the fast path is on
    order = rng.permutation(250)
    for eta, lo in [(0.05, 0), (0.02, 100), (0.08, 200)]:  # the last batch is partial (50 rows)
        idx = order[lo : lo + 100]
        fused.step(x_u8, y, idx, 0.01, eta)
        plain.step(x_u8, y, idx, 0.01, eta)
    for name in init:
        assert not np.array_equal(fused_p[name], init[name]), name
        scale = np.abs(plain_p[name]).max()
        np.testing.assert_allclose(
            fused_p[name], plain_p[name], rtol=0, atol=rtol * scale, err_msg=name
        )


def test_fused_step_is_deterministic():
    rng = np.random.default_rng(2)
    x_u8 = rng.integers(0, 256, size=(200, 3072)).astype(np.uint8)
    y = rng.integers(0, 10, size=200).astype(np.uint8)
    mean, inv_std = x_u8.mean(0), 1 / x_u8.std(0)
    runs = []
    for _ in range(2):
        p = init_params(3072, 50, 10, np.random.default_rng(0), np.float64)
        s = SGDStep(p, 100, mean, inv_std)
        for lo in (0, 100):
            s.step(x_u8, y, np.arange(lo, lo + 100), 0.01, 0.05)
        runs.append(p)
    assert all(np.array_equal(runs[0][k], runs[1][k]) for k in runs[0])
