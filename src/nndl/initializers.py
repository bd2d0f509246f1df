"""Weight initialisers (book ch. 3, "Weight initialization"), one registry for every layer type.

An initialiser draws a layer's weights and biases from a
``numpy.random.Generator``. It is told the layer's connection counts as
:class:`Fans`, so the same initialiser serves a ``Dense``, a ``Conv2D`` and a
``ConvPool`` layer; the layer decides the order of the two draws (``Dense``
draws biases first, as network.py/network2.py do; the convolutional layers
draw weights first, as network3.py does).

The book's conventions, by name:

=============  ===============================================  ===============
name           weights, biases                                  where
=============  ===============================================  ===============
``default``    N(0, 1/n_in), N(0, 1)                            network2
``large``      N(0, 1), N(0, 1)                                 network.py (ch. 1)
``network3``   N(0, p^2/n_out), N(0, 1)                         network3 (ch. 6)
``glorot``     N(0, 2/(n_in + n_out)), 0                        Glorot & Bengio
``he``         N(0, 2/n_in), 0                                  He et al., for ReLU
``zeros``      0, 0                                             network3's softmax layer
=============  ===============================================  ===============

``network3`` is what network3.py draws: its ``ConvPoolLayer`` uses n_out =
F k k / p^2 (the outputs each input reaches after p x p pooling), and its
``FullyConnectedLayer`` uses the layer's n_out -- the book's slip for n_in
(``default`` is the corrected version of both, network3's ``fix_init``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .registry import lookup


@dataclass(frozen=True)
class Fans:
    """The connection counts that set the spread of a layer's initial weights.

    Attributes:
        n_in: inputs feeding one neuron (the book's n_in): a ``Dense``
            layer's input size; ``C k k`` for a k x k convolution over C maps.
        n_out: neurons each input feeds: a ``Dense`` layer's ``n_out``;
            ``F k k`` for a convolution with F filters.
        pool_area: ``p * p`` when the layer max-pools its convolution
            (``ConvPool``), else 1; network3 divides n_out by it.
    """

    n_in: int
    n_out: int
    pool_area: int = 1


class Initializer:
    """Base class. ``weights`` draws ``shape`` from ``fans``; ``biases`` defaults to zeros."""

    name: str = ""
    #: one line for help texts: the two distributions
    summary: str = ""

    def weights(self, shape, fans: Fans, rng: np.random.Generator, dtype) -> np.ndarray:
        raise NotImplementedError

    def biases(self, shape, rng: np.random.Generator, dtype) -> np.ndarray:
        return np.zeros(shape, dtype=dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class _NormalBiases(Initializer):
    """Biases N(0, 1), as all three of the book's programs draw them."""

    def biases(self, shape, rng, dtype):
        return rng.standard_normal(shape).astype(dtype)


class Default(_NormalBiases):
    """The book's default (network2): weights N(0, 1/n_in), biases N(0, 1)."""

    name = "default"
    summary = "weights N(0, 1/n_in), biases N(0, 1) (network2)"

    def weights(self, shape, fans, rng, dtype):
        return (rng.standard_normal(shape) / np.sqrt(fans.n_in)).astype(dtype)


class Large(_NormalBiases):
    """The book's chapter 1 choice: weights and biases N(0, 1)."""

    name = "large"
    summary = "weights and biases N(0, 1) (network.py, chapter 1)"

    def weights(self, shape, fans, rng, dtype):
        return rng.standard_normal(shape).astype(dtype)


class Glorot(Initializer):
    """Glorot/Xavier normal: weights N(0, 2/(n_in + n_out)), biases 0."""

    name = "glorot"
    summary = "weights N(0, 2/(n_in + n_out)), biases 0"

    def weights(self, shape, fans, rng, dtype):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / (fans.n_in + fans.n_out))).astype(dtype)


class He(Initializer):
    """He normal, for ReLU: weights N(0, 2/n_in), biases 0."""

    name = "he"
    summary = "weights N(0, 2/n_in), biases 0 (for ReLU)"

    def weights(self, shape, fans, rng, dtype):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fans.n_in)).astype(dtype)


class Zeros(Initializer):
    """All zeros: every hidden neuron stays identical (a demonstration of why not)."""

    name = "zeros"
    summary = "weights and biases 0 (network3's softmax layer)"

    def weights(self, shape, fans, rng, dtype):
        return np.zeros(shape, dtype=dtype)


class Network3(_NormalBiases):
    """network3.py's draws: weights N(0, p^2/n_out), biases N(0, 1).

    For a ``ConvPool`` layer n_out / p^2 = F k k / p^2, network3's
    ``ConvPoolLayer``; for a ``Dense`` layer (p = 1) it is network3's
    ``FullyConnectedLayer``, whose 1/n_out is the book's slip for 1/n_in.
    """

    name = "network3"
    summary = "weights N(0, p^2/n_out), biases N(0, 1) (network3; p: pool size)"

    def weights(self, shape, fans, rng, dtype):
        return (rng.standard_normal(shape) * np.sqrt(fans.pool_area / fans.n_out)).astype(dtype)


INITIALIZERS: dict[str, type[Initializer]] = {
    cls.name: cls for cls in (Default, Large, Glorot, He, Zeros, Network3)
}
_ALIASES = {"xavier": "glorot", "normal": "large"}


def get(identifier: str | Initializer | type | None) -> Initializer:
    """An initialiser from its name (see ``INITIALIZERS``; case-insensitive,
    aliases ``xavier`` and ``normal``), class or instance; else ConfigError."""
    return lookup(identifier, INITIALIZERS, Initializer, "initializer", _ALIASES)
