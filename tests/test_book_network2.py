"""nndl.book.network2: the book's chapter 3 module on the engine.

* the book's code samples (chapters 3 and 5, the overfitting, more_data and
  generate_gradient scripts), imports changed, on MNIST subsets: what they
  print and return;
* a seeded run equals a per-example implementation of network2.py's
  algorithm (below, sharing no code with nndl), with L2, for both costs, on
  the compiled-kernel path and on the NumPy path;
* ``total_cost``/``accuracy`` and their ``convert`` flags, early stopping;
* the book's JSON format both ways: a file written as the book's ``save``
  writes it loads and classifies identically, and files written by
  ``network2.Network.save`` and ``nndl.save(..., format="book")`` load in a
  copy of the book's ``load``;
* malformed input and malformed model files raise errors that say what was
  wrong.
"""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pytest

import nndl
from nndl.book import mnist_loader, network2
from nndl.errors import ConfigError, ModelFileError

from helpers import assert_same_params, needs_mnist


pytestmark = pytest.mark.usefixtures("data_env")   # $NNDL_DATA: the test data (conftest.py)


# -- network2.py's algorithm, one example at a time (the oracle) ---------------------

def ref_sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def ref_sigmoid_prime(z):
    return ref_sigmoid(z) * (1 - ref_sigmoid(z))


def ref_vectorized_result(j, n=10):
    e = np.zeros((n, 1))
    e[j] = 1.0
    return e


class RefQuadraticCost:
    @staticmethod
    def fn(a, y):
        return 0.5 * np.linalg.norm(a - y) ** 2

    @staticmethod
    def delta(z, a, y):
        return (a - y) * ref_sigmoid_prime(z)


class RefCrossEntropyCost:
    @staticmethod
    def fn(a, y):
        return np.sum(np.nan_to_num(-y * np.log(a) - (1 - y) * np.log(1 - a)))

    @staticmethod
    def delta(z, a, y):
        return (a - y)


REF_COSTS = {"QuadraticCost": RefQuadraticCost, "CrossEntropyCost": RefCrossEntropyCost}


class BookNetwork2:
    """network2.py's Network (Nielsen's original, Python 3), minus printing."""

    def __init__(self, sizes, cost=RefCrossEntropyCost):
        self.num_layers = len(sizes)
        self.sizes = sizes
        self.default_weight_initializer()
        self.cost = cost

    def default_weight_initializer(self):
        self.biases = [np.random.randn(y, 1) for y in self.sizes[1:]]
        self.weights = [np.random.randn(y, x) / np.sqrt(x) for x, y in zip(self.sizes[:-1], self.sizes[1:])]

    def large_weight_initializer(self):
        self.biases = [np.random.randn(y, 1) for y in self.sizes[1:]]
        self.weights = [np.random.randn(y, x) for x, y in zip(self.sizes[:-1], self.sizes[1:])]

    def feedforward(self, a):
        for b, w in zip(self.biases, self.weights):
            a = ref_sigmoid(np.dot(w, a) + b)
        return a

    def SGD(self, training_data, epochs, mini_batch_size, eta, lmbda=0.0):
        n = len(training_data)
        for j in range(epochs):
            random.shuffle(training_data)
            mini_batches = [training_data[k:k + mini_batch_size] for k in range(0, n, mini_batch_size)]
            for mini_batch in mini_batches:
                self.update_mini_batch(mini_batch, eta, lmbda, len(training_data))

    def update_mini_batch(self, mini_batch, eta, lmbda, n):
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        for x, y in mini_batch:
            delta_nabla_b, delta_nabla_w = self.backprop(x, y)
            nabla_b = [nb + dnb for nb, dnb in zip(nabla_b, delta_nabla_b)]
            nabla_w = [nw + dnw for nw, dnw in zip(nabla_w, delta_nabla_w)]
        self.weights = [(1 - eta * (lmbda / n)) * w - (eta / len(mini_batch)) * nw
                        for w, nw in zip(self.weights, nabla_w)]
        self.biases = [b - (eta / len(mini_batch)) * nb for b, nb in zip(self.biases, nabla_b)]

    def backprop(self, x, y):
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        activation = x
        activations = [x]
        zs = []
        for b, w in zip(self.biases, self.weights):
            z = np.dot(w, activation) + b
            zs.append(z)
            activation = ref_sigmoid(z)
            activations.append(activation)
        delta = (self.cost).delta(zs[-1], activations[-1], y)
        nabla_b[-1] = delta
        nabla_w[-1] = np.dot(delta, activations[-2].transpose())
        for l in range(2, self.num_layers):
            z = zs[-l]
            delta = np.dot(self.weights[-l + 1].transpose(), delta) * ref_sigmoid_prime(z)
            nabla_b[-l] = delta
            nabla_w[-l] = np.dot(delta, activations[-l - 1].transpose())
        return (nabla_b, nabla_w)

    def accuracy(self, data, convert=False):
        if convert:
            results = [(np.argmax(self.feedforward(x)), np.argmax(y)) for (x, y) in data]
        else:
            results = [(np.argmax(self.feedforward(x)), y) for (x, y) in data]
        return sum(int(x == y) for (x, y) in results)

    def total_cost(self, data, lmbda, convert=False):
        # Nielsen's original: the L2 term is added once, after the loop
        cost = 0.0
        for x, y in data:
            a = self.feedforward(x)
            if convert:
                y = ref_vectorized_result(y, self.sizes[-1])
            cost += self.cost.fn(a, y) / len(data)
        cost += 0.5 * (lmbda / len(data)) * sum(np.linalg.norm(w) ** 2 for w in self.weights)
        return cost

    def save(self, filename):
        """Exactly the book's save."""
        data = {"sizes": self.sizes,
                "weights": [w.tolist() for w in self.weights],
                "biases": [b.tolist() for b in self.biases],
                "cost": str(self.cost.__name__).replace("Ref", "")}
        f = open(filename, "w")
        json.dump(data, f)
        f.close()


