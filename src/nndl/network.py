"""A network: a stack of layers and a cost. Forward, backward, predict.

The network knows how to compute outputs and gradients; it does not train
itself (that is :mod:`nndl.training`) and does not print.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from . import costs as costs_mod
from .checks import as_inputs, as_labels
from .errors import ConfigError, positive_int, shape_tuple
from .layers.base import Layer
from .layers.dense import Dense
from .memory import EVAL_CHUNK, check_network_memory

DTYPES = {"float32": np.float32, "float64": np.float64}


def as_dtype(dtype) -> np.dtype:
    """float32/float64 (name or NumPy type) -> np.dtype; anything else is a ConfigError."""
    try:
        dt = np.dtype(DTYPES.get(dtype, dtype) if isinstance(dtype, str) else dtype)
    except TypeError:
        dt = None
    if dt is None or dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ConfigError(f"dtype must be float32 or float64, got {dtype!r}")
    return dt


def as_generator(rng) -> np.random.Generator:
    """A Generator from a Generator, an int seed, or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) and rng >= 0:
        return np.random.default_rng(rng)
    raise ConfigError(f"rng must be a numpy.random.Generator or an integer seed >= 0, got {rng!r}")


class Network:
    """A feed-forward network.

    Args:
        layers: the layers, input side first. The last one must have an
            activation (``Dense`` or ``ConvPool``): the cost pairs with it.
        cost: name or :class:`~nndl.costs.Cost`.
        input_shape: per-example input shape, e.g. ``(784,)``.
        rng: Generator or int seed used to initialise the parameters.
        dtype: float32 or float64 for parameters and computation.

    Shape:
        ``forward`` maps ``(N, *input_shape)`` to ``(N, n_outputs)``.
    """

    def __init__(self, layers: Sequence[Layer], cost="quadratic", *, input_shape=(784,),
                 rng=None, dtype="float32") -> None:
        self.layers = list(layers) if isinstance(layers, (list, tuple)) else None
        if not self.layers:
            raise ConfigError("a network needs at least one layer")
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise ConfigError(f"layer {i} is not a layer (nndl.layers.Layer) but {layer!r:.60}")
        self.cost = costs_mod.get(cost)
        self.dtype = as_dtype(dtype)
        self.input_shape = shape_tuple(input_shape, "input_shape")
        output = self.layers[-1]
        if output.activation is None:
            raise ConfigError(
                f"the output layer must have an activation (Dense or ConvPool), got {output!r}"
            )
        self.cost.check(output.activation)
        for i, layer in enumerate(self.layers[:-1]):
            if layer.activation is not None and not layer.activation.elementwise:
                raise ConfigError(f"layer {i} ({layer!r}): softmax is only allowed in the output layer")
        generator = as_generator(rng)
        # Absurd sizes are refused with the figures before anything is allocated.
        check_network_memory(self.layers, self.input_shape, self.dtype)
        shape = self.input_shape
        for i, layer in enumerate(self.layers):
            try:
                shape = tuple(layer.build(shape, generator, self.dtype))
            except ConfigError as e:
                where = f"layer spec {layer.spec!r}" if layer.spec else f"layer {i} ({type(layer).__name__})"
                raise ConfigError(f"{where}: {e}") from None
        self.output_shape = shape
        # Nothing below the first layer with parameters needs a gradient:
        # let it skip computing dC/d(input) (a full col2im for a conv layer).
        first = next((layer for layer in self.layers if layer.params), None)
        if first is not None:
            first.input_grad = False
        if len(shape) != 1:
            raise ConfigError(f"the network must end in a flat output, got per-example shape {shape}")

    @classmethod
    def from_sizes(cls, sizes: Sequence[int], *, activation="sigmoid", output_activation=None,
                   cost="quadratic", init="default", rng=None, dtype="float32") -> "Network":
        """The book's ``Network(sizes)``: fully connected layers of these sizes.

        ``sizes[0]`` is the input size; the output layer uses
        ``output_activation`` (default: softmax for the log-likelihood cost,
        else ``activation``).
        """
        sizes = list(sizes) if isinstance(sizes, (list, tuple, np.ndarray)) else [sizes]
        if len(sizes) < 2 or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1
                                 for s in sizes):
            raise ConfigError(f"sizes must be at least two positive integers, got {sizes!r}")
        cost_obj = costs_mod.get(cost)
        if output_activation is None:
            output_activation = "softmax" if cost_obj.name == "log-likelihood" else activation
        layers = [Dense(n, activation, init) for n in sizes[1:-1]]
        layers.append(Dense(sizes[-1], output_activation, init))
        return cls(layers, cost_obj, input_shape=(sizes[0],), rng=rng, dtype=dtype)

    # -- computation ---------------------------------------------------------
    def check_input(self, x: np.ndarray, *, name: str = "x", finite: bool = True) -> np.ndarray:
        """``x`` as ``(N, *input_shape)`` in the network's dtype; non-numeric,
        misshapen or (with ``finite``) NaN/infinite inputs are refused
        (:func:`nndl.checks.as_inputs`; ``name`` names the array in the message)."""
        return as_inputs(x, self.input_shape, self.dtype, name=name, finite=finite)

    def forward(self, x: np.ndarray, *, train: bool = False, check: bool = True) -> np.ndarray:
        """Output activations ``(N, n_outputs)`` for inputs ``(N, *input_shape)``.

        ``check=False``: ``x`` is already an array of the right shape and dtype
        (the epoch runner checks the whole data set once, not every mini-batch)."""
        a = self.check_input(x, finite=False) if check else x   # NaN: the caller checked the data set
        for layer in self.layers:
            a = layer.forward(a, train=train)
        return a

    def backward(self, y: np.ndarray, *, check: bool = True) -> None:
        """Fill every layer's ``grads`` with dC/dparam summed over the batch
        last passed to :meth:`forward`, for integer labels ``y`` ``(N,)``
        (``check=False``: ``y`` is known to be valid labels for that batch)."""
        out = self.layers[-1]
        if getattr(out, "a", None) is None:
            raise ConfigError("call forward(x, train=True) before backward(y)")
        if check:
            y = as_labels(y, len(out.a), out.a.shape[-1])
        self.backward_delta(self.cost.delta(out.z, out.a, y, out.activation))   # BP1

    def backward_delta(self, delta: np.ndarray) -> None:
        """As :meth:`backward`, from a given output error delta^L = dC/dz^L
        ``(N, n_outputs)`` (for costs defined outside the engine)."""
        grad = self.layers[-1].backward_delta(delta)
        for layer in reversed(self.layers[:-1]):
            if grad is None:  # the layers below have no parameters
                break
            grad = layer.backward(grad)                              # BP2 downwards

    def feedforward(self, x: np.ndarray, batch_size: int = EVAL_CHUNK) -> np.ndarray:
        """Inference outputs ``(N, n_outputs)``, computed in chunks to bound memory."""
        x = self.check_input(x)   # once: the chunks skip forward's check
        batch_size = positive_int(batch_size, "batch_size")
        if len(x) <= batch_size:
            return self.forward(x, check=False)
        return np.concatenate([self.forward(x[i:i + batch_size], check=False)
                               for i in range(0, len(x), batch_size)])

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted class ``(N,)``: the index of the most active output neuron."""
        return np.argmax(self.feedforward(x), axis=1)

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> int:
        """Number of inputs classified correctly."""
        predicted = self.predict(x)
        return int(np.sum(predicted == as_labels(y, len(predicted), self.output_shape[0])))

    def total_cost(self, x: np.ndarray, y: np.ndarray, regularizers: Iterable = (), n: int | None = None) -> float:
        """Mean cost over the examples plus the weight penalties for a training set of size ``n``."""
        a = self.feedforward(x)
        y = as_labels(y, len(a), self.output_shape[0])
        if not isinstance(regularizers, (list, tuple)):
            raise ConfigError(f"regularizers must be a list (e.g. [L2(5.0)]), got {regularizers!r}")
        c = self.cost.fn(a, y) / max(len(a), 1)
        weights = self.regularized_params()
        for r in regularizers:
            c += r.penalty(weights, n or len(a))
        return c

    # -- parameters ----------------------------------------------------------
    def regularized_params(self) -> list[np.ndarray]:
        return [layer.params[k] for layer in self.layers for k in layer.regularized]

    @property
    def n_params(self) -> int:
        return sum(p.size for layer in self.layers for p in layer.params.values())

    def get_params(self) -> list[dict[str, np.ndarray]]:
        """A copy of every layer's parameters."""
        return [{k: v.copy() for k, v in layer.params.items()} for layer in self.layers]

    def set_params(self, params: list[dict[str, np.ndarray]]) -> None:
        """Copy parameters in place (shapes must match)."""
        if not isinstance(params, (list, tuple)) or not all(isinstance(p, dict) for p in params):
            raise ConfigError("params must be a list of one dict per layer (as get_params returns)")
        if len(params) != len(self.layers):
            raise ConfigError(f"expected parameters for {len(self.layers)} layers, got {len(params)}")
        for i, (layer, p) in enumerate(zip(self.layers, params)):
            if set(p) != set(layer.params):
                raise ConfigError(f"layer {i}: expected parameters {sorted(layer.params)}, got {sorted(p)}")
            for k, v in p.items():
                v = np.asarray(v)
                if v.shape != layer.params[k].shape:
                    raise ConfigError(
                        f"layer {i} parameter {k!r}: expected shape {layer.params[k].shape}, got {v.shape}"
                    )
                layer.params[k][...] = v

    def config(self) -> dict:
        return {"input_shape": list(self.input_shape), "cost": self.cost.name,
                "dtype": self.dtype.name, "layers": [layer.config() for layer in self.layers]}

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(layer) for layer in self.layers)
        return f"Network([\n  {inner}\n], cost={self.cost.name!r}, input_shape={self.input_shape}, dtype={self.dtype.name})"
