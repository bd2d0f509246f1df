"""A plain per-example implementation of the book's algorithm, used as an oracle.

This is the book's ``network.py`` / ``network2.py`` written again for the
tests (and for ``bench/bench_dense.py``): column vectors, one example at a
time through ``backprop``, ``nabla_b`` / ``nabla_w`` accumulated over the
mini-batch, then one update with ``eta / len(mini_batch)``. It shares no code
with nndl, so a test that compares the two compares independent
implementations.

Conventions, as in the book:

* ``weights[l]`` has shape ``(n_out, n_in)``, so ``w[j][k]`` connects neuron
  k of the layer below to neuron j (ch. 2); ``biases[l]`` has shape ``(n_out, 1)``.
* ``x`` is a column ``(n_in, 1)``, ``y`` a one-hot column ``(n_out, 1)``.
* L2 (network2.py, eq. 93): ``w <- (1 - eta lmbda / n) w - (eta / m) nabla_w``.
* L1 (eq. 97): ``w <- w - (eta lmbda / n) sgn(w) - (eta / m) nabla_w``.
* momentum (ch. 3, eq. 107-108): ``v <- mu v - eta grad C``; ``w <- w + v``,
  where grad C is the regularised mini-batch gradient
  ``nabla_w / m + (lmbda / n) w`` (biases: ``nabla_b / m``).

Two classes, and the loop body of ``expand_mnist.py`` (:func:`book_expand_one`):

* :class:`BookNetwork` is ``network.py`` (chapter 1) ported to Python 3 and
  nothing more: sigmoid neurons, quadratic cost, plain SGD. The benchmark
  times it.
* :class:`ReferenceNetwork` generalises it the way ``network2.py`` does (a
  cost object owning the output error delta^L) and adds per-layer
  activations, L1 and momentum, so that every engine configuration the tests
  use has an oracle.
"""

from __future__ import annotations

import random

import numpy as np


# -- the book's network.py (ch. 1), Python 3 --------------------------------

def sigmoid(z):
    """The sigmoid function (as in the book; not guarded against overflow)."""
    return 1.0 / (1.0 + np.exp(-z))


def sigmoid_prime(z):
    """Derivative of the sigmoid function."""
    return sigmoid(z) * (1 - sigmoid(z))


class BookNetwork:
    """``network.py``'s ``Network``, with the parameters passed in instead of
    drawn from the global ``np.random`` and the shuffling left to the caller.

    Args:
        weights: list of ``(n_out, n_in)`` arrays.
        biases: list of ``(n_out,)`` or ``(n_out, 1)`` arrays.
    """

    def __init__(self, weights, biases):
        self.weights = [np.array(w, dtype=np.float64) for w in weights]
        self.biases = [np.array(b, dtype=np.float64).reshape(-1, 1) for b in biases]
        self.num_layers = len(self.weights) + 1
        self.sizes = [self.weights[0].shape[1]] + [w.shape[0] for w in self.weights]

    @classmethod
    def from_sizes(cls, sizes):
        """``network.py``'s own constructor: biases, then weights, from the global ``np.random``."""
        biases = [np.random.randn(y, 1) for y in sizes[1:]]
        weights = [np.random.randn(y, x) for x, y in zip(sizes[:-1], sizes[1:])]
        return cls(weights, biases)

    def feedforward(self, a):
        """Return the output of the network if ``a`` is input."""
        for b, w in zip(self.biases, self.weights):
            a = sigmoid(np.dot(w, a) + b)
        return a

    def SGD(self, training_data, epochs, mini_batch_size, eta):
        """``network.py``'s ``SGD`` (without test data): shuffles the list in place with ``random``."""
        n = len(training_data)
        for _ in range(epochs):
            random.shuffle(training_data)
            self.SGD_epoch([training_data[k:k + mini_batch_size] for k in range(0, n, mini_batch_size)], eta)

    def SGD_epoch(self, mini_batches, eta):
        """One epoch of ``network.py``'s ``SGD`` on already-made mini-batches."""
        for mini_batch in mini_batches:
            self.update_mini_batch(mini_batch, eta)

    def update_mini_batch(self, mini_batch, eta):
        """Update the weights and biases by gradient descent on one mini-batch
        of ``(x, y)`` column pairs."""
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        for x, y in mini_batch:
            delta_nabla_b, delta_nabla_w = self.backprop(x, y)
            nabla_b = [nb + dnb for nb, dnb in zip(nabla_b, delta_nabla_b)]
            nabla_w = [nw + dnw for nw, dnw in zip(nabla_w, delta_nabla_w)]
        self.weights = [w - (eta / len(mini_batch)) * nw
                        for w, nw in zip(self.weights, nabla_w)]
        self.biases = [b - (eta / len(mini_batch)) * nb
                       for b, nb in zip(self.biases, nabla_b)]

    def backprop(self, x, y):
        """``(nabla_b, nabla_w)``: the gradient of the cost C_x for one example."""
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        # feedforward
        activation = x
        activations = [x]  # all the activations, layer by layer
        zs = []  # all the z vectors, layer by layer
        for b, w in zip(self.biases, self.weights):
            z = np.dot(w, activation) + b
            zs.append(z)
            activation = sigmoid(z)
            activations.append(activation)
        # backward pass
        delta = self.cost_derivative(activations[-1], y) * sigmoid_prime(zs[-1])
        nabla_b[-1] = delta
        nabla_w[-1] = np.dot(delta, activations[-2].transpose())
        # As in the book, l = 1 is the last layer, l = 2 the second-last, ...
        for l in range(2, self.num_layers):
            z = zs[-l]
            sp = sigmoid_prime(z)
            delta = np.dot(self.weights[-l + 1].transpose(), delta) * sp
            nabla_b[-l] = delta
            nabla_w[-l] = np.dot(delta, activations[-l - 1].transpose())
        return (nabla_b, nabla_w)

    def evaluate(self, test_data):
        """Number of ``(x, label)`` pairs classified correctly."""
        test_results = [(np.argmax(self.feedforward(x)), y) for (x, y) in test_data]
        return sum(int(x == y) for (x, y) in test_results)

    def cost_derivative(self, output_activations, y):
        """dC_x/da for the quadratic cost."""
        return output_activations - y