def book_load(filename):
    """The book's ``network2.load``, faithfully (cost looked up by name)."""
    f = open(filename, "r")
    data = json.load(f)
    f.close()
    cost = REF_COSTS[data["cost"]]
    net = BookNetwork2(data["sizes"], cost=cost)
    net.weights = [np.array(w) for w in data["weights"]]
    net.biases = [np.array(b) for b in data["biases"]]
    return net


def tiny_data(n=37, n_in=6, n_out=3, seed=0):
    rng = np.random.default_rng(seed)
    training, evaluation = [], []
    for _ in range(n):
        x = rng.random((n_in, 1))
        j = int(rng.integers(n_out))
        training.append((x, ref_vectorized_result(j, n_out)))
        evaluation.append((x, j))
    return training, evaluation


# -- the book's samples --------------------------------------------------------------

@needs_mnist
def test_chapter3_sample_prints_the_books_lines(capsys):
    training_data, validation_data, test_data = mnist_loader.load_data_wrapper()
    training_data = list(training_data)
    random.seed(1)
    np.random.seed(1)
    net = network2.Network([784, 30, 10], cost=network2.CrossEntropyCost)
    net.large_weight_initializer()
    result = net.SGD(training_data[:1000], 2, 10, 0.5, evaluation_data=test_data[:500],
                     monitor_evaluation_accuracy=True)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    assert lines[0] == "Epoch 0 training complete" and lines[2] == "Epoch 1 training complete"
    accuracies = [int(re.fullmatch(r"Accuracy on evaluation data: (\d+) / 500", lines[i]).group(1))
                  for i in (1, 3)]
    assert result == ([], accuracies, [], [])
    assert accuracies[-1] == net.accuracy(test_data[:500])
    assert accuracies[-1] > 250


