"""The fully connected layer, where the four backpropagation equations live."""

from __future__ import annotations

import numpy as np

from .. import activations, initializers
from ..errors import ConfigError, positive_int
from .base import Layer


class Dense(Layer):
    """A fully connected layer: a = sigma(z), z = a_in w^T + b.

    Args:
        n_out: number of neurons.
        activation: name or :class:`~nndl.activations.Activation`.
        init: name, class or :class:`~nndl.initializers.Initializer`; None
            means ``default_init``, ``"default"``: the book's N(0, 1/n_in)
            weights, N(0, 1) biases (network2).

    Shape:
        input ``(N, n_in)``, output ``(N, n_out)``; ``params["w"]`` is
        ``(n_out, n_in)`` so that ``w[j, k]`` is the book's w_jk, the weight
        from neuron k of the layer below to neuron j of this one;
        ``params["b"]`` is ``(n_out,)``.

    Because rows are examples, the book's column-vector formula
    z = w a + b (eq. 25) reads ``z = a_in @ w.T + b`` here.
    """

    regularized = ("w",)
    default_init = "default"

    def __init__(self, n_out: int, activation="sigmoid", init=None) -> None:
        super().__init__()
        self.n_out = positive_int(n_out, "Dense: n_out")
        self.activation = activations.get(activation)
        self.init = initializers.get(self.default_init if init is None else init)

    def build(self, input_shape, rng, dtype):
        if len(input_shape) != 1:
            raise ConfigError(
                f"Dense({self.n_out}) needs flat input vectors, got per-example shape {tuple(input_shape)}; "
                "put a Flatten layer before it"
            )
        n_in = int(input_shape[0])
        # Biases first, then weights: the order the book's code draws them in.
        b = self.init.biases((self.n_out,), rng, dtype)
        w = self.init.weights((self.n_out, n_in), initializers.Fans(n_in, self.n_out), rng, dtype)
        self.params = {"w": w, "b": b}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.input_shape = (n_in,)
        self.output_shape = (self.n_out,)
        return self.output_shape

    @property
    def w(self) -> np.ndarray:
        return self.params["w"]

    @property
    def b(self) -> np.ndarray:
        return self.params["b"]

    def forward(self, x: np.ndarray, *, train: bool = False) -> np.ndarray:
        if x.ndim != 2 or x.shape[1] != self.input_shape[0]:
            raise ConfigError(
                f"Dense({self.n_out}) expects input of shape (N, {self.input_shape[0]}), got {x.shape}"
            )
        self.x = x
        self.z = x @ self.w.T + self.b          # z^l = w^l a^{l-1} + b^l   (eq. 25)
        self.a = self.activation.fn(self.z)     # a^l = sigma(z^l)          (eq. 25)
        return self.a

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        # BP2, second half: delta^l = ((w^{l+1})^T delta^{l+1}) * sigma'(z^l),
        # where grad_out is the bracket, handed down by the layer above.
        delta = grad_out * self.activation.prime(self.z, self.a)
        return self.backward_delta(delta)

    def backward_delta(self, delta: np.ndarray) -> np.ndarray | None:
        """Gradients from delta = dC/dz of shape ``(N, n_out)``; returns dC/da_in
        (None when ``input_grad`` is False)."""
        self.grads["b"][...] = delta.sum(axis=0)          # BP3: dC/db_j = delta_j
        np.matmul(delta.T, self.x, out=self.grads["w"])   # BP4: dC/dw_jk = a_k^{l-1} delta_j^l
        if not self.input_grad:
            return None
        return delta @ self.w                             # BP2, first half: (w^l)^T delta^l

    def config(self) -> dict:
        return {"type": "Dense", "n_out": self.n_out, "activation": self.activation.name,
                "init": self.init.name}
