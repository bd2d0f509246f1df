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
import weakref
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

    The optimizer owns one velocity buffer per parameter (``velocity[(layer
    index, key)]``, created at the first step). The first :meth:`step` binds
    it to that network's parameter arrays; stepping another network's layers
    afterwards is refused rather than silently reusing the velocities.
    :meth:`state_dict` / :meth:`load_state_dict` carry eta and the velocities
    (for checkpoints).
    """

    def __init__(self, eta: float, momentum: float = 0.0, regularizers: Sequence[Regularizer] = ()) -> None:
        if isinstance(eta, bool) or isinstance(momentum, bool):
            raise ConfigError(f"eta and momentum must be numbers, got eta={eta!r}, momentum={momentum!r}")
        try:
            eta = float(eta)
            momentum = float(momentum)
        except (TypeError, ValueError):
            raise ConfigError(f"eta and momentum must be numbers, got eta={eta!r}, momentum={momentum!r}") from None
        if not math.isfinite(eta) or eta <= 0:
            raise ConfigError(f"learning rate eta must be a positive number, got {eta}")
        if not (0.0 <= momentum < 1.0):
            raise ConfigError(f"momentum must be in [0, 1), got {momentum}")
        self.eta = eta
        self.momentum = momentum
        if isinstance(regularizers, Regularizer):
            regularizers = [regularizers]
        try:
            self.regularizers = list(regularizers)
        except TypeError:
            raise ConfigError(f"regularizers must be a list of nndl regularizers (L1, L2), got {regularizers!r}") from None
        for r in self.regularizers:
            if not isinstance(r, Regularizer):
                raise ConfigError(f"regularizers must be nndl regularizers (L1, L2), got {r!r}")
        self.velocity: dict[tuple[int, str], np.ndarray] = {}
        self._bound: list[tuple[int, str, weakref.ref]] | None = None

    def bind(self, layers) -> None:
        """Attach to the parameters of ``layers`` (done by the first step).

        Raises ConfigError when already attached to other parameters."""
        bound = self._bound
        if bound is None:
            self._bound = [(i, key, weakref.ref(p)) for i, layer in enumerate(layers)
                           for key, p in layer.params.items()]
            return
        # every step: the same arrays, in the same order, as when it was bound
        params = [p for layer in layers for p in layer.params.values()]
        if len(params) != len(bound) or any(r() is not p for (_, _, r), p in zip(bound, params)):
            raise ConfigError("this SGD already holds the state of another network's parameters; "
                              "create a new SGD for each network")

    def step(self, layers, m: int, n: int) -> None:
        """Update the parameters of ``layers`` from their ``grads`` (summed over ``m`` examples),
        for a training set of ``n`` examples (the n of lambda/n)."""
        self.bind(layers)
        for i, layer in enumerate(layers):
            for key, p in layer.params.items():
                g = layer.grads[key] / m
                if key in layer.regularized:
                    for r in self.regularizers:
                        g = g + r.grad(p, n)
                if self.momentum:
                    v = self.velocity_of(i, key, p)
                    v *= self.momentum
                    v -= self.eta * g
                    p += v
                else:
                    p -= self.eta * g

    def velocity_of(self, i: int, key: str, p: np.ndarray) -> np.ndarray:
        """The velocity buffer of parameter ``key`` of layer ``i`` (zeros at first)."""
        v = self.velocity.get((i, key))
        if v is None:
            v = self.velocity[(i, key)] = np.zeros_like(p)
        return v

    # -- state, for checkpoints -------------------------------------------------------
    def state_dict(self) -> dict:
        """``{"eta": float, "velocity": {"<layer>.<key>": array}}`` (copies)."""
        return {"eta": self.eta, "velocity": {f"{i}.{k}": v.copy() for (i, k), v in self.velocity.items()}}

    def load_state_dict(self, state: dict) -> None:
        try:
            eta = float(state["eta"])
            velocity = {}
            for name, v in state["velocity"].items():
                i, _, key = name.partition(".")
                velocity[(int(i), key)] = np.array(v)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ConfigError(f"not an SGD state (expected eta and velocity): {e}") from None
        if not math.isfinite(eta) or eta <= 0:
            raise ConfigError(f"SGD state has eta {eta}; it must be a positive number")
        self.eta = eta
        self.velocity = velocity

    def __repr__(self) -> str:
        return f"SGD(eta={self.eta}, momentum={self.momentum}, regularizers={self.regularizers})"
