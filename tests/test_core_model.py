"""Loss/cost definitions on a hand-computed case, and the training step against its own gradients."""

import numpy as np
import pytest

from mlp.model import init_params, l2_penalty, loss_and_cost
from mlp.sgd import SGDStep


def test_loss_and_cost_hand_computed():
    # 2 inputs, 2 hidden, 2 classes; hidden = ReLU([x0 - x1, x0 + x1])
    params = {
        "W1": np.array([[1.0, -1.0], [1.0, 1.0]]),
        "b1": np.array([0.0, -1.0]),
        "W2": np.array([[1.0, 0.0], [0.0, 2.0]]),
        "b2": np.array([0.5, 0.0]),
    }
    x = np.array([[2.0, 1.0], [0.0, 1.0]])
    y = np.array([0, 1])
    # sample 0: h = [1, 2], s = [1.5, 4]; sample 1: h = [0, 0], s = [0.5, 0]
    ce0 = -np.log(np.exp(1.5) / (np.exp(1.5) + np.exp(4.0)))
    ce1 = -np.log(np.exp(0.0) / (np.exp(0.5) + np.exp(0.0)))
    loss, cost = loss_and_cost(params, x, y, lam=0.1)
    assert loss == pytest.approx((ce0 + ce1) / 2, rel=1e-14)
    assert l2_penalty(params) == pytest.approx(4.0 + 5.0)
    assert cost == pytest.approx((ce0 + ce1) / 2 + 0.1 * 9.0, rel=1e-14)


def _reference_gradients(p, x, y, lam):
    """Textbook backprop with the study's column layout, written independently of SGDStep."""
    X, n = x.T, x.shape[0]
    Y = np.eye(p["W2"].shape[0])[:, y]
    H = np.maximum(p["W1"] @ X + p["b1"][:, None], 0)
    S = p["W2"] @ H + p["b2"][:, None]
    P = np.exp(S - S.max(0)) / np.exp(S - S.max(0)).sum(0)
    G = -(Y - P)
    dW2 = G @ H.T / n + 2 * lam * p["W2"]
    db2 = G.sum(1) / n
    G = (p["W2"].T @ G) * (H > 0)
    return {"W1": G @ X.T / n + 2 * lam * p["W1"], "b1": G.sum(1) / n, "W2": dW2, "b2": db2}


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-10), (np.float32, 2e-4)])
def test_step_gradients_match_textbook_backprop(dtype, rtol):
    rng = np.random.default_rng(7)
    params = init_params(3072, 50, 10, np.random.default_rng(1), dtype)
    x_u8 = rng.integers(0, 256, size=(300, 3072)).astype(np.uint8)
    y = rng.integers(0, 10, size=300).astype(np.uint8)
    mean, inv_std = x_u8.mean(0), 1 / x_u8.std(0)
    stepper = SGDStep(params, 100, mean, inv_std)
    idx = rng.permutation(300)[:100]
    b = stepper.load_batch(x_u8, idx)
    got = stepper.gradients(b, y[idx], 0.01)
    xn = (x_u8[idx] - mean) * inv_std
    want = _reference_gradients(
        {k: v.astype(np.float64) for k, v in params.items()}, xn, y[idx], 0.01
    )
    for name in want:
        scale = np.abs(want[name]).max()
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=rtol * scale, err_msg=name)


def test_step_applies_minus_eta_times_gradient_with_partial_batch():
    rng = np.random.default_rng(3)
    params = init_params(3072, 50, 10, np.random.default_rng(2), np.float64)
    x_u8 = rng.integers(0, 256, size=(130, 3072)).astype(np.uint8)
    y = rng.integers(0, 10, size=130).astype(np.uint8)
    mean, inv_std = x_u8.mean(0), 1 / x_u8.std(0)
    before = {k: v.copy() for k, v in params.items()}
    idx = np.arange(100, 130)  # a last, partial mini-batch of 30
    xn = (x_u8[idx] - mean) * inv_std
    want = _reference_gradients(before, xn, y[idx], 0.05)
    SGDStep(params, 100, mean, inv_std).step(x_u8, y, idx, 0.05, 0.02)
    for name in params:
        np.testing.assert_allclose(
            params[name], before[name] - 0.02 * want[name], rtol=1e-10, atol=1e-13
        )


def test_init_is_seeded_and_scaled():
    a = init_params(3072, 50, 10, np.random.default_rng(0), np.float64)
    b = init_params(3072, 50, 10, np.random.default_rng(0), np.float64)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert a["W1"].std() == pytest.approx(1 / np.sqrt(3072), rel=0.02)
    assert a["W2"].std() == pytest.approx(1 / np.sqrt(50), rel=0.1)
    assert not a["b1"].any() and not a["b2"].any()
    assert init_params(20, 5, 10, np.random.default_rng(0), np.float32)["W1"].dtype == np.float32
