"""network.py
~~~~~~~~~~

The book's chapter 1 module (``network.py``) with its API unchanged, run by
the nndl engine.

``Network(sizes)`` holds an :class:`nndl.Network` of sigmoid
:class:`nndl.layers.Dense` layers in float64 (as the book computes) and
shows its parameters in the book's shapes: ``weights[l]`` is ``(n_out, n_in)``
(``w[j][k]`` connects neuron k of the layer below to neuron j, ch. 2) and
``biases[l]`` is ``(n_out, 1)``. Both are live views of the engine's arrays.

What stays exactly as in the book:

* initialisation draws from NumPy's *global* generator (``np.random.randn``),
  all biases first, then all weights, so ``np.random.seed(s)`` gives the
  book's starting network (this module is the one place in nndl that uses
  the global generator, on purpose);
* ``SGD`` shuffles the training list in place with Python's
  ``random.shuffle`` once per epoch and cuts it into mini-batches of
  ``mini_batch_size`` (the last may be smaller), so ``random.seed(s)`` gives
  the book's mini-batches;
* the update (eq. 20-21, via BP1-BP4) and what is printed.

What changes is the speed: each mini-batch is one matrix computation through
the engine (a compiled kernel when the network and data allow it) instead of
a Python loop over examples. See ``docs/book-compat.md`` for the details.
"""

from __future__ import annotations

import numpy as np

from .. import activations as _act
from ..optimizers import SGD as _EngineSGD
from .common import BookNetwork

__all__ = ["Network", "sigmoid", "sigmoid_prime"]


#### Miscellaneous functions
def sigmoid(z):
    """The sigmoid function 1 / (1 + e^-z) (eq. 3), elementwise.

    Same values as the book's ``1.0/(1.0+np.exp(-z))`` but computed without
    overflow warnings for large negative ``z``. Scalars give NumPy scalars.
    """
    z = np.asarray(z)
    if z.dtype.kind != "f":
        z = z.astype(np.float64)
    with np.errstate(under="ignore"):   # exp(-|z|) underflows to 0 for large |z|: harmless
        s = _act.sigmoid(z)
    return s[()] if s.ndim == 0 else s


def sigmoid_prime(z):
    """Derivative of the sigmoid function: sigma(z) (1 - sigma(z))."""
    s = sigmoid(z)
    return s * (1 - s)


#### Main Network class
class Network(BookNetwork):
    """The book's chapter 1 network: sigmoid neurons, quadratic cost, SGD.

    Args:
        sizes: neurons per layer, input first, e.g. ``[784, 30, 10]``.

    Attributes:
        sizes, num_layers: as in the book.
        weights: list of ``(n_out, n_in)`` arrays; biases: list of
            ``(n_out, 1)`` arrays. Live views of ``engine``'s parameters.
        engine: the :class:`nndl.Network` doing the work (save it with
            :func:`nndl.save`).

    The biases and weights are drawn from N(0, 1) with ``np.random.randn``
    (biases of every layer first, then weights), as in the book.
    """

    _init_name = "large"

    def __init__(self, sizes) -> None:
        super().__init__(sizes, "quadratic")
        self._draw_book_parameters(scale_by_fan_in=False)

    def SGD(self, training_data, epochs, mini_batch_size, eta, test_data=None):
        """Train the neural network using mini-batch stochastic gradient
        descent. ``training_data`` is a list of tuples ``(x, y)``, x an input
        column ``(n_in, 1)`` and y the desired output ``(n_out, 1)``. If
        ``test_data`` (a list of ``(x, digit)``) is given, the network is
        evaluated against it after each epoch and progress printed out.

        Prints ``Epoch j: correct / n_test`` (or ``Epoch j complete``) per epoch.
        """
        test = None
        if test_data:
            test_data = list(test_data)
            n_test = len(test_data)
            test = self._stack(test_data, "test_data", "int")

        def report(j, _stacked):
            if test is not None:
                correct = int(np.sum(self._predict(test.x) == test.labels))
                print("Epoch {0}: {1} / {2}".format(j, correct, n_test))
            else:
                print("Epoch {0} complete".format(j))

        self._train(training_data, epochs, mini_batch_size, eta, 0.0, report, lambda n: (eta,))

    def update_mini_batch(self, mini_batch, eta):
        """Update the network's weights and biases by applying gradient
        descent using backpropagation to a single mini batch: w -> w -
        (eta/m) sum nabla_w, b -> b - (eta/m) sum nabla_b (eq. 20-21).
        ``mini_batch`` is a list of tuples ``(x, y)``; ``eta`` the learning rate.
        """
        s = self._stack(list(mini_batch), "mini_batch", "vector")
        self._step(s.x, s.targets, _EngineSGD(eta), len(s))

    def backprop(self, x, y):
        """Return a tuple ``(nabla_b, nabla_w)`` representing the gradient
        for the cost function C_x, in the shapes of ``biases`` and ``weights``."""
        return self._backprop(x, y)

    def evaluate(self, test_data):
        """Return the number of test inputs for which the neural network
        outputs the correct result: the index of the most active output
        neuron equals the digit y of each ``(x, y)`` in ``test_data``."""
        s = self._stack(list(test_data), "test_data", "int")
        return int(np.sum(self._predict(s.x) == s.labels))

    def cost_derivative(self, output_activations, y):
        """Return the vector of partial derivatives dC_x/da for the output
        activations (quadratic cost)."""
        return (output_activations - y)

    # -- hooks -------------------------------------------------------------------------
    def _output_delta(self, z, a, targets):
        # BP1 (eq. BP1a): delta^L = nabla_a C * sigma'(z^L), the book's
        # cost_derivative applied to columns (one per example).
        return self.cost_derivative(a.T, targets.T).T * sigmoid_prime(z)

    def _base_update_mini_batch(self):
        return Network.update_mini_batch

    def _fast_cost_ok(self) -> bool:
        return type(self).cost_derivative is Network.cost_derivative