@needs_mnist
def test_overfitting_run_network_sample_returns_four_lists(capsys):
    # overfitting.run_network, imports changed; 2 epochs instead of 400 and
    # 500 test images instead of 10,000
    random.seed(12345678)
    np.random.seed(12345678)
    training_data, validation_data, test_data = mnist_loader.load_data_wrapper()
    training_data = list(training_data)
    net = network2.Network([784, 30, 10], cost=network2.CrossEntropyCost())
    net.large_weight_initializer()
    test_cost, test_accuracy, training_cost, training_accuracy \
        = net.SGD(training_data[:1000], 2, 10, 0.5,
                  evaluation_data=test_data[:500], lmbda=0.1,
                  monitor_evaluation_cost=True,
                  monitor_evaluation_accuracy=True,
                  monitor_training_cost=True,
                  monitor_training_accuracy=True)
    for values in (test_cost, test_accuracy, training_cost, training_accuracy):
        assert len(values) == 2
    json.dumps([test_cost, test_accuracy, training_cost, training_accuracy])   # the script saves them
    lines = capsys.readouterr().out.splitlines()
    expected = []
    for j in range(2):
        expected += [f"Epoch {j} training complete",
                     f"Cost on training data: {training_cost[j]}",
                     f"Accuracy on training data: {training_accuracy[j]} / 1000",
                     f"Cost on evaluation data: {test_cost[j]}",
                     f"Accuracy on evaluation data: {test_accuracy[j]} / 500"]
    assert lines == expected
    assert all(isinstance(a, int) for a in test_accuracy + training_accuracy)
    assert training_cost[1] < training_cost[0]
    # the last values agree with the book's own total_cost / accuracy
    ref = BookNetwork2([784, 30, 10])
    ref.weights = [w.copy() for w in net.weights]
    ref.biases = [b.copy() for b in net.biases]
    assert test_cost[-1] == pytest.approx(ref.total_cost(test_data[:500], 0.1, convert=True), rel=1e-9)
    assert training_cost[-1] == pytest.approx(ref.total_cost(training_data[:1000], 0.1), rel=1e-9)
    assert training_accuracy[-1] == ref.accuracy(training_data[:1000], convert=True)
    assert test_accuracy[-1] == ref.accuracy(test_data[:500])


@needs_mnist
def test_chapter5_and_more_data_samples(book_data, capsys):
    training_data, validation_data, test_data = book_data
    # chapter 5: a deeper network
    net = network2.Network([784, 30, 30, 10])
    ec, ea, tc, ta = net.SGD(training_data[:500], 2, 10, 0.1, lmbda=5.0,
                             evaluation_data=validation_data[:300], monitor_evaluation_accuracy=True)
    assert (ec, tc, ta) == ([], [], []) and len(ea) == 2
    # more_data.run_networks: one net retrained on growing sets, accuracy in percent
    net = network2.Network([784, 30, 10], cost=network2.CrossEntropyCost())
    accuracies = []
    for size in (100, 200):
        net.large_weight_initializer()
        net.SGD(training_data[:size], 2, 10, 0.5, lmbda=size * 0.0001)
        accuracies.append(net.accuracy(validation_data) / 100.0)
    assert all(0 <= a <= 100 for a in accuracies)
    out = capsys.readouterr().out
    assert out.count("training complete") == 6


@needs_mnist
def test_generate_gradient_sample_uses_backprop(book_data):
    # generate_gradient.get_average_gradient: net.backprop over training data
    td = book_data[0][:50]
    np.random.seed(3)
    net = network2.Network([784, 30, 30, 10])
    np.random.seed(3)
    ref = BookNetwork2([784, 30, 30, 10])

    def average_gradient(n):
        nabla_b_results = [n.backprop(x, y)[0] for x, y in td]
        gradient = [sum(parts) for parts in zip(*nabla_b_results)]
        return [(np.reshape(g, len(g)) / len(td)).tolist() for g in gradient]

    for ours, theirs in zip(average_gradient(net), average_gradient(ref)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)
    net.SGD(td, 1, 1000, 0.1, lmbda=5.0)     # one mini-batch of all 50
    ref.SGD(list(td), 1, 1000, 0.1, lmbda=5.0)
    assert_same_params(net, ref)


# -- fidelity: seeded training equals the book's algorithm ----------------------------

@needs_mnist
@pytest.mark.parametrize("cost, ref_cost", [(network2.CrossEntropyCost, RefCrossEntropyCost),
                                            (network2.QuadraticCost, RefQuadraticCost)])
def test_seeded_sgd_with_l2_equals_the_books_algorithm(book_data, cost, ref_cost):
    training = book_data[0][:73]
    sizes = [784, 20, 10]
    np.random.seed(21)
    random.seed(21)
    net = network2.Network(sizes, cost=cost)
    ours = list(training)
    net.SGD(ours, 2, 10, 0.5, lmbda=5.0)
    np.random.seed(21)
    random.seed(21)
    ref = BookNetwork2(sizes, cost=ref_cost)
    theirs = list(training)
    ref.SGD(theirs, 2, 10, 0.5, lmbda=5.0)
    assert_same_params(net, ref)
    assert all(a is b for a, b in zip(ours, theirs))


