import numpy as np
import pytest

from mlp.schedule import cyclic_eta


@pytest.mark.parametrize(
    "t,expected",
    [
        (0, 1e-5),
        (500, 1e-1),
        (1000, 1e-5),
        (250, 1e-5 + 0.5 * (1e-1 - 1e-5)),
        (750, 1e-5 + 0.5 * (1e-1 - 1e-5)),
        (1500, 1e-1),
        (2000, 1e-5),
    ],
)
def test_cyclic_eta_at_cycle_boundaries(t, expected):
    assert cyclic_eta(t, 1e-5, 1e-1, 500) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_cyclic_eta_vectorised_matches_scalar_and_is_triangular():
    t = np.arange(0, 101)
    eta = cyclic_eta(t, 0.05, 0.1, 10)
    assert np.allclose(eta, [cyclic_eta(int(s), 0.05, 0.1, 10) for s in t])
    assert eta.max() == pytest.approx(0.1) and eta.min() == pytest.approx(0.05)
    # linear pieces: constant absolute slope (η_max − η_min) / n_s everywhere
    assert np.allclose(np.abs(np.diff(eta)), 0.005)
    assert np.all(eta[10::20] == pytest.approx(0.1)) and np.all(eta[0::20] == pytest.approx(0.05))
