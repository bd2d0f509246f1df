"""The contract every layer follows.

A layer is built once for a per-example input shape, then used on batches:

* ``build(input_shape, rng, dtype) -> output_shape`` creates the parameters
  (shapes exclude the batch axis) drawing any randomness from ``rng``.
* ``forward(x, *, train)`` takes ``x`` of shape ``(N, *input_shape)``, returns
  ``(N, *output_shape)`` and keeps what ``backward`` needs.
* ``backward(grad_out)`` takes dC/d(output), fills ``grads`` (same keys as
  ``params``) with dC/d(param) summed over the batch, and returns dC/d(input)
  (or None when ``input_grad`` is False).

Layers with an activation (``Dense``, ``Conv2D``, ``ConvPool``) also offer
``backward_delta(delta)``, which starts from delta = dC/dz instead of dC/da:
the network calls it on the output layer with the cost's BP1 error.

Everything other modules may read or set on a layer is declared on
:class:`Layer` below, with its default; nothing is found by ``hasattr``.
"""

from __future__ import annotations

import numpy as np

from ..activations import Activation
from ..errors import ConfigError
from ..initializers import Initializer


class Layer:
    """Base class: a layer without parameters unless a subclass adds some.

    Attributes:
        params: the trainable arrays by name (``"w"``, ``"b"``); empty for
            layers without parameters.
        grads: dC/d(param) summed over the last batch, same keys and shapes.
        input_shape, output_shape: per-example shapes, set by :meth:`build`.
        activation: the activation sigma applied last (``a = sigma(z)``), or
            None for layers without one (pooling, dropout, reshaping). The
            network's output layer must have one: the cost pairs with it.
        z, a: the weighted input and the activation of the last forward pass,
            ``(N, *output_shape)``; kept by layers with an activation (the
            cost's BP1 reads them from the output layer), None otherwise.
        regularized: keys of ``params`` that take weight penalties (L1, L2);
            biases are not regularised (book ch. 3).
        init: the :class:`~nndl.initializers.Initializer` that draws the
            parameters in :meth:`build`; None for layers without weights.
        default_init: the name of the initialiser the layer uses when none is
            given (class attribute; None for layers without weights).
        input_grad: whether ``backward`` must compute dC/d(input). The network
            sets it to False on its first layer with parameters, whose input
            gradient nobody uses; a layer may then skip that work and return None.
        rng: the layer's own ``numpy.random.Generator`` for randomness while
            training (a :class:`~nndl.layers.Dropout` mask); None for layers
            that draw nothing. Checkpoints save its state.
        spec: the architecture spec token that created the layer (e.g.
            ``"conv:20:5,pool:2"``, set by :func:`nndl.architecture.parse_layers`)
            so that build errors can name it; None for layers built in code.
            Not part of :meth:`config`.
    """

    activation: Activation | None = None
    z: np.ndarray | None = None
    a: np.ndarray | None = None
    regularized: tuple[str, ...] = ()
    init: Initializer | None = None
    default_init: str | None = None
    input_grad: bool = True
    rng: np.random.Generator | None = None
    spec: str | None = None

    #: keys of ``params`` that weight penalties (L1, L2) apply to
    regularized: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.input_shape: tuple[int, ...] | None = None
        self.output_shape: tuple[int, ...] | None = None

    def build(self, input_shape: tuple[int, ...], rng: np.random.Generator, dtype) -> tuple[int, ...]:
        self.input_shape = tuple(input_shape)
        self.output_shape = self.input_shape
        return self.output_shape

    def forward(self, x: np.ndarray, *, train: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad_out: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError

    def backward_delta(self, delta: np.ndarray) -> np.ndarray | None:
        """Gradients from delta = dC/dz ``(N, *output_shape)``; returns dC/d(input).

        Only layers with an activation have a z to start from."""
        raise ConfigError(
            f"{type(self).__name__} has no activation, so no delta = dC/dz to start backpropagation "
            "from; only a layer with an activation (Dense, Conv2D, ConvPool) can be the output layer"
        )

    def config(self) -> dict:
        """JSON-serialisable constructor arguments (with ``type``), for saving."""
        raise NotImplementedError

    @property
    def built(self) -> bool:
        return self.input_shape is not None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "type")
        return f"{type(self).__name__}({args})"
