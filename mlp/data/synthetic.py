"""A small, seeded, learnable stand-in with CIFAR-10's shapes, for smoke runs and fast tests only."""

from __future__ import annotations

import numpy as np

N_FEATURES = 3072
N_CLASSES = 10


def make(
    n_train: int, n_test: int, class_sep: float, noise: float, seed: int
) -> dict[str, np.ndarray]:
    """Class prototypes plus Gaussian noise, quantised to uint8 like real pixels.

    class_sep (per-pixel std of the prototypes around mid-grey) against noise sets how
    hard it is: small enough that accuracy is well short of 100%, so λ and the schedule matter.
    """
    rng = np.random.default_rng(seed)
    prototypes = 128.0 + rng.normal(0.0, class_sep, size=(N_CLASSES, N_FEATURES))

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, N_CLASSES, size=n).astype(np.uint8)
        x = prototypes[y] + rng.normal(0.0, noise, size=(n, N_FEATURES))
        return np.clip(np.rint(x), 0, 255).astype(np.uint8), y

    train_x, train_y = draw(n_train)
    test_x, test_y = draw(n_test)
    return {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}
