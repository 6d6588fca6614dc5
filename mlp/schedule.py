"""Learning-rate schedules: the triangular cyclic rate of Smith (2015) and a constant rate."""

from __future__ import annotations

import numpy as np


def cyclic_eta(t, eta_min: float, eta_max: float, n_s: int):
    """η_t rising linearly η_min→η_max over n_s steps, then falling back over n_s steps.

    Works on scalars and arrays of step indices alike.
    """
    pos = np.mod(t, 2 * n_s)
    frac = np.where(pos <= n_s, pos / n_s, 2.0 - pos / n_s)
    eta = eta_min + (eta_max - eta_min) * frac
    return float(eta) if np.ndim(eta) == 0 else eta


def make_schedule(train_cfg, n_s: int | None):
    """A function step → η for the configured schedule."""
    if train_cfg.schedule == "constant":
        eta = float(train_cfg.eta)
        return lambda t: eta
    assert n_s is not None, "a cyclic schedule has a step size n_s"
    return lambda t: cyclic_eta(t, float(train_cfg.eta_min), float(train_cfg.eta_max), n_s)
