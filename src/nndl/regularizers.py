"""L2 and L1 weight penalties with the book's lambda/n convention.

The book adds (lambda / 2n) sum w^2 (L2, eq. 85) or (lambda / n) sum |w|
(L1, eq. 95) to the cost, where n is the size of the *training set*, not of
the mini-batch. So the penalty's gradient, lambda/n * w or lambda/n * sgn(w),
is added once per mini-batch to the averaged gradient (1/m) nabla_w. Biases
are not regularised.
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError


class Regularizer:
    name: str = ""

    def __init__(self, lmbda: float) -> None:
        if isinstance(lmbda, bool) or not isinstance(lmbda, (int, float, np.integer, np.floating)):
            raise ConfigError(f"{self.name} regularisation parameter lambda must be a number >= 0, got {lmbda!r}")
        lmbda = float(lmbda)
        if not np.isfinite(lmbda) or lmbda < 0:
            raise ConfigError(f"{self.name} regularisation parameter lambda must be >= 0, got {lmbda}")
        self.lmbda = lmbda

    def penalty(self, weights: list[np.ndarray], n: int) -> float:
        """The term added to the cost for a training set of size ``n``."""
        raise NotImplementedError

    def grad(self, w: np.ndarray, n: int) -> np.ndarray:
        """d(penalty)/dw for one weight array."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lmbda={self.lmbda})"


class L2(Regularizer):
    name = "L2"

    def penalty(self, weights, n):
        return 0.5 * (self.lmbda / n) * sum(float(np.sum(w * w)) for w in weights)

    def grad(self, w, n):
        return (self.lmbda / n) * w


class L1(Regularizer):
    name = "L1"

    def penalty(self, weights, n):
        return (self.lmbda / n) * sum(float(np.sum(np.abs(w))) for w in weights)

    def grad(self, w, n):
        return (self.lmbda / n) * np.sign(w)
