"""nndl.book.network: the book's chapter 1 module on the engine.

* the book's code samples (chapter 1), imports changed, on MNIST subsets:
  what they print;
* a seeded run equals a per-example implementation of the book's algorithm
  (written again below, sharing no code with nndl): same initial draws from
  ``np.random``, same ``random.shuffle`` order, weights equal after a few
  mini-batches -- on the compiled-kernel path and on the NumPy path;
* ``weights``/``biases`` are live views in the book's shapes; ``backprop``,
  ``update_mini_batch``, ``evaluate``, ``feedforward`` as the book's;
* malformed input raises ConfigError naming what was wrong.

MNIST comes from ``$NNDL_DATA`` or ``../shared/data/mnist``; tests needing it
are skipped when it is absent.
"""

from __future__ import annotations

import random
import re

import numpy as np
import pytest

from nndl.book import mnist_loader, network
from nndl.errors import ConfigError

from helpers import assert_same_params, needs_mnist


pytestmark = pytest.mark.usefixtures("data_env")   # $NNDL_DATA: the test data (conftest.py)


# -- the oracle: the book's network.py, one example at a time (tests/reference.py) ------

from reference import BookNetwork as _BookOracle  # noqa: E402
from reference import sigmoid as ref_sigmoid, sigmoid_prime as ref_sigmoid_prime  # noqa: E402


def BookNetwork(sizes):
    """The book's ``Network(sizes)``: draws from the global ``np.random`` as network.py does."""
    return _BookOracle.from_sizes(sizes)


def tiny_data(n=37, n_in=6, n_out=3, seed=0, one_hot=True):
    rng = np.random.default_rng(seed)
    data = []
    for _ in range(n):
        x = rng.random((n_in, 1))
        if one_hot:
            y = np.zeros((n_out, 1))
            y[rng.integers(n_out)] = 1.0
        else:
            y = rng.random((n_out, 1))
        data.append((x, y))
    return data


# -- the book's samples --------------------------------------------------------------

@needs_mnist
def test_chapter1_sample_prints_the_books_epoch_lines(capsys):
    # From the chapter 1 sample, imports changed; 5,000 training images,
    # 3 epochs and 1,000 test images instead of 50,000 / 30 / 10,000.
    training_data, validation_data, test_data = mnist_loader.load_data_wrapper()
    training_data = list(training_data)
    np.random.seed(0)
    random.seed(0)
    net = network.Network([784, 30, 10])
    net.SGD(training_data[:5000], 3, 10, 3.0, test_data=test_data[:1000])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    counts = []
    for j, line in enumerate(lines):
        m = re.fullmatch(r"Epoch (\d+): (\d+) / 1000", line)
        assert m, line
        assert int(m.group(1)) == j
        counts.append(int(m.group(2)))
    # measured: 430, 668, 697 with these seeds
    assert counts[-1] >= 600
    assert counts[-1] == net.evaluate(test_data[:1000])
    # the book's zip-based samples call list() on the data: still works, and
    # the data can be used again (lists, not one-shot iterators)
    assert list(training_data)[0][1].shape == (10, 1)
    assert len(list(test_data)) == 10000 and len(list(test_data)) == 10000


@needs_mnist
def test_sgd_without_test_data_prints_epoch_complete(book_data, capsys):
    training_data = book_data[0][:300]
    net = network.Network([784, 10, 10])
    net.SGD(training_data, 2, 10, 3.0)
    assert capsys.readouterr().out == "Epoch 0 complete\nEpoch 1 complete\n"


@needs_mnist
def test_zero_hidden_neurons_sample_runs(book_data, capsys):
    # chapter 1 sample: Network([784, 0, 10]); every output is sigma(b)
    training_data, _, test_data = book_data
    net = network.Network([784, 0, 10])
    assert net.weights[0].shape == (0, 784) and net.weights[1].shape == (10, 0)
    net.SGD(training_data[:500], 2, 10, 3.0, test_data=test_data[:300])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["Epoch 0", "Epoch 1"]
    out = net.feedforward(test_data[0][0])
    np.testing.assert_allclose(out, network.sigmoid(net.biases[1]))


@needs_mnist
def test_two_layer_network_exercise(book_data, capsys):
    # chapter 1 exercise: no hidden layer, 784 inputs and 10 outputs
    training_data, _, test_data = book_data
    np.random.seed(1)
    random.seed(1)
    net = network.Network([784, 10])
    net.SGD(training_data[:2000], 2, 10, 3.0, test_data=test_data[:500])
    last = capsys.readouterr().out.splitlines()[-1]
    assert re.fullmatch(r"Epoch 1: \d+ / 500", last)
    assert net.evaluate(test_data[:500]) > 100   # measured 183: better than chance (about 50)


