"""network3.py
~~~~~~~~~~~~~~

The book's chapter 6 module (``network3.py``) without Theano: the same
classes and calls, run by the nndl engine's layers (``ConvPool``, ``Dense``,
``Dropout``, ``Reshape``, ``Flatten``) on the CPU with NumPy and numba.

    from nndl.book.network3 import Network, ConvPoolLayer, FullyConnectedLayer, SoftmaxLayer, ReLU
    training_data, validation_data, test_data = network3.load_data_shared()
    mini_batch_size = 10
    net = Network([
        ConvPoolLayer(image_shape=(mini_batch_size, 1, 28, 28), filter_shape=(20, 1, 5, 5), poolsize=(2, 2)),
        FullyConnectedLayer(n_in=20*12*12, n_out=100),
        SoftmaxLayer(n_in=100, n_out=10)], mini_batch_size)
    net.SGD(training_data, 60, mini_batch_size, 0.1, validation_data, test_data)

What network3 does, kept here (the details and the places where this module
differs are listed in ``docs/book-compat.md``):

* layers draw their initial parameters when constructed, from NumPy's global
  generator (``np.random.normal``: weights, then biases);
* ``FullyConnectedLayer`` weights have standard deviation sqrt(1/n_out), the
  book's slip for sqrt(1/n_in) (``fix_init=True`` uses n_in); ``ConvPoolLayer``
  weights have standard deviation sqrt(pool area / (filters * k * k));
  ``SoftmaxLayer`` starts at zero;
* dropout applies to a layer's *input*: training multiplies by a 0/1 mask,
  inference scales the weighted input by ``1 - p_dropout``; every dropout
  layer uses the same seed, as network3's ``dropout_layer`` does
  (``Network(..., fix_dropout_seed=True)`` gives each layer its own stream);
* SGD does not shuffle, drops the last partial mini-batch, measures accuracy
  as the mean over whole mini-batches, and adds the L2 term
  ``0.5 * lmbda * sum(w**2) / num_training_batches`` -- lambda over the
  number of mini-batches, not over n as in network2 (``fix_l2=True`` uses n);
* it prints what the book prints.

``load_data_shared`` returns NumPy arrays instead of Theano shared variables;
``GPU`` is kept as a flag but ignored (everything runs on the CPU).
"""

from __future__ import annotations

import numpy as np

from .. import activations as _act
from ..errors import ConfigError, positive_int
from ..layers import Dense
from ..layers.conv import ConvPool
from ..layers.dropout import Dropout
from ..layers.reshape import Flatten, Reshape
from ..network import Network as _EngineNetwork
from ..optimizers import SGD as _EngineSGD
from ..regularizers import L2 as _L2
from ..training import EpochRunner
from .mnist_loader import load_data

__all__ = ["GPU", "load_data_shared", "Network", "ConvPoolLayer", "FullyConnectedLayer",
           "SoftmaxLayer", "linear", "ReLU", "sigmoid", "tanh", "size", "dropout_layer"]

#### Constants
#: network3's flag for running under Theano on a GPU. Accepted and ignored:
#: this module always runs on the CPU.
GPU = False

#: The seed network3's ``dropout_layer`` gives every dropout stream:
#: ``np.random.RandomState(0).randint(999999)``.
DROPOUT_SEED = int(np.random.RandomState(0).randint(999999))


# Activation functions for neurons (NumPy versions of network3's).
def linear(z):
    return z


def ReLU(z):
    return np.maximum(0.0, z)


def sigmoid(z):
    z = np.asarray(z)
    with np.errstate(under="ignore"):
        s = _act.sigmoid(z if z.dtype.kind == "f" else z.astype(np.float64))
    return s[()] if s.ndim == 0 else s


def tanh(z):
    return np.tanh(z)


_ACTIVATIONS = {linear: "linear", ReLU: "relu", sigmoid: "sigmoid", tanh: "tanh", np.tanh: "tanh"}


