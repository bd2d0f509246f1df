"""network2.py
~~~~~~~~~~~~~~

The book's chapter 3 module (``network2.py``) with its API unchanged, run by
the nndl engine: the cross-entropy cost, L2 regularisation, the 1/sqrt(n_in)
weight initialisation, monitoring, early stopping, and saving to / loading
from the book's JSON format.

As in :mod:`nndl.book.network`, the initial weights come from NumPy's global
generator in the book's order and ``SGD`` shuffles with Python's
``random.shuffle``, so seeded runs reproduce the book's algorithm; each
mini-batch is one matrix computation through the engine. The update with
regularisation is eq. 93: w -> (1 - eta lmbda / n) w - (eta / m) sum nabla_w,
with n the size of the training set and m of the mini-batch.

Training data holds desired-output vectors ``y`` ``(n_out, 1)``, validation
and test data hold digits: that is what the ``convert`` flags of ``accuracy``
and ``total_cost`` are for, as in the book. See ``docs/book-compat.md``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .. import costs as _costs
from .. import initializers as _init
from ..errors import ConfigError, ModelFileError, positive_int
from ..fileio import atomic_write_text
from ..optimizers import SGD as _EngineSGD
from ..regularizers import L2 as _L2
from .mnist_loader import vectorized_result
from .common import BookNetwork, Stacked
from .network import sigmoid, sigmoid_prime

__all__ = ["QuadraticCost", "CrossEntropyCost", "Network", "load", "vectorized_result",
           "sigmoid", "sigmoid_prime"]


#### Define the quadratic and cross-entropy cost functions

class QuadraticCost(object):

    @staticmethod
    def fn(a, y):
        """Return the cost associated with an output ``a`` and desired output
        ``y``: 1/2 ||a - y||^2 (eq. 6 for one example; for columns of several
        examples, the sum of their costs)."""
        return 0.5 * np.linalg.norm(a - y) ** 2

    @staticmethod
    def delta(z, a, y):
        """Return the error delta from the output layer (BP1)."""
        return (a - y) * sigmoid_prime(z)


class CrossEntropyCost(object):

    @staticmethod
    def fn(a, y):
        """Return the cost associated with an output ``a`` and desired output
        ``y`` (eq. 63). ``np.nan_to_num`` turns the ``0 * log(0)`` of a
        saturated neuron into 0.0, as in the book; the floating-point warnings
        it would raise on the way are silenced here."""
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return np.sum(np.nan_to_num(-y * np.log(a) - (1 - y) * np.log(1 - a)))

    @staticmethod
    def delta(z, a, y):
        """Return the error delta from the output layer: a - y (eq. 66). ``z``
        is not used; it keeps the interface the same as the other costs'."""
        return (a - y)


_BOOK_COSTS = {QuadraticCost: "quadratic", CrossEntropyCost: "cross-entropy"}


class _BookCostAdapter(_costs.Cost):
    """A cost written the book's way (``fn(a, y)``, ``delta(z, a, y)`` on
    columns) for the engine, which works on rows and integer labels."""

    allowed = ("sigmoid",)

    def __init__(self, book_cost) -> None:
        self.book_cost = book_cost
        self.name = "book:" + _cost_name(book_cost)

    def fn(self, a, y):
        yv = _costs.one_hot(y, a.shape[-1], a.dtype)
        return float(self.book_cost.fn(a.T, yv.T))

    def delta(self, z, a, y, activation):
        yv = _costs.one_hot(y, a.shape[-1], a.dtype)
        return np.asarray(self.book_cost.delta(z.T, a.T, yv.T)).T


def _cost_name(cost) -> str:
    return cost.__name__ if isinstance(cost, type) else type(cost).__name__


def _engine_cost(cost) -> _costs.Cost:
    """The engine's cost for a book cost class or instance."""
    if not (callable(getattr(cost, "fn", None)) and callable(getattr(cost, "delta", None))):
        raise ConfigError(
            f"cost must be a cost class or object with fn(a, y) and delta(z, a, y), such as "
            f"network2.CrossEntropyCost or network2.QuadraticCost; got {cost!r}"
        )
    for book_cls, name in _BOOK_COSTS.items():
        if cost.fn is book_cls.fn and cost.delta is book_cls.delta:
            return _costs.get(name)
    return _BookCostAdapter(cost)


