"""Weight initialisers (book ch. 3, "Weight initialization").

An initialiser draws a layer's weights and biases from a
``numpy.random.Generator``. ``fan_in`` is the number of inputs feeding one
neuron (n_in in the book), ``fan_out`` the number of neurons it feeds.
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError


class Initializer:
    name: str = ""

    def weights(self, shape, fan_in: int, fan_out: int, rng: np.random.Generator, dtype) -> np.ndarray:
        raise NotImplementedError

    def biases(self, shape, rng: np.random.Generator, dtype) -> np.ndarray:
        return np.zeros(shape, dtype=dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Default(Initializer):
    """The book's default (network2): weights N(0, 1/n_in), biases N(0, 1)."""

    name = "default"

    def weights(self, shape, fan_in, fan_out, rng, dtype):
        return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(dtype)

    def biases(self, shape, rng, dtype):
        return rng.standard_normal(shape).astype(dtype)


class Large(Initializer):
    """The book's chapter 1 choice: weights and biases N(0, 1)."""

    name = "large"

    def weights(self, shape, fan_in, fan_out, rng, dtype):
        return rng.standard_normal(shape).astype(dtype)

    def biases(self, shape, rng, dtype):
        return rng.standard_normal(shape).astype(dtype)


class Glorot(Initializer):
    """Glorot/Xavier normal: weights N(0, 2/(n_in + n_out)), biases 0."""

    name = "glorot"

    def weights(self, shape, fan_in, fan_out, rng, dtype):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / (fan_in + fan_out))).astype(dtype)


class He(Initializer):
    """He normal, for ReLU: weights N(0, 2/n_in), biases 0."""

    name = "he"

    def weights(self, shape, fan_in, fan_out, rng, dtype):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)


class Zeros(Initializer):
    """All zeros: every hidden neuron stays identical (a demonstration of why not)."""

    name = "zeros"

    def weights(self, shape, fan_in, fan_out, rng, dtype):
        return np.zeros(shape, dtype=dtype)


INITIALIZERS: dict[str, type[Initializer]] = {
    cls.name: cls for cls in (Default, Large, Glorot, He, Zeros)
}
_ALIASES = {"xavier": "glorot", "book": "default", "normal": "large"}


def get(identifier: str | Initializer | None) -> Initializer:
    """Return an initialiser from its name (see ``INITIALIZERS``) or an instance."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        key = _ALIASES.get(identifier.lower(), identifier.lower())
        if key in INITIALIZERS:
            return INITIALIZERS[key]()
    raise ConfigError(
        f"unknown initializer {identifier!r}; valid initializers: {', '.join(INITIALIZERS)}"
    )