def _activation_name(fn, where: str) -> str:
    if fn in _ACTIVATIONS:
        return _ACTIVATIONS[fn]
    try:
        act = _act.get(fn)
    except ConfigError:
        act = None
    if act is None or not act.elementwise:
        raise ConfigError(f"{where}: activation_fn must be one of network3's linear, ReLU, sigmoid or "
                          f"tanh (or an nndl activation name), got {fn!r}")
    return act.name


#### Load the MNIST data
def load_data_shared(filename=None, *, data_dir=None):
    """Return ``[training_data, validation_data, test_data]``, each a pair
    ``(x, y)`` of NumPy arrays: x float32 ``(n, 784)``, y int64 ``(n,)``.

    ``filename`` is a file in the book's pickle format such as
    ``"mnist_expanded.pkl.gz"`` (looked for as given, then by name in the data
    folder); the default is MNIST itself.
    """
    return [tuple(part) for part in load_data(filename, data_dir=data_dir)]


def size(data):
    "Return the size of the dataset `data`."
    return np.shape(data[0])[0]


def dropout_layer(layer, p_dropout, rng=None):
    """``layer`` times a 0/1 mask keeping each unit with probability 1 - p
    (network3's helper, in NumPy; ``rng`` defaults to a generator seeded with
    network3's ``DROPOUT_SEED``)."""
    rng = np.random.default_rng(DROPOUT_SEED) if rng is None else rng
    layer = np.asarray(layer)
    return layer * (rng.random(layer.shape) >= p_dropout).astype(layer.dtype)


def _int_tuple(value, n: int, what: str, where: str) -> tuple[int, ...]:
    try:
        t = tuple(value)
    except TypeError:
        t = None
    if t is None or len(t) != n or not all(
            not isinstance(v, bool) and isinstance(v, (int, np.integer)) and v >= 1 for v in t):
        raise ConfigError(f"{where}: {what} must be a tuple of {n} positive integers, got {value!r}")
    return tuple(int(v) for v in t)


def _positive(value, what: str, where: str) -> int:
    return positive_int(value, f"{where}: {what}")


def _probability(p, where: str) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)) or not 0 <= p < 1:
        raise ConfigError(f"{where}: p_dropout must be a probability in [0, 1), got {p!r}")
    return float(p)


#### Define layer types

class _BookLayer:
    """Parameters held by the layer until a Network adopts it; then ``w`` and
    ``b`` are live views of the engine layer's (``w`` in network3's shape)."""

    _engine = None

    def _w_view(self):
        return self._w0 if self._engine is None else self._engine_w()

    def _engine_w(self):
        return self._engine.params["w"]

    @property
    def w(self) -> np.ndarray:
        return self._w_view()

    @property
    def b(self) -> np.ndarray:
        return self._b0 if self._engine is None else self._engine.params["b"]

    @property
    def params(self) -> list[np.ndarray]:
        return [self.w, self.b]


