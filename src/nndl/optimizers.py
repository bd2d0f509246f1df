"""Stochastic gradient descent, with momentum and weight penalties (book ch. 1, 3).

One step, for every parameter p with summed mini-batch gradient nabla_p:

    g = nabla_p / m  (+ lambda/n * w for L2, lambda/n * sgn(w) for L1, weights only)
    plain SGD:  p <- p - eta * g                         (eq. 20-21, 93)
    momentum:   v <- mu * v - eta * g;  p <- p + v       (eq. 107-108)

m is the mini-batch size, n the training-set size: this is the one place
where 1/m and lambda/n enter. For L2 without momentum this is the book's
w <- (1 - eta lambda / n) w - (eta / m) nabla_w.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .errors import ConfigError
from .regularizers import Regularizer


class SGD:
    """Mini-batch stochastic gradient descent.

    Args:
        eta: learning rate (> 0).
        momentum: the momentum coefficient mu in [0, 1); 0 is plain SGD.
        regularizers: weight penalties (:class:`~nndl.regularizers.L2`, ``L1``).
    """

    def __init__(self, eta: float, momentum: float = 0.0, regularizers: Sequence[Regularizer] = ()) -> None:
        eta = float(eta)
        if not math.isfinite(eta) or eta <= 0:
            raise ConfigError(f"learning rate eta must be a positive number, got {eta}")
        momentum = float(momentum)
        if not (0.0 <= momentum < 1.0):
            raise ConfigError(f"momentum must be in [0, 1), got {momentum}")
        self.eta = eta
        self.momentum = momentum
        self.regularizers = list(regularizers)
        self.velocity: dict[tuple[int, str], np.ndarray] = {}

    def step(self, layers, m: int, n: int) -> None:
        """Update the parameters of ``layers`` from their ``grads`` (summed over ``m`` examples)."""
        for i, layer in enumerate(layers):
            regularized = getattr(layer, "regularized", ())
            for key, p in layer.params.items():
                g = layer.grads[key] / m
                if key in regularized:
                    for r in self.regularizers:
                        g = g + r.grad(p, n)
                if self.momentum:
                    v = self.velocity.get((i, key))
                    if v is None:
                        v = self.velocity[(i, key)] = np.zeros_like(p)
                    v *= self.momentum
                    v -= self.eta * g
                    p += v
                else:
                    p -= self.eta * g

    def __repr__(self) -> str:
        return f"SGD(eta={self.eta}, momentum={self.momentum}, regularizers={self.regularizers})"
