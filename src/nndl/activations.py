"""Activation functions and their derivatives.

Each activation is a small object with ``fn(z)`` and ``prime(z, a)``: the
derivative is given the pre-activation ``z`` and the already computed output
``a = fn(z)`` so that sigmoid and tanh can reuse ``a`` (sigma' = a (1 - a)).
Arrays are batch-first, any shape; everything is elementwise except softmax,
which normalises over the last axis.

Look activations up by name with :func:`get` (``ACTIVATIONS`` lists them).
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError
from .registry import lookup


class Activation:
    name: str = ""
    elementwise: bool = True

    def fn(self, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def prime(self, z: np.ndarray, a: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, z: np.ndarray) -> np.ndarray:
        return self.fn(z)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function 1 / (1 + e^-z), stable for large |z| (book eq. 3/4)."""
    z = np.asarray(z)
    if not np.issubdtype(z.dtype, np.floating):
        z = z.astype(np.float64)
    # exp(-|z|) never overflows (it may underflow to 0, which is the right
    # limit); the two branches are the same function.
    with np.errstate(under="ignore"):
        e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype, copy=False)


def sigmoid_prime(z: np.ndarray) -> np.ndarray:
    """sigma'(z) = sigma(z) (1 - sigma(z))."""
    s = sigmoid(z)
    return s * (1 - s)


def softmax(z: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (book eq. 78), shifted by the max for stability."""
    z = np.asarray(z)
    if not np.issubdtype(z.dtype, np.floating):
        z = z.astype(np.float64)
    with np.errstate(under="ignore"):
        e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class Sigmoid(Activation):
    name = "sigmoid"

    def fn(self, z):
        return sigmoid(z)

    def prime(self, z, a):
        return a * (1 - a)


class Tanh(Activation):
    name = "tanh"

    def fn(self, z):
        return np.tanh(z)

    def prime(self, z, a):
        return 1 - a * a


class ReLU(Activation):
    name = "relu"

    def fn(self, z):
        return np.maximum(z, 0)

    def prime(self, z, a):
        return (z > 0).astype(z.dtype)


class Linear(Activation):
    name = "linear"

    def fn(self, z):
        return z

    def prime(self, z, a):
        return np.ones_like(z)


class Softmax(Activation):
    """Softmax output (book ch. 3). Not elementwise: its derivative is a
    Jacobian, so it is only allowed as the output paired with the
    log-likelihood cost, where BP1 reduces to ``a - y``."""

    name = "softmax"
    elementwise = False

    def fn(self, z):
        return softmax(z)

    def prime(self, z, a):
        raise ConfigError(
            "softmax has no elementwise derivative; use it only as the output "
            "layer with the log-likelihood cost"
        )


ACTIVATIONS: dict[str, type[Activation]] = {
    cls.name: cls for cls in (Sigmoid, Tanh, ReLU, Linear, Softmax)
}


def get(identifier: str | Activation | type | None) -> Activation:
    """An activation from its name (see ``ACTIVATIONS``; case-insensitive),
    class or instance; else ConfigError listing the names."""
    return lookup(identifier, ACTIVATIONS, Activation, "activation")