class ConvPoolLayer(_BookLayer):
    """Used to create a combination of a convolutional and a max-pooling
    layer: activation(maxpool(conv(x, w)) + b), as network3.

    Args:
        filter_shape: ``(number of filters, input feature maps, filter
            height, filter width)``; square filters only.
        image_shape: ``(mini-batch size, input feature maps, image height,
            image width)``.
        poolsize: ``(y, x)`` pooling sizes; square only, and the convolution's
            output must be divisible by it.
        activation_fn: ``sigmoid`` (default), ``ReLU``, ``tanh`` or ``linear``.
        fix_init: False (the book): weights N(0, pool area / (F k k)); True:
            N(0, 1 / (C k k)), over the inputs of each neuron.

    Biases are N(0, 1). Both are drawn now, with ``np.random.normal``.
    """

    def __init__(self, filter_shape, image_shape, poolsize=(2, 2), activation_fn=sigmoid, *,
                 fix_init=False):
        where = "ConvPoolLayer"
        self.filter_shape = _int_tuple(filter_shape, 4, "filter_shape (filters, feature maps, height, width)", where)
        self.image_shape = _int_tuple(image_shape, 4, "image_shape (mini-batch size, feature maps, height, width)",
                                      where)
        self.poolsize = _int_tuple(poolsize, 2, "poolsize", where)
        self.activation_fn = activation_fn
        self._activation = _activation_name(activation_fn, where)
        F, C, kh, kw = self.filter_shape
        _, ic, ih, iw = self.image_shape
        if kh != kw:
            raise ConfigError(f"{where}: only square filters are supported, got filter_shape {filter_shape}")
        if self.poolsize[0] != self.poolsize[1]:
            raise ConfigError(f"{where}: only square pooling is supported, got poolsize {poolsize}")
        if C != ic:
            raise ConfigError(f"{where}: filter_shape {self.filter_shape} has {C} input feature maps but "
                              f"image_shape {self.image_shape} has {ic}")
        if kh > ih or kw > iw:
            raise ConfigError(f"{where}: the {kh}x{kw} filter is larger than the {ih}x{iw} image")
        p = self.poolsize[0]
        oh, ow = ih - kh + 1, iw - kw + 1
        if oh % p or ow % p:
            raise ConfigError(f"{where}: the {oh}x{ow} convolution output is not divisible by poolsize {poolsize}")
        self.output_shape = (F, oh // p, ow // p)
        # initialize weights and biases
        if fix_init:
            std = np.sqrt(1.0 / (C * kh * kw))
        else:
            n_out = (F * np.prod(self.filter_shape[2:]) / np.prod(self.poolsize))
            std = np.sqrt(1.0 / n_out)
        self.fix_init = bool(fix_init)
        self._w0 = np.random.normal(loc=0, scale=std, size=self.filter_shape)
        self._b0 = np.random.normal(loc=0, scale=1.0, size=(F,))

    def __repr__(self):
        return (f"ConvPoolLayer(filter_shape={self.filter_shape}, image_shape={self.image_shape}, "
                f"poolsize={self.poolsize}, activation_fn={self._activation})")


class FullyConnectedLayer(_BookLayer):
    """A fully connected layer.

    Args:
        n_in, n_out: inputs and neurons.
        activation_fn: ``sigmoid`` (default), ``ReLU``, ``tanh`` or ``linear``.
        p_dropout: dropout probability of the layer's input during training.
        fix_init: False (the book): weights N(0, 1/n_out); True: N(0, 1/n_in).

    ``w`` has network3's shape ``(n_in, n_out)``; biases are N(0, 1). Both
    are drawn now, with ``np.random.normal``.
    """

    def __init__(self, n_in, n_out, activation_fn=sigmoid, p_dropout=0.0, *, fix_init=False):
        where = "FullyConnectedLayer"
        self.n_in = _positive(n_in, "n_in", where)
        self.n_out = _positive(n_out, "n_out", where)
        self.activation_fn = activation_fn
        self._activation = _activation_name(activation_fn, where)
        self.p_dropout = _probability(p_dropout, where)
        self.fix_init = bool(fix_init)
        # Initialize weights and biases (network3: scale sqrt(1/n_out))
        std = np.sqrt(1.0 / (self.n_in if fix_init else self.n_out))
        self._w0 = np.random.normal(loc=0.0, scale=std, size=(self.n_in, self.n_out))
        self._b0 = np.random.normal(loc=0.0, scale=1.0, size=(self.n_out,))

    def _engine_w(self):
        return self._engine.params["w"].T   # engine: (n_out, n_in); network3: (n_in, n_out)

    def __repr__(self):
        return (f"FullyConnectedLayer(n_in={self.n_in}, n_out={self.n_out}, "
                f"activation_fn={self._activation}, p_dropout={self.p_dropout})")


class SoftmaxLayer(_BookLayer):
    """The softmax output layer, trained with the log-likelihood cost.

    Args:
        n_in, n_out: inputs and output neurons.
        p_dropout: dropout probability of the layer's input during training.

    Weights ``(n_in, n_out)`` and biases start at zero, as in network3.
    """

    def __init__(self, n_in, n_out, p_dropout=0.0):
        where = "SoftmaxLayer"
        self.n_in = _positive(n_in, "n_in", where)
        self.n_out = _positive(n_out, "n_out", where)
        self.p_dropout = _probability(p_dropout, where)
        self._activation = "softmax"
        self._w0 = np.zeros((self.n_in, self.n_out))
        self._b0 = np.zeros((self.n_out,))

    def _engine_w(self):
        return self._engine.params["w"].T

    def __repr__(self):
        return f"SoftmaxLayer(n_in={self.n_in}, n_out={self.n_out}, p_dropout={self.p_dropout})"


#### Main class used to construct and train networks
class Network(object):
    """A network of network3 layers, for a fixed mini-batch size.

    Args:
        layers: ``ConvPoolLayer``/``FullyConnectedLayer`` objects ending in a
            ``SoftmaxLayer``.
        mini_batch_size: the mini-batch size used in training; every
            ``ConvPoolLayer``'s ``image_shape[0]`` must equal it.
        fix_dropout_seed: False (the book): all dropout layers draw from
            streams with the same seed; True: independent streams.
        fix_l2: False (the book): the L2 term is lambda / (number of
            mini-batches); True: lambda / n, network2's convention.
        dtype: ``"float32"`` (default, fast; network3 on a GPU) or ``"float64"``.

    Attributes:
        layers, mini_batch_size, params: as in network3 (``params`` are live
            arrays); ``engine``: the :class:`nndl.Network` doing the work.
    """

    def __init__(self, layers, mini_batch_size, *, fix_dropout_seed=False, fix_l2=False, dtype="float32"):
        self.mini_batch_size = _positive(mini_batch_size, "mini_batch_size", "Network")
        try:
            layers = list(layers)
        except TypeError:
            raise ConfigError(f"Network: layers must be a list of network3 layers, got {layers!r}") from None
        if not layers:
            raise ConfigError("Network: needs at least one layer (the last a SoftmaxLayer)")
        for i, layer in enumerate(layers):
            if not isinstance(layer, (ConvPoolLayer, FullyConnectedLayer, SoftmaxLayer)):
                raise ConfigError(f"Network: layer {i} is not a network3 layer: {layer!r}")
            if isinstance(layer, SoftmaxLayer) and i != len(layers) - 1:
                raise ConfigError(f"Network: layer {i} is a SoftmaxLayer; only the last layer may be one")
        if not isinstance(layers[-1], SoftmaxLayer):
            raise ConfigError("Network: the last layer must be a SoftmaxLayer (network3's only cost is "
                              "the softmax layer's log-likelihood)")
        self.layers = layers
        self.fix_dropout_seed = bool(fix_dropout_seed)
        self.fix_l2 = bool(fix_l2)
        engine_layers, input_size = self._engine_layers()
        self.engine = _EngineNetwork(engine_layers, "log-likelihood", input_shape=(input_size,),
                                     rng=np.random.default_rng(DROPOUT_SEED), dtype=dtype)
        if not self.fix_dropout_seed:
            for layer in self.engine.layers:
                if isinstance(layer, Dropout):
                    layer.rng = np.random.default_rng(DROPOUT_SEED)
        for layer in self.layers:
            w0, b0, eng = layer.w, layer.b, layer._target
            eng.params["w"][...] = w0 if isinstance(layer, ConvPoolLayer) else np.asarray(w0).T
            eng.params["b"][...] = b0
            layer._engine = eng
            del layer._target

    def _engine_layers(self):
        """network3's layers as engine layers, checking that they fit together."""
        m = self.mini_batch_size
        out = []
        shape = None   # per-example output shape of the previous layer
        input_size = None
        for i, layer in enumerate(self.layers):
            name = f"layer {i} ({type(layer).__name__})"
            if isinstance(layer, ConvPoolLayer):
                if layer.image_shape[0] != m:
                    raise ConfigError(f"{name}: image_shape {layer.image_shape} starts with mini-batch size "
                                      f"{layer.image_shape[0]}, but the network's mini_batch_size is {m}")
                image = layer.image_shape[1:]
                n_image = int(np.prod(image))
                if shape is None:
                    input_size = n_image
                    out.append(Reshape(image))
                elif tuple(shape) != image:
                    if int(np.prod(shape)) != n_image:
                        raise ConfigError(f"{name}: image_shape {layer.image_shape} needs {n_image} inputs per "
                                          f"image, but layer {i - 1} gives {_describe(shape)}")
                    out.append(Reshape(image))
                F, _, k, _ = layer.filter_shape
                eng = ConvPool(F, k, layer.poolsize[0], activation=layer._activation, init="zeros")
                shape = layer.output_shape
            else:
                if shape is None:
                    input_size = layer.n_in
                elif int(np.prod(shape)) != layer.n_in:
                    raise ConfigError(f"{name}: n_in is {layer.n_in}, but layer {i - 1} gives {_describe(shape)}")
                elif len(shape) != 1:
                    out.append(Flatten())
                if layer.p_dropout > 0:
                    out.append(Dropout(layer.p_dropout, scale="book"))
                eng = Dense(layer.n_out, layer._activation, "zeros")
                shape = (layer.n_out,)
            out.append(eng)
            layer._target = eng
        return out, input_size

    def _check_data(self, data, what: str):
        try:
            x, y = data
        except (TypeError, ValueError):
            raise ConfigError(f"{what} must be a pair (x, y) of arrays, as load_data_shared returns") from None
        x = np.asarray(x)
        y = np.asarray(y)
        n_in = self.engine.input_shape[0]
        if x.ndim != 2 or x.shape[1] != n_in:
            raise ConfigError(f"{what}: x must have shape (n, {n_in}) for this network, got {x.shape}")
        if y.shape != (len(x),):
            raise ConfigError(f"{what}: y must have shape ({len(x)},) (one digit per image), got {y.shape}")
        if y.dtype.kind not in "iu":
            if y.dtype.kind == "f" and np.array_equal(y, np.round(y)):
                y = y.astype(np.int64)
            else:
                raise ConfigError(f"{what}: y must hold integer digits, got dtype {y.dtype}")
        n_out = self.layers[-1].n_out
        if len(y) and (y.min() < 0 or y.max() >= n_out):
            raise ConfigError(f"{what}: digits must be in 0..{n_out - 1}, got {y.min()}..{y.max()}")
        m = self.mini_batch_size
        if len(x) < m:
            raise ConfigError(f"{what} has {len(x)} examples, fewer than one mini-batch of {m}")
        return x, y

    def _batch_accuracy(self, x, y, num_batches):
        """network3's accuracy: the mean over ``num_batches`` whole mini-batches."""
        m = self.mini_batch_size
        predictions = np.argmax(self.engine.feedforward(x[:num_batches * m]), axis=1)
        return float(np.mean([np.mean(predictions[j * m:(j + 1) * m] == y[j * m:(j + 1) * m])
                              for j in range(num_batches)]))

    def SGD(self, training_data, epochs, mini_batch_size, eta,
            validation_data, test_data, lmbda=0.0):
        """Train the network using mini-batch stochastic gradient descent.

        ``training_data``, ``validation_data`` and ``test_data`` are ``(x, y)``
        pairs as :func:`load_data_shared` returns. Mini-batches are taken in
        order (no shuffling) and a last partial one is dropped, as in network3.
        Prints progress as the book does; the best validation accuracy, its
        iteration and the corresponding test accuracy are also kept as
        ``best_validation_accuracy``, ``best_iteration``, ``test_accuracy``.
        """
        if mini_batch_size != self.mini_batch_size:
            raise ConfigError(f"SGD: mini_batch_size is {mini_batch_size!r}, but the network was built for "
                              f"mini-batches of {self.mini_batch_size}")
        positive_int(epochs, "SGD: epochs")
        try:
            lmbda = float(lmbda)
        except (TypeError, ValueError):
            raise ConfigError(f"SGD: lmbda must be a number, got {lmbda!r}") from None
        training_x, training_y = self._check_data(training_data, "training_data")
        validation_x, validation_y = self._check_data(validation_data, "validation_data")
        has_test = test_data is not None and len(test_data) > 0
        if has_test:
            test_x, test_y = self._check_data(test_data, "test_data")
        m = self.mini_batch_size

        # compute number of minibatches for training, validation and testing
        num_training_batches = int(size(training_data) / m)
        num_validation_batches = int(size(validation_data) / m)
        num_test_batches = int(size(test_data) / m) if has_test else 0
        n_used = num_training_batches * m
        training_x = training_x[:n_used]
        training_y = training_y[:n_used].astype(np.int64)

        # The (regularized) cost's gradient step. network3 adds
        # 0.5*lmbda*sum(w**2)/num_training_batches to the mean mini-batch cost,
        # so the weight decay is lmbda/num_training_batches per step; the
        # engine's L2 uses lmbda/n, so n is num_training_batches here.
        n_l2 = n_used if self.fix_l2 else num_training_batches
        try:
            optimizer = _EngineSGD(eta, regularizers=[_L2(lmbda)] if lmbda else [])
        except ConfigError as e:
            raise ConfigError(f"SGD: {e}") from None
        runner = EpochRunner(self.engine, optimizer, training_x, training_y, m, n=n_l2, drop_last=True)
        order = np.arange(n_used)   # network3 does not shuffle

        def test_mb_predictions(i):
            x = test_x[i * m:(i + 1) * m]
            return np.argmax(self.engine.feedforward(x), axis=1)
        if has_test:
            self.test_mb_predictions = test_mb_predictions

        # Do the actual training
        best_validation_accuracy = 0.0
        best_iteration = None
        test_accuracy = None
        for epoch in range(int(epochs)):
            first = num_training_batches * epoch
            runner.run_epoch(order, marks=range(-first % 1000, num_training_batches, 1000),
                             on_mark=lambda b: print("Training mini-batch number {0}".format(first + b)))
            iteration = num_training_batches * epoch + num_training_batches - 1
            validation_accuracy = self._batch_accuracy(validation_x, validation_y, num_validation_batches)
            print("Epoch {0}: validation accuracy {1:.2%}".format(epoch, validation_accuracy))
            if validation_accuracy >= best_validation_accuracy:
                print("This is the best validation accuracy to date.")
                best_validation_accuracy = validation_accuracy
                best_iteration = iteration
                if has_test:
                    test_accuracy = self._batch_accuracy(test_x, test_y, num_test_batches)
                    print('The corresponding test accuracy is {0:.2%}'.format(test_accuracy))
        print("Finished training network.")
        print("Best validation accuracy of {0:.2%} obtained at iteration {1}".format(
            best_validation_accuracy, best_iteration))
        if has_test:
            print("Corresponding test accuracy of {0:.2%}".format(test_accuracy))
        self.best_validation_accuracy = best_validation_accuracy
        self.best_iteration = best_iteration
        self.test_accuracy = test_accuracy

    @property
    def params(self) -> list[np.ndarray]:
        return [p for layer in self.layers for p in layer.params]


def _describe(shape) -> str:
    shape = tuple(shape)
    if len(shape) == 1:
        return f"{shape[0]} outputs"
    return f"{int(np.prod(shape))} outputs ({'x'.join(map(str, shape))})"
