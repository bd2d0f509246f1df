"""What the book's ``network.py`` and ``network2.py`` modules share: an
engine network of sigmoid ``Dense`` layers behind the book's API, its
parameters shown in the book's shapes, the book's list-of-pairs data as
arrays, and the book's epoch (``random.shuffle``, then mini-batches through
:class:`nndl.training.EpochRunner`).
"""

from __future__ import annotations

import random

import numpy as np

from .. import initializers as _init
from ..costs import one_hot as _one_hot
from ..errors import ConfigError, positive_int
from ..layers import Dense
from ..network import Network as _EngineNetwork
from ..optimizers import SGD as _EngineSGD
from ..regularizers import L2 as _L2
from ..training import EpochRunner

__all__ = ["BookNetwork", "Stacked", "check_sizes", "is_label"]


def check_sizes(sizes) -> list[int]:
    """The book's ``sizes`` list, validated: input and output sizes >= 1.

    A hidden layer of 0 neurons is allowed because the book's code allows it
    (the chapter 1 experiment ``Network([784, 0, 10])``)."""
    try:
        sizes = list(sizes)
    except TypeError:
        raise ConfigError(f"sizes must be a list of layer sizes like [784, 30, 10], got {sizes!r}") from None
    if len(sizes) < 2:
        raise ConfigError(f"sizes must list at least an input and an output layer, like [784, 30, 10]; got {sizes!r}")
    for i, s in enumerate(sizes):
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
            raise ConfigError(f"sizes[{i}] must be an integer number of neurons, got {s!r}")
        lowest = 1 if i in (0, len(sizes) - 1) else 0
        if s < lowest:
            which = "input" if i == 0 else "output" if i == len(sizes) - 1 else "hidden"
            raise ConfigError(f"sizes[{i}] ({which} layer) must be >= {lowest}, got {s}")
    return [int(s) for s in sizes]


def dense_layer(n_out: int) -> Dense:
    layer = Dense(max(n_out, 1), "sigmoid", "zeros")
    if n_out == 0:
        # Dense refuses 0 neurons; the book's code runs Network([784, 0, 10])
        # (every output is then sigma(b)), so build an empty layer by hand.
        layer.n_out = 0
    return layer


def build_engine(sizes: list[int], cost, init_name: str) -> _EngineNetwork:
    """An engine network of sigmoid Dense layers, float64, zero parameters
    (the caller draws the book's initial values from the global generator)."""
    layers = [dense_layer(n) for n in sizes[1:]]
    net = _EngineNetwork(layers, cost, input_shape=(sizes[0],), rng=0, dtype="float64")
    for layer in net.layers:
        layer.init = _init.get(init_name)   # what the parameters will be drawn like
    return net


class ParamList(list):
    """A list of the network's parameter arrays in the book's shapes.

    The arrays are views of the engine's parameters, so in-place changes
    (``net.weights[0][3, 5] = 0.1``) reach the network; assigning an element
    (``net.weights[0] = w``) copies ``w`` into the network.
    """

    def __init__(self, owner, key: str) -> None:
        self._owner = owner
        self._key = key
        super().__init__(owner._views(key))

    def __setitem__(self, index, value) -> None:
        values = list(self)
        values[index] = value
        self._owner._set_params(self._key, values)
        super().__init__(self._owner._views(self._key))


def is_label(y) -> bool:
    """An integer class label (Python int, NumPy integer, or a 0-d/size-1 integer array)."""
    if isinstance(y, bool):
        return False
    if isinstance(y, (int, np.integer)):
        return True
    a = np.asarray(y)
    return a.size == 1 and a.dtype.kind in "iu"


class Stacked:
    """A list of ``(x, y)`` pairs as arrays: ``x`` ``(N, n_in)`` and, as the
    data needs, targets ``Y`` ``(N, n_out)`` and/or integer ``labels`` ``(N,)``."""

    def __init__(self, x, targets=None, labels=None) -> None:
        self.x = x
        self.targets = targets
        self.labels = labels

    def __len__(self) -> int:
        return len(self.x)


