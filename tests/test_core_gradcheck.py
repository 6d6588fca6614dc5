"""Gradient check through the real experiment code path, both input sizes and both dtypes."""

import json

import numpy as np
import pytest
from conftest import SMALL_SYNTHETIC, run_cli

from mlp.experiment import run_experiment
from mlp.gradcheck import check_case

CASES_SMALL = [
    "gradcheck.cases=[{name: reduced, n_samples: 2, dims: 20, max_entries: null},"
    "{name: full, n_samples: 2, dims: 3072, max_entries: 600}]"
]


@pytest.mark.slow
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-6), ("float32", 1e-3)])
def test_gradcheck_experiment_passes_both_sizes(cfg_factory, dtype, tol):
    cfg = cfg_factory(["experiment=gradcheck", f"dtype={dtype}", *SMALL_SYNTHETIC, *CASES_SMALL])
    result = run_experiment(cfg)
    assert result["tolerance"] == tol and result["passed"]
    for case, dims in (("reduced", 20), ("full", 3072)):
        table = result["gradcheck"][case]
        assert table["dims"] == dims
        assert set(table["params"]) == {"W1", "b1", "W2", "b2"}
        for name, row in table["params"].items():
            assert row["max_rel_error"] < tol, (case, name, row)
            assert row["grad_max"] > 0 and row["abs_err_max"] <= row["grad_max"] * tol
    assert result["gradcheck"]["reduced"]["params"]["W1"]["n_entries"] == 50 * 20
    assert result["gradcheck"]["full"]["params"]["W1"]["n_entries"] == 600
    assert result["gradcheck"]["full"]["params"]["W2"]["n_entries"] == 500


def test_gradcheck_catches_a_wrong_gradient(monkeypatch):
    """The check must fail when backprop is wrong: drop the ReLU mask and see the error explode
    in W1 and b1 (upstream of the mask) while W2 and b2 (downstream) still pass."""
    from mlp import sgd

    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((2, 20)), np.array([1, 2])
    good = check_case(x, y, 50, 10, 0.01, 1e-5, np.float64, 0, None)
    assert max(row["max_rel_error"] for row in good.values()) < 1e-6

    def no_relu_mask(self, b):
        gh, s = self.gh[:b], self.scores_buffer(b)[0]
        np.matmul(s, self.params["W2"], out=gh)  # G W2, without ⊙ ReLU'(S1)
        np.negative(gh.sum(axis=0), out=self.gh[b])
        return self.gh[: b + 1]

    monkeypatch.setattr(sgd.SGDStep, "_hidden_grad", no_relu_mask)
    bad = check_case(x, y, 50, 10, 0.01, 1e-5, np.float64, 0, None)
    assert bad["W1"]["max_rel_error"] > 0.1 and bad["b1"]["max_rel_error"] > 0.1
    assert bad["W2"]["max_rel_error"] < 1e-6 and bad["b2"]["max_rel_error"] < 1e-6


@pytest.mark.slow
def test_gradcheck_cli_exits_nonzero_when_tolerance_exceeded(tmp_path):
    out = tmp_path / "run"
    proc = run_cli(
        "train.py",
        "experiment=gradcheck",
        *SMALL_SYNTHETIC,
        "gradcheck.cases=[{name: reduced, n_samples: 2, dims: 10, max_entries: null}]",
        "gradcheck.tolerance.float64=1e-20",
        f"hydra.run.dir={out}",
    )
    assert proc.returncode == 1, proc.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["passed"] is False and result["max_rel_error"] > 1e-20
    assert "FAILED" in proc.stdout


def test_perturbed_cost_is_loss_and_cost_to_the_bit():
    """The gradient check's cached cost of a one-entry perturbation equals a full loss_and_cost."""
    from mlp.gradcheck import PerturbedCost
    from mlp.model import init_params, loss_and_cost

    rng = np.random.default_rng(1)
    for dims in (20, 300):
        x = rng.standard_normal((2, dims)).astype(np.longdouble)
        y = np.array([3, 7])
        p = init_params(dims, 50, 10, rng, np.float64)
        p = {k: np.ascontiguousarray(v, dtype=np.longdouble) for k, v in p.items()}
        p["b1"][:] = rng.standard_normal(50) * 0.1
        cost = PerturbedCost(p, x, y, 0.01)
        for name in ("W1", "b1", "W2", "b2"):
            flat = p[name].reshape(-1)
            for i in rng.choice(flat.size, min(40, flat.size), replace=False):
                keep = flat[i]
                for step in (1e-5, -1e-5):
                    flat[i] = keep + step
                    assert cost(name, int(i)) == loss_and_cost(p, x, y, 0.01)[1], (name, i)
                flat[i] = keep