def test_a_cost_of_ones_own_runs_on_the_numpy_path_and_equals_the_book():
    class MyCrossEntropy:       # a reader's cost: same maths, unknown to nndl
        @staticmethod
        def fn(a, y):
            return np.sum(np.nan_to_num(-y * np.log(a) - (1 - y) * np.log(1 - a)))

        @staticmethod
        def delta(z, a, y):
            return (a - y)

    training, evaluation = tiny_data(n=29)
    np.random.seed(6)
    random.seed(6)
    net = network2.Network([6, 5, 3], cost=MyCrossEntropy)
    assert net.engine.cost.name == "book:MyCrossEntropy"
    net.large_weight_initializer()
    net.SGD(list(training), 3, 4, 0.3, lmbda=2.0)
    np.random.seed(6)
    random.seed(6)
    ref = BookNetwork2([6, 5, 3], cost=RefCrossEntropyCost)
    ref.large_weight_initializer()
    ref.SGD(list(training), 3, 4, 0.3, lmbda=2.0)
    assert_same_params(net, ref)
    assert net.total_cost(training, 2.0) == pytest.approx(ref.total_cost(training, 2.0), rel=1e-10)


def test_update_mini_batch_backprop_total_cost_accuracy_match_the_book():
    training, evaluation = tiny_data(n=11)
    np.random.seed(9)
    net = network2.Network([6, 4, 3], cost=network2.QuadraticCost)
    np.random.seed(9)
    ref = BookNetwork2([6, 4, 3], cost=RefQuadraticCost)
    assert_same_params(net, ref, rtol=0, atol=0)
    for a, b in zip(sum(net.backprop(*training[0]), []), sum(ref.backprop(*training[0]), [])):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
    net.update_mini_batch(training[:5], 0.8, 3.0, 50)
    ref.update_mini_batch(training[:5], 0.8, 3.0, 50)
    assert_same_params(net, ref)
    assert net.total_cost(training, 3.0) == pytest.approx(ref.total_cost(training, 3.0), rel=1e-12)
    assert net.total_cost(evaluation, 3.0, convert=True) == \
        pytest.approx(ref.total_cost(evaluation, 3.0, convert=True), rel=1e-12)
    assert net.accuracy(evaluation) == ref.accuracy(evaluation)
    assert net.accuracy(training, convert=True) == ref.accuracy(training, convert=True)


def test_early_stopping_stops_after_n_epochs_without_improvement(capsys):
    training, evaluation = tiny_data(n=20)
    net = network2.Network([6, 4, 3])
    # a learning rate so small that the accuracy never changes: best after
    # epoch 0, then two epochs without improvement
    result = net.SGD(training, 10, 5, 1e-12, evaluation_data=evaluation,
                     monitor_evaluation_accuracy=True, early_stopping_n=2)
    assert len(result[1]) == 3
    assert capsys.readouterr().out.count("training complete") == 3


def test_cross_entropy_fn_is_quiet_on_saturated_outputs():
    a = np.array([[1.0], [0.0], [0.5]])
    y = np.array([[1.0], [0.0], [0.0]])
    with np.errstate(all="raise"):
        assert network2.CrossEntropyCost.fn(a, y) == pytest.approx(np.log(2))


# -- the book's JSON format ------------------------------------------------------------

def test_a_file_written_by_the_books_save_loads_and_classifies_identically(tmp_path):
    training, evaluation = tiny_data(n=30, n_in=8, n_out=4)
    np.random.seed(12)
    random.seed(12)
    ref = BookNetwork2([8, 5, 4])
    ref.SGD(list(training), 2, 5, 1.0, lmbda=1.0)
    path = tmp_path / "book.json"
    ref.save(path)
    net = network2.load(path)
    assert isinstance(net, network2.Network)
    assert net.sizes == [8, 5, 4] and net.cost is network2.CrossEntropyCost
    assert_same_params(net, ref, rtol=0, atol=0)
    xs = np.hstack([x for x, _ in evaluation])
    np.testing.assert_allclose(net.feedforward(xs), ref.feedforward(xs), rtol=1e-12)
    assert net.accuracy(evaluation) == ref.accuracy(evaluation)
    assert [np.argmax(net.feedforward(x)) for x, _ in evaluation] == \
        [np.argmax(ref.feedforward(x)) for x, _ in evaluation]