#### Main Network class
class Network(BookNetwork):
    """The book's improved network.

    Args:
        sizes: neurons per layer, input first, e.g. ``[784, 30, 10]``.
        cost: ``CrossEntropyCost`` (default) or ``QuadraticCost``, the class
            or an instance; any object with the book's ``fn`` and ``delta``
            works too (it runs on the NumPy path).

    Attributes:
        sizes, num_layers, cost: as in the book.
        weights: list of ``(n_out, n_in)`` arrays; biases: list of
            ``(n_out, 1)`` arrays. Live views of ``engine``'s parameters.
        engine: the :class:`nndl.Network` doing the work.

    The parameters are initialised by :meth:`default_weight_initializer`.
    """

    _init_name = "default"

    def __init__(self, sizes, cost=CrossEntropyCost) -> None:
        engine_cost = _engine_cost(cost)
        super().__init__(sizes, engine_cost)
        self.default_weight_initializer()
        self._cost = cost

    @property
    def cost(self):
        """The cost class (or object) given to the constructor."""
        return self._cost

    @cost.setter
    def cost(self, cost) -> None:
        self.engine.cost = _engine_cost(cost)
        self._cost = cost

    def default_weight_initializer(self):
        """Initialize each weight from a Gaussian with mean 0 and standard
        deviation 1/sqrt(n_in) (n_in: weights into the same neuron), and each
        bias from a Gaussian with mean 0 and standard deviation 1. Drawn with
        ``np.random.randn``, all biases first, as in the book."""
        self._draw_book_parameters(scale_by_fan_in=True)
        self._set_init_name("default")

    def large_weight_initializer(self):
        """Initialize the weights and biases from a Gaussian with mean 0 and
        standard deviation 1 (chapter 1's approach, for comparison)."""
        self._draw_book_parameters(scale_by_fan_in=False)
        self._set_init_name("large")

    def _set_init_name(self, name: str) -> None:
        for layer in self.engine.layers:
            layer.init = _init.get(name)

    def SGD(self, training_data, epochs, mini_batch_size, eta,
            lmbda=0.0,
            evaluation_data=None,
            monitor_evaluation_cost=False,
            monitor_evaluation_accuracy=False,
            monitor_training_cost=False,
            monitor_training_accuracy=False,
            early_stopping_n=0):
        """Train the neural network using mini-batch stochastic gradient
        descent. ``training_data`` is a list of tuples ``(x, y)`` (y a desired
        output column); ``lmbda`` is the L2 regularisation parameter;
        ``evaluation_data`` (a list of ``(x, digit)``, usually the validation
        or test data) is monitored as the flags ask. ``early_stopping_n > 0``
        stops when the last monitored accuracy has not improved for that many
        epochs.

        Returns the book's four per-epoch lists: ``(evaluation_cost,
        evaluation_accuracy, training_cost, training_accuracy)``; a list is
        empty when its flag is not set.
        """
        if isinstance(early_stopping_n, bool) or not isinstance(early_stopping_n, (int, np.integer)):
            raise ConfigError(f"early_stopping_n must be an integer, got {early_stopping_n!r}")
        try:
            lmbda = float(lmbda)
        except (TypeError, ValueError):
            raise ConfigError(f"lmbda must be a number, got {lmbda!r}") from None
        ev = None
        n_data = 0
        if evaluation_data:
            evaluation_data = list(evaluation_data)
            n_data = len(evaluation_data)
            if monitor_evaluation_cost or monitor_evaluation_accuracy:
                ev = self._stack(evaluation_data, "evaluation_data", "int")
        elif monitor_evaluation_cost or monitor_evaluation_accuracy:
            raise ConfigError("monitor_evaluation_cost/monitor_evaluation_accuracy need evaluation_data")
        if early_stopping_n > 0 and not (monitor_evaluation_accuracy or monitor_training_accuracy):
            raise ConfigError("early stopping watches the accuracy: set monitor_evaluation_accuracy=True "
                              "(or monitor_training_accuracy=True) with early_stopping_n > 0")

        evaluation_cost, evaluation_accuracy = [], []
        training_cost, training_accuracy = [], []
        state = {"best_accuracy": 0, "no_accuracy_change": 0}

        def on_epoch_end(j, tr: Stacked) -> bool:
            n = len(tr)
            print("Epoch %s training complete" % j)
            accuracy = None
            if monitor_training_cost:
                cost = self._total_cost(tr, lmbda)
                training_cost.append(cost)
                print("Cost on training data: {}".format(cost))
            if monitor_training_accuracy:
                accuracy = int(np.sum(self._predict(tr.x) == np.argmax(tr.targets, axis=1)))
                training_accuracy.append(accuracy)
                print("Accuracy on training data: {} / {}".format(accuracy, n))
            if monitor_evaluation_cost:
                cost = self._total_cost(ev, lmbda)
                evaluation_cost.append(cost)
                print("Cost on evaluation data: {}".format(cost))
            if monitor_evaluation_accuracy:
                accuracy = int(np.sum(self._predict(ev.x) == ev.labels))
                evaluation_accuracy.append(accuracy)
                print("Accuracy on evaluation data: {} / {}".format(accuracy, n_data))
            # Early stopping, on the accuracy computed last (as in the book).
            if early_stopping_n > 0:
                if accuracy > state["best_accuracy"]:
                    state["best_accuracy"] = accuracy
                    state["no_accuracy_change"] = 0
                else:
                    state["no_accuracy_change"] += 1
                if state["no_accuracy_change"] == early_stopping_n:
                    return True
            return False

        self._train(training_data, epochs, mini_batch_size, eta, lmbda, on_epoch_end,
                    lambda n: (eta, lmbda, n))
        return evaluation_cost, evaluation_accuracy, training_cost, training_accuracy

    def update_mini_batch(self, mini_batch, eta, lmbda, n):
        """Update the network's weights and biases by applying gradient
        descent using backpropagation to a single mini batch (eq. 93-94):
        w -> (1 - eta lmbda / n) w - (eta / m) sum nabla_w and
        b -> b - (eta / m) sum nabla_b. ``n`` is the size of the training set.
        """
        s = self._stack(list(mini_batch), "mini_batch", "vector")
        try:
            opt = _EngineSGD(eta, regularizers=[_L2(lmbda)] if lmbda else [])
        except ConfigError as e:
            raise ConfigError(f"update_mini_batch: {e}") from None
        positive_int(n, "n (the size of the training set)")
        self._step(s.x, s.targets, opt, int(n))

    def backprop(self, x, y):
        """Return a tuple ``(nabla_b, nabla_w)`` representing the gradient
        for the cost function C_x, in the shapes of ``biases`` and ``weights``."""
        return self._backprop(x, y)

    def accuracy(self, data, convert=False):
        """Return the number of inputs in ``data`` for which the neural
        network outputs the correct result (the most active output neuron).

        ``convert`` should be False for validation or test data (y is a
        digit) and True for the training data (y is a desired-output vector),
        as in the book.
        """
        s = self._stack(list(data), "data", "vector" if convert else "int")
        labels = np.argmax(s.targets, axis=1) if convert else s.labels
        return int(np.sum(self._predict(s.x) == labels))

    def total_cost(self, data, lmbda, convert=False):
        """Return the total cost for the data set ``data``: the mean cost per
        example plus the L2 term 0.5 (lmbda / len(data)) sum ||w||^2 (eq. 85).

        ``convert`` should be False for the training data (the usual case) and
        True for validation or test data (the reverse of ``accuracy``'s).
        """
        s = self._stack(list(data), "data", "int" if convert else "vector")
        return self._total_cost(s, lmbda)

    def _total_cost(self, s: Stacked, lmbda) -> float:
        a = self.engine.feedforward(s.x)
        n = len(s)
        cost = float(self.cost.fn(a.T, self._targets_of(s).T)) / n
        cost += 0.5 * (lmbda / n) * sum(np.linalg.norm(w) ** 2 for w in self.weights)
        return float(cost)

    def save(self, filename):
        """Save the neural network to the file ``filename``, in the book's
        JSON format (written to a temporary file first, then renamed)."""
        data = {"sizes": [int(s) for s in self.sizes],
                "weights": [w.tolist() for w in self.weights],
                "biases": [b.tolist() for b in self.biases],
                "cost": _cost_name(self.cost)}
        atomic_write_text(Path(filename), json.dumps(data))

    # -- hooks -------------------------------------------------------------------------
    def _output_delta(self, z, a, targets):
        # BP1: the cost object's delta, on columns (one per example).
        return np.asarray(self.cost.delta(z.T, a.T, targets.T)).T

    def _base_update_mini_batch(self):
        return Network.update_mini_batch

    def _fast_cost_ok(self) -> bool:
        return self.engine.cost.name in ("quadratic", "cross-entropy")


#### Loading a Network
def load(filename):
    """Load a neural network from the file ``filename``. Returns an
    instance of Network.

    Reads the book's JSON format (``sizes``, ``weights``, ``biases``, ``cost``)
    and also nndl's ``.npz`` format when the network fits the book's (sigmoid
    dense layers, quadratic or cross-entropy cost). As in the book, building
    the Network draws its throw-away initial values from ``np.random``.

    Raises:
        ModelFileError: the file is missing, unreadable or not a model, with
            what was wrong.
    """
    from .. import io as _io

    engine = _io.load(filename)   # either format, validated; errors name the file
    try:
        data = _io.to_book_dict(engine)
    except ConfigError as e:
        raise ModelFileError(f"{filename}: this nndl model does not fit network2: {e}") from None
    cost = {"QuadraticCost": QuadraticCost, "CrossEntropyCost": CrossEntropyCost}[data["cost"]]
    net = Network(data["sizes"], cost=cost)   # draws throw-away values from np.random, as the book's does
    net.weights = [layer.params["w"].astype(np.float64) for layer in engine.layers]
    net.biases = [layer.params["b"].astype(np.float64).reshape(-1, 1) for layer in engine.layers]
    return net