# -- fidelity: initialisation and seeded training ------------------------------------

def test_initialisation_draws_from_numpy_global_generator_like_the_book():
    np.random.seed(3)
    net = network.Network([5, 4, 3])
    np.random.seed(3)
    ref = BookNetwork([5, 4, 3])
    assert net.sizes == [5, 4, 3] and net.num_layers == 3
    for w, rw in zip(net.weights, ref.weights):
        np.testing.assert_array_equal(w, rw)
    for b, rb in zip(net.biases, ref.biases):
        np.testing.assert_array_equal(b, rb)
    assert all(w.dtype == np.float64 for w in net.weights)
    # and the global generator is left where the book's code leaves it
    np.random.seed(3)
    network.Network([5, 4, 3])
    after_nndl = np.random.rand()
    np.random.seed(3)
    BookNetwork([5, 4, 3])
    assert after_nndl == np.random.rand()


@needs_mnist
def test_seeded_sgd_equals_the_books_per_example_algorithm(book_data):
    # 95 examples: mini-batches of 10 with a last one of 5, as the book cuts them
    training = book_data[0][:95]
    sizes = [784, 16, 12, 10]
    np.random.seed(11)
    random.seed(11)
    net = network.Network(sizes)
    ours = list(training)
    net.SGD(ours, 2, 10, 3.0)
    state_after_nndl = random.getstate()

    np.random.seed(11)
    random.seed(11)
    ref = BookNetwork(sizes)
    theirs = list(training)
    ref.SGD(theirs, 2, 10, 3.0)

    assert_same_params(net, ref)
    # the caller's list is shuffled in place, exactly as the book's code does
    assert all(a is b for a, b in zip(ours, theirs))
    # and Python's generator is left in the same state
    assert random.getstate() == state_after_nndl


def test_seeded_sgd_equals_the_book_on_the_numpy_path():
    # non-one-hot targets cannot use the compiled kernel: NumPy path
    data = tiny_data(n=23, one_hot=False)
    np.random.seed(5)
    random.seed(5)
    net = network.Network([6, 4, 3])
    net.SGD(list(data), 3, 4, 0.7)
    np.random.seed(5)
    random.seed(5)
    ref = BookNetwork([6, 4, 3])
    ref.SGD(list(data), 3, 4, 0.7)
    assert_same_params(net, ref)


def test_a_subclass_overriding_cost_derivative_is_honoured():
    class Halved(network.Network):
        def cost_derivative(self, output_activations, y):
            return 0.5 * (output_activations - y)

    data = tiny_data(n=12)
    np.random.seed(2)
    random.seed(2)
    net = Halved([6, 5, 3])
    net.SGD(list(data), 1, 4, 1.0)
    np.random.seed(2)
    random.seed(2)
    ref = BookNetwork([6, 5, 3])
    ref.SGD(list(data), 1, 4, 0.5)   # halving the derivative halves every step
    assert_same_params(net, ref)


def test_a_subclass_overriding_update_mini_batch_gets_the_books_mini_batches():
    seen = []

    class Recording(network.Network):
        def update_mini_batch(self, mini_batch, eta):
            seen.append([id(x) for x, _ in mini_batch])
            super().update_mini_batch(mini_batch, eta)

    data = tiny_data(n=25)
    np.random.seed(4)
    random.seed(4)
    net = Recording([6, 5, 3])
    net.SGD(list(data), 2, 10, 2.0)
    np.random.seed(4)
    random.seed(4)
    ref = BookNetwork([6, 5, 3])
    book_list = list(data)
    book_batches = []
    for _ in range(2):
        random.shuffle(book_list)
        for k in range(0, 25, 10):
            book_batches.append([id(x) for x, _ in book_list[k:k + 10]])
            ref.update_mini_batch(book_list[k:k + 10], 2.0)
    assert seen == book_batches
    assert_same_params(net, ref)


def test_backprop_and_update_mini_batch_match_the_book():
    data = tiny_data(n=7)
    np.random.seed(8)
    net = network.Network([6, 5, 4, 3])
    np.random.seed(8)
    ref = BookNetwork([6, 5, 4, 3])
    x, y = data[0]
    nabla_b, nabla_w = net.backprop(x, y)
    ref_b, ref_w = ref.backprop(x, y)
    for a, b in zip(nabla_b + nabla_w, ref_b + ref_w):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
    net.update_mini_batch(data, 0.9)
    ref.update_mini_batch(data, 0.9)
    assert_same_params(net, ref)
    np.testing.assert_allclose(net.feedforward(x), ref.feedforward(x), rtol=1e-12)
    assert net.evaluate([(x, int(np.argmax(y))) for x, y in data]) == \
        ref.evaluate([(x, int(np.argmax(y))) for x, y in data])