# -- network2.py, generalised -------------------------------------------------

def _act(name, z):
    if name == "sigmoid":
        return sigmoid(z)
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "linear":
        return z
    if name == "softmax":
        e = np.exp(z - np.max(z))
        return e / np.sum(e)
    raise ValueError(name)


def _act_prime(name, z):
    if name == "sigmoid":
        return sigmoid(z) * (1 - sigmoid(z))
    if name == "tanh":
        return 1 - np.tanh(z) ** 2
    if name == "relu":
        return (z > 0).astype(np.float64)
    if name == "linear":
        return np.ones_like(z)
    raise ValueError(f"no elementwise derivative for {name}")


def output_delta(cost, output_activation, z, a, y):
    """BP1 for one example (column vectors)."""
    if cost == "quadratic":
        return (a - y) * _act_prime(output_activation, z)       # (a - y) sigma'(z)
    if cost == "cross-entropy" and output_activation == "sigmoid":
        return a - y                                             # eq. 66
    if cost == "log-likelihood" and output_activation == "softmax":
        return a - y                                             # eq. 81-82
    raise ValueError(f"no BP1 for {cost} after {output_activation}")


class ReferenceNetwork:
    """Per-example backprop + mini-batch SGD for any of the engine's dense setups.

    Args:
        weights: list of ``(n_out, n_in)`` arrays (copied, float64).
        biases: list of ``(n_out,)`` or ``(n_out, 1)`` arrays.
        activations: one name per layer (``sigmoid``, ``tanh``, ``relu``,
            ``linear``; ``softmax`` for the last only).
        cost: ``quadratic``, ``cross-entropy`` or ``log-likelihood``.
        lmbda: L2 parameter; l1: L1 parameter (both with the book's /n).
        momentum: the momentum coefficient mu (0 = plain SGD).
    """

    def __init__(self, weights, biases, activations, cost="quadratic", *,
                 lmbda=0.0, l1=0.0, momentum=0.0):
        self.weights = [np.array(w, dtype=np.float64) for w in weights]
        self.biases = [np.array(b, dtype=np.float64).reshape(-1, 1) for b in biases]
        self.activations = list(activations)
        assert len(self.activations) == len(self.weights)
        self.cost = cost
        self.lmbda, self.l1, self.momentum = lmbda, l1, momentum
        self.vw = [np.zeros(w.shape) for w in self.weights]
        self.vb = [np.zeros(b.shape) for b in self.biases]

    @property
    def num_layers(self):
        return len(self.weights) + 1

    def feedforward(self, a):
        for b, w, name in zip(self.biases, self.weights, self.activations):
            a = _act(name, np.dot(w, a) + b)
        return a

    def backprop(self, x, y):
        """``(nabla_b, nabla_w, zs, activations)`` for one example ``x`` ``(n_in, 1)``,
        one-hot ``y`` ``(n_out, 1)``."""
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        activation = x
        activations = [x]
        zs = []
        for b, w, name in zip(self.biases, self.weights, self.activations):
            z = np.dot(w, activation) + b                       # eq. 25
            zs.append(z)
            activation = _act(name, z)
            activations.append(activation)
        delta = output_delta(self.cost, self.activations[-1], zs[-1], activations[-1], y)  # BP1
        nabla_b[-1] = delta                                     # BP3
        nabla_w[-1] = np.dot(delta, activations[-2].transpose())  # BP4
        for l in range(2, self.num_layers):
            sp = _act_prime(self.activations[-l], zs[-l])
            delta = np.dot(self.weights[-l + 1].transpose(), delta) * sp   # BP2
            nabla_b[-l] = delta
            nabla_w[-l] = np.dot(delta, activations[-l - 1].transpose())
        return nabla_b, nabla_w, zs, activations

    def gradients(self, mini_batch):
        """Summed ``(nabla_b, nabla_w)`` over a list of ``(x, y)`` column pairs."""
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        for x, y in mini_batch:
            dnb, dnw, _, _ = self.backprop(x, y)
            nabla_b = [nb + d for nb, d in zip(nabla_b, dnb)]
            nabla_w = [nw + d for nw, d in zip(nabla_w, dnw)]
        return nabla_b, nabla_w

    def update_mini_batch(self, mini_batch, eta, n):
        """One step on ``mini_batch`` for a training set of size ``n``."""
        m = len(mini_batch)
        nabla_b, nabla_w = self.gradients(mini_batch)
        if self.momentum == 0:
            self.weights = [(1 - eta * (self.lmbda / n)) * w - eta * (self.l1 / n) * np.sign(w)
                            - (eta / m) * nw
                            for w, nw in zip(self.weights, nabla_w)]
            self.biases = [b - (eta / m) * nb for b, nb in zip(self.biases, nabla_b)]
            return
        mu = self.momentum
        for i, (w, nw) in enumerate(zip(self.weights, nabla_w)):
            grad = nw / m + (self.lmbda / n) * w + (self.l1 / n) * np.sign(w)
            self.vw[i] = mu * self.vw[i] - eta * grad
            self.weights[i] = w + self.vw[i]
        for i, (b, nb) in enumerate(zip(self.biases, nabla_b)):
            self.vb[i] = mu * self.vb[i] - eta * (nb / m)
            self.biases[i] = b + self.vb[i]


