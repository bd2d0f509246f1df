"""Cost functions and their output error delta^L (BP1).

Labels are integers of shape ``(N,)``; one-hot vectors are built here, where
the cost needs them, and nowhere else. ``fn`` returns the cost *summed* over
the batch; callers divide by the number of examples.

``delta`` is BP1, delta^L = dC/dz^L. Where the algebra cancels sigma'(z)
(cross-entropy after a sigmoid, log-likelihood after a softmax) it is the
fused ``a - y``; :meth:`Cost.check` rejects pairings that have no such
formula, when the network is built rather than in the middle of training.
"""

from __future__ import annotations

import numpy as np

from . import activations as act
from .errors import ConfigError
from .registry import lookup


def one_hot(y: np.ndarray, n: int, dtype=np.float64) -> np.ndarray:
    """Integer labels ``(N,)`` -> one-hot rows ``(N, n)`` (the book's vectorized_result)."""
    y = np.asarray(y)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"one_hot: the number of classes must be a positive integer, got {n!r}")
    if y.ndim != 1 or (y.size and y.dtype.kind not in "iu"):
        raise ConfigError(f"labels must be a 1-D array of integers, got {y.dtype} of shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= n):
        raise ConfigError(f"labels must lie in 0..{n - 1} for {n} output neurons, got {y.min()}..{y.max()}")
    out = np.zeros((y.shape[0], n), dtype=dtype)
    out[np.arange(y.shape[0]), y] = 1
    return out


class Cost:
    name: str = ""
    #: activations for which ``delta`` is the fused ``a - y``
    fused_with: tuple[str, ...] = ()
    #: activations allowed at the output at all
    allowed: tuple[str, ...] = ()

    def fn(self, a: np.ndarray, y: np.ndarray) -> float:
        raise NotImplementedError

    def delta(self, z: np.ndarray, a: np.ndarray, y: np.ndarray, activation: act.Activation) -> np.ndarray:
        raise NotImplementedError

    def check(self, activation: act.Activation) -> None:
        """Raise ConfigError unless this cost can follow ``activation``."""
        if activation.name not in self.allowed:
            raise ConfigError(
                f"the {self.name} cost cannot follow a {activation.name} output layer; "
                f"allowed output activations: {', '.join(self.allowed)}"
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class QuadraticCost(Cost):
    """C = 1/2 ||y - a||^2 per example (book eq. 6)."""

    name = "quadratic"
    allowed = ("sigmoid", "tanh", "relu", "linear")

    def fn(self, a, y):
        diff = a - one_hot(y, a.shape[-1], a.dtype)
        return 0.5 * float(np.sum(diff * diff))

    def delta(self, z, a, y, activation):
        # BP1: delta^L = (a^L - y) * sigma'(z^L)
        return (a - one_hot(y, a.shape[-1], a.dtype)) * activation.prime(z, a)


class CrossEntropyCost(Cost):
    """C = -sum_j [y_j ln a_j + (1 - y_j) ln(1 - a_j)] per example (book eq. 63)."""

    name = "cross-entropy"
    allowed = ("sigmoid",)
    fused_with = ("sigmoid",)

    def fn(self, a, y):
        yv = one_hot(y, a.shape[-1], a.dtype)
        # Clip so that a saturated neuron costs a large finite amount, not nan.
        eps = np.finfo(a.dtype).eps
        a = np.clip(a, eps, 1 - eps)
        return float(-np.sum(yv * np.log(a) + (1 - yv) * np.log1p(-a)))

    def delta(self, z, a, y, activation):
        # BP1 with sigma' cancelled (book eq. 66): delta^L = a^L - y
        return a - one_hot(y, a.shape[-1], a.dtype)


class LogLikelihoodCost(Cost):
    """C = -ln a_y per example (book eq. 80), for a softmax output."""

    name = "log-likelihood"
    allowed = ("softmax",)
    fused_with = ("softmax",)

    def fn(self, a, y):
        y = np.asarray(y)
        p = a[np.arange(a.shape[0]), y]
        return float(-np.sum(np.log(np.maximum(p, np.finfo(a.dtype).tiny))))

    def delta(self, z, a, y, activation):
        # BP1 for softmax + log-likelihood (book eq. 81-82): delta^L = a^L - y
        return a - one_hot(y, a.shape[-1], a.dtype)


COSTS: dict[str, type[Cost]] = {
    cls.name: cls for cls in (QuadraticCost, CrossEntropyCost, LogLikelihoodCost)
}
_ALIASES = {"crossentropy": "cross-entropy", "cross_entropy": "cross-entropy", "ce": "cross-entropy",
            "loglikelihood": "log-likelihood", "log_likelihood": "log-likelihood", "nll": "log-likelihood",
            "mse": "quadratic"}


def get(identifier: str | Cost | type | None) -> Cost:
    """A cost from its name (see ``COSTS``; case-insensitive, with aliases such
    as ``ce``, ``nll``, ``mse``), class or instance; else ConfigError."""
    return lookup(identifier, COSTS, Cost, "cost", _ALIASES)
