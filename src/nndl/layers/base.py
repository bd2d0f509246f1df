"""The contract every layer follows.

A layer is built once for a per-example input shape, then used on batches:

* ``build(input_shape, rng, dtype) -> output_shape`` creates the parameters
  (shapes exclude the batch axis) drawing any randomness from ``rng``.
* ``forward(x, *, train)`` takes ``x`` of shape ``(N, *input_shape)``, returns
  ``(N, *output_shape)`` and keeps what ``backward`` needs.
* ``backward(grad_out)`` takes dC/d(output), fills ``grads`` (same keys as
  ``params``) with dC/d(param) summed over the batch, and returns dC/d(input).

Layers with an activation (``Dense``, ``ConvPool``) also offer
``backward_delta(delta)``, which starts from delta = dC/dz instead of dC/da:
the network calls it on the output layer with the cost's BP1 error.
"""

from __future__ import annotations

import numpy as np


class Layer:
    """Base class: a layer without parameters unless a subclass adds some."""

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

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def config(self) -> dict:
        """JSON-serialisable constructor arguments (with ``type``), for saving."""
        raise NotImplementedError

    @property
    def built(self) -> bool:
        return self.input_shape is not None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "type")
        return f"{type(self).__name__}({args})"