def as_book_data(x, y, n_out):
    """Rows ``x`` ``(N, n_in)`` and integer labels ``y`` ``(N,)`` -> the book's
    list of ``(x column, one-hot y column)`` pairs, in float64."""
    x = np.asarray(x, dtype=np.float64)
    data = []
    for xi, yi in zip(x, np.asarray(y)):
        e = np.zeros((n_out, 1))
        e[int(yi)] = 1.0
        data.append((xi.reshape(-1, 1), e))
    return data


def batches(data, order, m):
    """The book's ``mini_batches`` for a given example order."""
    shuffled = [data[i] for i in order]
    return [shuffled[k:k + m] for k in range(0, len(shuffled), m)]


# -- the book's expand_mnist.py (ch. 6) ---------------------------------------

def book_expand_one(image: np.ndarray) -> list[np.ndarray]:
    """The book's expand_mnist.py loop body for one 784-pixel image, verbatim
    in substance: np.roll then zero the line that wrapped round."""
    image = np.reshape(image, (-1, 28))
    out = []
    for d, axis, index_position, index in [(1, 0, "first", 0), (-1, 0, "first", 27),
                                           (1, 1, "last", 0), (-1, 1, "last", 27)]:
        new_img = np.roll(image, d, axis)
        if index_position == "first":
            new_img[index, :] = np.zeros(28)
        else:
            new_img[:, index] = np.zeros(28)
        out.append(np.reshape(new_img, 784))
    return out
