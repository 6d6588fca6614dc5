"""Whole-split evaluation (chunked, normalisation folded into W1, scores through SciPy's gemm)
against the model's plain loss/cost/accuracy on normalised inputs."""

import numpy as np
import pytest

from mlp.data import Split
from mlp.evaluate import chunk_rows, evaluate
from mlp.model import init_params, loss_and_cost, scores


@pytest.mark.parametrize(
    "dtype,order,rtol", [(np.float64, "C", 1e-12), (np.float32, "F", 1e-5), (np.float32, "C", 1e-5)]
)
def test_evaluate_matches_the_model_on_normalised_inputs(dtype, order, rtol):
    rng = np.random.default_rng(9)
    n = chunk_rows(3072, dtype) * 2 + 37  # two full chunks and a partial one
    x = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    y = rng.integers(0, 10, size=n).astype(np.uint8)
    mean, inv_std = x.mean(0), 1 / x.std(0)
    params = init_params(3072, 50, 10, np.random.default_rng(2), dtype)
    params["W1"] = np.asarray(
        params["W1"] * 8, order=order
    )  # larger weights: a spread of predictions
    got = evaluate(params, Split(x, y), mean, inv_std, lam=0.01)
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    xn = (x - mean) * inv_std
    loss, cost = loss_and_cost(p64, xn, y, 0.01)
    acc = float((scores(p64, xn).argmax(axis=1) == y).mean())
    assert got["loss"] == pytest.approx(float(loss), rel=rtol)
    assert got["cost"] == pytest.approx(float(cost), rel=rtol)
    assert abs(got["acc"] - acc) <= 2 / n  # float32 may flip a near-tie
    assert 0.0 < got["acc"] < 1.0