class BookNetwork:
    """What ``network.Network`` and ``network2.Network`` share: the engine
    network, the book-shaped parameter views, data conversion and the step."""

    _init_name = "large"

    def __init__(self, sizes, cost) -> None:
        sizes = check_sizes(sizes)
        self.num_layers = len(sizes)
        self.sizes = sizes
        self.engine = build_engine(sizes, cost, self._init_name)

    # -- parameters in the book's shapes ------------------------------------------
    def _views(self, key: str) -> list[np.ndarray]:
        if key == "w":
            return [layer.params["w"] for layer in self.engine.layers]
        return [layer.params["b"].reshape(-1, 1) for layer in self.engine.layers]

    def _set_params(self, key: str, values) -> None:
        name = "weights" if key == "w" else "biases"
        try:
            values = list(values)
        except TypeError:
            raise ConfigError(f"{name} must be a list of arrays, one per layer, got {type(values).__name__}") from None
        layers = self.engine.layers
        if len(values) != len(layers):
            raise ConfigError(
                f"{name}: expected {len(layers)} arrays (one per layer after the input layer), got {len(values)}"
            )
        arrays = []
        for i, (layer, v) in enumerate(zip(layers, values)):
            try:
                v = np.asarray(v, dtype=np.float64)
            except (TypeError, ValueError):
                raise ConfigError(f"{name}[{i}] is not a numeric array") from None
            n_out, n_in = layer.params["w"].shape
            if key == "w":
                if v.shape != (n_out, n_in):
                    raise ConfigError(f"weights[{i}]: expected shape ({n_out}, {n_in}) = (n_out, n_in), got {v.shape}")
            elif v.shape not in ((n_out, 1), (n_out,)):
                raise ConfigError(f"biases[{i}]: expected shape ({n_out}, 1), got {v.shape}")
            arrays.append(v.reshape(layer.params[key].shape))
        for layer, v in zip(layers, arrays):
            layer.params[key][...] = v

    @property
    def weights(self) -> list[np.ndarray]:
        """``weights[l]``: the ``(n_out, n_in)`` weight matrix of layer l+1 (a live view)."""
        return ParamList(self, "w")

    @weights.setter
    def weights(self, values) -> None:
        self._set_params("w", values)

    @property
    def biases(self) -> list[np.ndarray]:
        """``biases[l]``: the ``(n_out, 1)`` bias column of layer l+1 (a live view)."""
        return ParamList(self, "b")

    @biases.setter
    def biases(self, values) -> None:
        self._set_params("b", values)

    def _draw_book_parameters(self, scale_by_fan_in: bool) -> None:
        """The book's initialisation, from the global generator, biases first."""
        sizes = self.sizes
        biases = [np.random.randn(y, 1) for y in sizes[1:]]
        weights = [np.random.randn(y, x) / np.sqrt(x) if scale_by_fan_in and x else np.random.randn(y, x)
                   for x, y in zip(sizes[:-1], sizes[1:])]
        self.biases = biases
        self.weights = weights

    # -- computation ---------------------------------------------------------------
    def feedforward(self, a):
        """Return the output of the network if ``a`` is input.

        ``a`` is a column ``(n_in, 1)`` (the book's convention) or ``(n_in,)``;
        the result is ``(n_out, 1)``. Several inputs as columns ``(n_in, k)``
        give ``(n_out, k)``.
        """
        a = np.asarray(a)
        n_in = self.sizes[0]
        if a.ndim == 1:
            a = a.reshape(-1, 1)
        if a.ndim != 2 or a.shape[0] != n_in:
            raise ConfigError(f"feedforward expects an input column of shape ({n_in}, 1), got shape {a.shape}")
        return np.ascontiguousarray(self.engine.forward(a.T).T)

    def _output_delta(self, z, a, targets):
        """BP1 for rows of examples: dC/dz^L ``(m, n_out)``. Subclasses define it."""
        raise NotImplementedError

    def _backward(self, x, targets) -> None:
        """Forward and backward through the engine on rows ``x`` with target rows
        ``targets``: every layer's ``grads`` holds the summed gradient."""
        net = self.engine
        net.forward(x, train=True)
        out = net.layers[-1]
        net.backward_delta(self._output_delta(out.z, out.a, targets))   # BP1 from the book's cost

    def _step(self, x, targets, optimizer, n: int) -> None:
        """One gradient-descent step on one mini-batch (m = len(x) examples)."""
        self._backward(x, targets)
        optimizer.step(self.engine.layers, len(x), n)

    def _backprop(self, x, y):
        x = self._column(x, "x")
        y = self._target_column(y)
        self._backward(x.reshape(1, -1), y.reshape(1, -1))
        nabla_b = [layer.grads["b"].reshape(-1, 1).copy() for layer in self.engine.layers]
        nabla_w = [layer.grads["w"].copy() for layer in self.engine.layers]
        return (nabla_b, nabla_w)

    # -- data conversion -------------------------------------------------------------
    def _column(self, x, what: str) -> np.ndarray:
        x = np.asarray(x)
        n_in = self.sizes[0]
        if x.size != n_in or x.ndim > 2 or (x.ndim == 2 and x.shape[1] != 1):
            raise ConfigError(f"{what} must be an input column of shape ({n_in}, 1), got shape {x.shape}")
        return x.reshape(n_in)

    def _target_column(self, y) -> np.ndarray:
        n_out = self.sizes[-1]
        if is_label(y):
            y = int(np.asarray(y).reshape(()))
            if not 0 <= y < n_out:
                raise ConfigError(f"label {y} is out of range for {n_out} output neurons")
            e = np.zeros(n_out)
            e[y] = 1.0
            return e
        y = np.asarray(y, dtype=np.float64)
        if y.size != n_out or y.ndim > 2 or (y.ndim == 2 and y.shape[1] != 1):
            raise ConfigError(f"desired output y must have shape ({n_out}, 1), got shape {y.shape}")
        return y.reshape(n_out)

    def _stack(self, data, what: str, labels: str) -> Stacked:
        """``data``, a list of ``(x, y)`` pairs, as arrays.

        ``labels``: ``"vector"`` (y is a desired-output column ``(n_out, 1)``,
        as in the book's training data), ``"int"`` (y is a digit, as in its
        validation and test data) or ``"either"``.
        """
        if isinstance(data, (str, bytes)) or not hasattr(data, "__len__"):
            raise ConfigError(f"{what} must be a list of (x, y) pairs, got {type(data).__name__}")
        n = len(data)
        if n == 0:
            raise ConfigError(f"{what} is empty")
        for i, item in enumerate(data):
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                desc = f"a {type(item).__name__}" + (f" of length {len(item)}" if hasattr(item, "__len__") else "")
                raise ConfigError(f"{what} must be a list of (x, y) pairs; item {i} is {desc}")
        n_in, n_out = self.sizes[0], self.sizes[-1]
        xs = [item[0] for item in data]
        try:
            x = np.stack([np.reshape(v, -1) for v in xs])
        except (ValueError, TypeError):
            x = None
        if x is None or x.shape[1] != n_in or x.dtype.kind not in "fiub":
            for i, v in enumerate(xs):
                shape = np.shape(v)
                if int(np.prod(shape)) != n_in or len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
                    raise ConfigError(f"{what}: input {i} has shape {shape}, but the network has {n_in} "
                                      f"input neurons, so it expects ({n_in}, 1)")
            raise ConfigError(f"{what}: the inputs x are not numeric arrays")
        ys = [item[1] for item in data]
        firstis_label = is_label(ys[0])
        if labels == "int" or (labels == "either" and firstis_label):
            if not all(is_label(v) for v in ys):
                bad = next(i for i, v in enumerate(ys) if not is_label(v))
                hint = (" (training data holds desired-output vectors: use convert=True)"
                        if labels == "int" and np.size(ys[bad]) == n_out else "")
                raise ConfigError(f"{what}: y must be an integer digit, but item {bad} has y of shape "
                                  f"{np.shape(ys[bad])}{hint}")
            lab = np.array([int(np.asarray(v).reshape(())) for v in ys], dtype=np.int64)
            if lab.min() < 0 or lab.max() >= n_out:
                raise ConfigError(f"{what}: labels must be in 0..{n_out - 1} for {n_out} output neurons, "
                                  f"got {lab.min()}..{lab.max()}")
            return Stacked(x, labels=lab)
        try:
            t = np.asarray(ys, dtype=np.float64).reshape(n, -1)   # uniform (n_out, 1) columns: one copy
        except (ValueError, TypeError):
            try:
                t = np.stack([np.reshape(np.asarray(v, dtype=np.float64), -1) for v in ys])
            except (ValueError, TypeError):
                t = None
        if t is None or t.shape[1] != n_out:
            for i, v in enumerate(ys):
                if np.size(v) != n_out:
                    hint = (" (validation and test data hold digits: use convert=False)"
                            if is_label(v) and labels == "vector" else "")
                    raise ConfigError(f"{what}: y of item {i} has shape {np.shape(v)}, but the network has "
                                      f"{n_out} output neurons, so it expects ({n_out}, 1){hint}")
            raise ConfigError(f"{what}: the desired outputs y are not numeric arrays")
        lab = np.argmax(t, axis=1)
        one_hot = bool(np.all((t == 0) | (t == 1)) and np.all(t.sum(axis=1) == 1))
        return Stacked(x, targets=t, labels=lab if one_hot else None)

    def _targets_of(self, s: Stacked) -> np.ndarray:
        if s.targets is None:
            s.targets = _one_hot(s.labels, self.sizes[-1], np.float64)
        return s.targets

    def _predict(self, x: np.ndarray) -> np.ndarray:
        return np.argmax(self.engine.feedforward(x), axis=1)

    # -- training --------------------------------------------------------------------
    def _uses_book_update(self) -> bool:
        """True when a subclass replaced ``update_mini_batch``: then SGD calls it
        with the book's list mini-batches, as the book's code would."""
        return type(self).update_mini_batch is not self._base_update_mini_batch()

    def _base_update_mini_batch(self):
        raise NotImplementedError

    def _fast_cost_ok(self) -> bool:
        """Whether BP1 is the engine's own formula (so the compiled kernel may run)."""
        raise NotImplementedError

    def _train(self, training_data, epochs, mini_batch_size, eta, lmbda, on_epoch_end,
               update_args) -> None:
        """The book's epoch loop: shuffle, cut into mini-batches, update; then
        ``on_epoch_end(j, stacked_training_data)``, which may return True to stop."""
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ConfigError(f"epochs must be a non-negative integer, got {epochs!r}")
        positive_int(mini_batch_size, "mini_batch_size")
        caller_list = training_data if isinstance(training_data, list) else None
        data = list(training_data)
        stacked = self._stack(data, "training_data", "vector")
        n = len(data)
        try:
            optimizer = _EngineSGD(eta, regularizers=[_L2(lmbda)] if lmbda else [])
        except ConfigError as e:
            raise ConfigError(f"SGD: {e}") from None
        if self._uses_book_update():
            # a subclass's own update_mini_batch gets the book's list mini-batches
            args = update_args(n)
            runner = EpochRunner(self.engine, optimizer, stacked.x, stacked.labels, mini_batch_size,
                                 step=lambda idx: self.update_mini_batch([data[i] for i in idx], *args))
        elif stacked.labels is not None and self._fast_cost_ok():
            # BP1 is the engine's own formula: labels, and the compiled kernel where it applies
            runner = EpochRunner(self.engine, optimizer, stacked.x, stacked.labels, mini_batch_size)
        else:
            runner = EpochRunner(self.engine, optimizer, stacked.x, self._targets_of(stacked),
                                 mini_batch_size, delta=self._output_delta)
        # ``perm`` follows the book's in-place ``random.shuffle(training_data)``:
        # shuffling a list of n indices draws the same random numbers and moves
        # the elements the same way, so data[perm[k]] is the book's k-th example.
        perm = list(range(n))
        try:
            for j in range(int(epochs)):
                random.shuffle(perm)
                runner.run_epoch(np.array(perm, dtype=np.int64))
                if on_epoch_end(j, stacked):
                    break
        finally:
            if caller_list is not None:
                # The book shuffles the caller's list in place; so do we.
                caller_list[:] = [data[i] for i in perm]