# -- parameters in the book's shapes --------------------------------------------------

def test_weights_and_biases_are_live_views_in_the_books_shapes():
    net = network.Network([4, 3, 2])
    assert [w.shape for w in net.weights] == [(3, 4), (2, 3)]
    assert [b.shape for b in net.biases] == [(3, 1), (2, 1)]
    x = np.ones((4, 1))
    before = net.feedforward(x).copy()
    net.weights[1][0, 0] += 1.0           # in place: reaches the engine
    assert not np.allclose(net.feedforward(x), before)
    net.biases[0] = np.zeros((3, 1))      # element assignment copies in
    np.testing.assert_array_equal(net.engine.layers[0].params["b"], 0)
    net.weights = [np.zeros((3, 4)), np.zeros((2, 3))]
    net.biases = [np.zeros((3, 1)), np.zeros(2)]
    np.testing.assert_allclose(net.feedforward(x), np.full((2, 1), 0.5))
    # the engine's parameters are what the views show
    assert np.shares_memory(net.weights[0], net.engine.layers[0].params["w"])
    assert np.shares_memory(net.biases[1], net.engine.layers[1].params["b"])


def test_feedforward_shapes():
    net = network.Network([4, 3, 2])
    assert net.feedforward(np.ones((4, 1))).shape == (2, 1)
    assert net.feedforward(np.ones(4)).shape == (2, 1)
    cols = np.random.rand(4, 5)
    out = net.feedforward(cols)
    assert out.shape == (2, 5)
    np.testing.assert_allclose(out[:, [2]], net.feedforward(cols[:, [2]]))


def test_sigmoid_functions():
    assert network.sigmoid(0.0) == 0.5
    assert isinstance(network.sigmoid(0.0), np.floating)
    np.testing.assert_allclose(network.sigmoid(np.array([1, 2])), ref_sigmoid(np.array([1.0, 2.0])))
    with np.errstate(all="raise"):
        assert network.sigmoid(np.array([-1000.0]))[0] == 0.0
    z = np.linspace(-5, 5, 11)
    np.testing.assert_allclose(network.sigmoid_prime(z), ref_sigmoid_prime(z))


# -- malformed input -------------------------------------------------------------------

@pytest.mark.parametrize("sizes, pattern", [
    ([784], "at least an input and an output"),
    ([784, -1, 10], r"sizes\[1\] \(hidden layer\) must be >= 0"),
    ([784, 30, 0], r"sizes\[2\] \(output layer\) must be >= 1"),
    ([784, 30.5, 10], r"sizes\[1\] must be an integer"),
    (7, "must be a list of layer sizes"),
])
def test_bad_sizes(sizes, pattern):
    with pytest.raises(ConfigError, match=pattern):
        network.Network(sizes)


def test_bad_training_data():
    net = network.Network([6, 4, 3])
    good = tiny_data(n=5)
    with pytest.raises(ConfigError, match=r"input 2 has shape \(5, 1\).*expects \(6, 1\)"):
        net.SGD(good[:2] + [(np.ones((5, 1)), good[0][1])] + good[3:], 1, 2, 1.0)
    with pytest.raises(ConfigError, match=r"y of item 0 has shape \(\).*use convert=False"):
        net.SGD([(x, 1) for x, _ in good], 1, 2, 1.0)
    with pytest.raises(ConfigError, match=r"item 1 is a tuple of length 3"):
        net.SGD([good[0], good[1] + (0,)], 1, 2, 1.0)
    with pytest.raises(ConfigError, match="training_data is empty"):
        net.SGD([], 1, 2, 1.0)
    with pytest.raises(ConfigError, match="mini_batch_size must be a positive integer"):
        net.SGD(good, 1, 0, 1.0)
    with pytest.raises(ConfigError, match="eta must be a positive number"):
        net.SGD(good, 1, 2, -1.0)
    with pytest.raises(ConfigError, match=r"y must be an integer digit, but item 0 has y of shape \(3, 1\)"):
        net.evaluate(good)
    with pytest.raises(ConfigError, match=r"feedforward expects an input column of shape \(6, 1\)"):
        net.feedforward(np.ones((7, 1)))
    with pytest.raises(ConfigError, match=r"weights\[1\]: expected shape \(3, 4\)"):
        net.weights = [np.zeros((4, 6)), np.zeros((4, 3))]
    with pytest.raises(ConfigError, match="expected 2 arrays"):
        net.biases = [np.zeros((4, 1))]
    with pytest.raises(ConfigError, match=r"out of range for 3 output neurons"):
        net.backprop(good[0][0], 7)