@pytest.mark.parametrize("cost", [network2.CrossEntropyCost, network2.QuadraticCost()])
def test_files_nndl_writes_load_in_the_books_load(tmp_path, cost):
    training, evaluation = tiny_data(n=30, n_in=8, n_out=4)
    net = network2.Network([8, 6, 4], cost=cost)
    net.SGD(training, 1, 5, 0.5)
    xs = np.hstack([x for x, _ in evaluation])
    for path, write in ((tmp_path / "net2.json", net.save),
                        (tmp_path / "engine.json", lambda p: nndl.save(net.engine, p, format="book"))):
        write(path)
        theirs = book_load(path)
        assert theirs.cost is REF_COSTS[type(cost).__name__ if not isinstance(cost, type) else cost.__name__]
        assert theirs.sizes == [8, 6, 4]
        assert_same_params(net, theirs, rtol=0, atol=0)
        np.testing.assert_allclose(theirs.feedforward(xs), net.feedforward(xs), rtol=1e-12)
        assert theirs.accuracy(evaluation) == net.accuracy(evaluation)


def test_load_reads_nndl_npz_models_that_fit_the_books_format(tmp_path):
    net = network2.Network([5, 4, 3], cost=network2.QuadraticCost)
    nndl.save(net.engine, tmp_path / "m.npz")
    back = network2.load(tmp_path / "m.npz")
    assert back.cost is network2.QuadraticCost
    assert_same_params(back, net, rtol=0, atol=0)


@pytest.mark.parametrize("content, pattern", [
    ("{not json", "not a JSON model file"),
    ("[1, 2]", "expected a JSON object"),
    ('{"sizes": [2, 1], "weights": [[[0, 0]]], "cost": "CrossEntropyCost"}', "lacks biases"),
    ('{"sizes": [2, 1], "weights": [[[0, 0]]], "biases": [[[0]]], "cost": "SquaredCost"}', "unknown cost 'SquaredCost'"),
    ('{"sizes": [2, 1], "weights": [[[0, 0, 0]]], "biases": [[[0]]], "cost": "CrossEntropyCost"}',
     r"weights\[0\] has shape \(1, 3\), but sizes \[2, 1\] need \(1, 2\)"),
    ('{"sizes": [2, 1], "weights": [[[0, 0]]], "biases": [[0]], "cost": "CrossEntropyCost"}',
     r"biases\[0\] has shape \(1,\), but sizes \[2, 1\] need \(1, 1\)"),
    ('{"sizes": [2, 1], "weights": [], "biases": [[[0]]], "cost": "CrossEntropyCost"}', "need 1 weights arrays, got 0"),
    ('{"sizes": [2, "x"], "weights": [[[0, 0]]], "biases": [[[0]]], "cost": "CrossEntropyCost"}',
     r"bad sizes: sizes\[1\] must be a positive integer"),
    ('{"sizes": [2, 1], "weights": [[["a", 0]]], "biases": [[[0]]], "cost": "CrossEntropyCost"}',
     r"weights\[0\] is not a numeric matrix"),
])
def test_malformed_model_files(tmp_path, content, pattern):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ModelFileError, match=pattern):
        network2.load(path)


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        network2.load(tmp_path / "nope.json")


# -- malformed input -------------------------------------------------------------------

def test_bad_arguments():
    training, evaluation = tiny_data(n=10)
    with pytest.raises(ConfigError, match="cost must be a cost class or object with fn"):
        network2.Network([6, 3], cost="cross-entropy")
    net = network2.Network([6, 4, 3])
    with pytest.raises(ConfigError, match="use convert=True"):
        net.accuracy(training)
    with pytest.raises(ConfigError, match="use convert=False"):
        net.total_cost(evaluation, 0.0)
    with pytest.raises(ConfigError, match="need evaluation_data"):
        net.SGD(training, 1, 5, 0.1, monitor_evaluation_accuracy=True)
    with pytest.raises(ConfigError, match="early stopping watches the accuracy"):
        net.SGD(training, 1, 5, 0.1, early_stopping_n=2)
    with pytest.raises(ConfigError, match="lambda must be >= 0"):
        net.SGD(training, 1, 5, 0.1, lmbda=-1.0)
    with pytest.raises(ConfigError, match=r"input 0 has shape \(7, 1\)"):
        net.SGD([(np.ones((7, 1)), training[0][1])], 1, 5, 0.1)
