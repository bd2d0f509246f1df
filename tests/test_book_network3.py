"""nndl.book.network3: the book's chapter 6 module without Theano.

* the book's chapter 6 samples, imports changed, on MNIST subsets: what
  they print (and the kept results);
* a training epoch of a fully connected network equals network3's update
  written out in NumPy (mean log-likelihood gradient, L2 over the number of
  mini-batches, no shuffling), on the compiled-kernel and NumPy paths;
* the book's initialisation (and ``fix_init``), the shared dropout seed (and
  ``fix_dropout_seed``), ``fix_l2``;
* mismatched layers, image shapes and mini-batch sizes raise ConfigError
  saying what was wrong.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from nndl.book import network3
from nndl.book.network3 import ConvPoolLayer, FullyConnectedLayer, Network, ReLU, SoftmaxLayer
from nndl.errors import ConfigError
from nndl.layers.dropout import Dropout
from nndl.kernels import dense as dense_kernel

from helpers import HAVE_MNIST, MNIST_DIR, needs_mnist


pytestmark = pytest.mark.usefixtures("data_env")   # $NNDL_DATA: the test data (conftest.py)


@pytest.fixture(scope="module")
def shared():
    if not HAVE_MNIST:
        pytest.skip(f"MNIST not in {MNIST_DIR}")
    return network3.load_data_shared(data_dir=MNIST_DIR)


def first(data, n):
    return (data[0][:n], data[1][:n])


def parse_run(out: str):
    """Check network3's printed lines; return (validation %, test % or None) per epoch."""
    lines = out.splitlines()
    epochs = []
    i = 0
    while i < len(lines) and lines[i].startswith("Training mini-batch number"):
        i += 1
    while i < len(lines) and lines[i].startswith("Epoch"):
        m = re.fullmatch(r"Epoch (\d+): validation accuracy (\d+\.\d\d)%", lines[i])
        assert m, lines[i]
        assert int(m.group(1)) == len(epochs)
        i += 1
        test = None
        if i < len(lines) and lines[i] == "This is the best validation accuracy to date.":
            i += 1
            if i < len(lines) and lines[i].startswith("The corresponding"):
                test = re.fullmatch(r"The corresponding test accuracy is (\d+\.\d\d)%", lines[i]).group(1)
                i += 1
        epochs.append((float(m.group(2)), test and float(test)))
        while i < len(lines) and lines[i].startswith("Training mini-batch number"):
            i += 1
    assert lines[i] == "Finished training network."
    assert re.fullmatch(r"Best validation accuracy of \d+\.\d\d% obtained at iteration \d+", lines[i + 1])
    return epochs, lines[i + 1:]


# -- the book's samples --------------------------------------------------------------

@needs_mnist
def test_fully_connected_sample(shared, capsys):
    training_data, validation_data, test_data = shared
    mini_batch_size = 10
    np.random.seed(0)
    net = Network([FullyConnectedLayer(n_in=784, n_out=100), SoftmaxLayer(n_in=100, n_out=10)], mini_batch_size)
    net.SGD(first(training_data, 1000), 3, mini_batch_size, 0.1, first(validation_data, 300),
            first(test_data, 300))
    out = capsys.readouterr().out
    assert out.startswith("Training mini-batch number 0\nEpoch 0: validation accuracy ")
    epochs, tail = parse_run(out)
    assert len(epochs) == 3
    best = max(v for v, _ in epochs)
    assert tail[0] == f"Best validation accuracy of {best:.2f}% obtained at iteration {net.best_iteration}"
    assert tail[1] == f"Corresponding test accuracy of {net.test_accuracy:.2%}"
    assert net.best_iteration in (99, 199, 299)
    assert net.best_validation_accuracy > 0.65          # measured 72.33% (seed 0, 3 epochs of 1,000)


@needs_mnist
def test_convolutional_samples(shared, capsys):
    training_data, validation_data, test_data = shared
    mini_batch_size = 10
    np.random.seed(1)
    net = Network([ConvPoolLayer(image_shape=(mini_batch_size, 1, 28, 28),
                                 filter_shape=(20, 1, 5, 5),
                                 poolsize=(2, 2)),
                   FullyConnectedLayer(n_in=20*12*12, n_out=100),
                   SoftmaxLayer(n_in=100, n_out=10)], mini_batch_size)
    net.SGD(first(training_data, 300), 1, mini_batch_size, 0.1, first(validation_data, 100), first(test_data, 100))
    epochs, _ = parse_run(capsys.readouterr().out)
    assert len(epochs) == 1 and epochs[0][1] is not None
    # two conv-pool layers, ReLU, dropout, L2 (the last chapter 6 samples)
    net = Network([ConvPoolLayer(image_shape=(mini_batch_size, 1, 28, 28),
                                 filter_shape=(20, 1, 5, 5), poolsize=(2, 2), activation_fn=ReLU),
                   ConvPoolLayer(image_shape=(mini_batch_size, 20, 12, 12), filter_shape=(40, 20, 5, 5),
                                 poolsize=(2, 2), activation_fn=ReLU),
                   FullyConnectedLayer(n_in=40*4*4, n_out=100, activation_fn=ReLU, p_dropout=0.5),
                   FullyConnectedLayer(n_in=100, n_out=100, activation_fn=ReLU, p_dropout=0.5),
                   SoftmaxLayer(n_in=100, n_out=10, p_dropout=0.5)], mini_batch_size)
    net.SGD(first(training_data, 200), 2, mini_batch_size, 0.03, first(validation_data, 50),
            first(test_data, 50), lmbda=0.1)
    epochs, _ = parse_run(capsys.readouterr().out)
    assert len(epochs) == 2
    assert [p.shape for p in net.params] == [(20, 1, 5, 5), (20,), (40, 20, 5, 5), (40,), (640, 100), (100,),
                                             (100, 100), (100,), (100, 10), (10,)]


@needs_mnist
def test_progress_line_every_1000_mini_batches(shared, capsys):
    training_data, validation_data, test_data = shared
    net = Network([FullyConnectedLayer(n_in=784, n_out=10), SoftmaxLayer(n_in=10, n_out=10)], 1)
    net.SGD(first(training_data, 1500), 2, 1, 0.1, first(validation_data, 20), first(test_data, 20))
    progress = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Training")]
    assert progress == [f"Training mini-batch number {i}" for i in (0, 1000, 2000)]


# -- network3's update, written out ---------------------------------------------------

def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def sig(z):
    return 1 / (1 + np.exp(-z))


def network3_epoch(w1, b1, w2, b2, x, y, m, eta, lmbda, decay_over):
    """One epoch of network3's SGD for FullyConnected(sigmoid) + Softmax;
    w in network3's (n_in, n_out) shape. No shuffle, whole mini-batches."""
    nb = len(x) // m
    for j in range(nb):
        xb, yb = x[j * m:(j + 1) * m], y[j * m:(j + 1) * m]
        a1 = sig(xb @ w1 + b1)
        p = softmax(a1 @ w2 + b2)
        d2 = p.copy()
        d2[np.arange(m), yb] -= 1            # d(mean -log p_y)/dz, times m
        d1 = (d2 @ w2.T) * a1 * (1 - a1)
        gw2 = a1.T @ d2 / m + lmbda / decay_over(nb) * w2
        gw1 = xb.T @ d1 / m + lmbda / decay_over(nb) * w1
        w2, b2 = w2 - eta * gw2, b2 - eta * d2.mean(axis=0)
        w1, b1 = w1 - eta * gw1, b1 - eta * d1.mean(axis=0)
    return w1, b1, w2, b2


@pytest.mark.parametrize("kernel", [True, False])
@pytest.mark.parametrize("fix_l2", [False, True])
def test_an_epoch_equals_network3s_update(monkeypatch, capsys, kernel, fix_l2):
    if not kernel:
        monkeypatch.setattr(dense_kernel, "supports", lambda *a: False)
    rng = np.random.default_rng(0)
    x = rng.random((35, 12))      # 3 whole mini-batches of 10; the last 5 are dropped
    y = rng.integers(0, 4, 35)
    np.random.seed(4)
    net = Network([FullyConnectedLayer(12, 6), SoftmaxLayer(6, 4)], 10, dtype="float64", fix_l2=fix_l2)
    w1, b1 = net.layers[0].w.copy(), net.layers[0].b.copy()
    w2, b2 = net.layers[1].w.copy(), net.layers[1].b.copy()
    net.SGD((x, y), 2, 10, 0.5, (x[:10], y[:10]), (x[:10], y[:10]), lmbda=3.0)
    decay_over = (lambda nb: 30) if fix_l2 else (lambda nb: nb)
    for _ in range(2):
        w1, b1, w2, b2 = network3_epoch(w1, b1, w2, b2, x, y, 10, 0.5, 3.0, decay_over)
    for ours, theirs in zip(net.params, (w1, b1, w2, b2)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)


# -- initialisation and dropout --------------------------------------------------------

def test_layers_draw_their_parameters_like_network3():
    np.random.seed(7)
    conv = ConvPoolLayer(filter_shape=(4, 1, 5, 5), image_shape=(10, 1, 28, 28), poolsize=(2, 2))
    fc = FullyConnectedLayer(n_in=4 * 12 * 12, n_out=30)
    sm = SoftmaxLayer(n_in=30, n_out=10)
    np.random.seed(7)
    cw = np.random.normal(loc=0, scale=np.sqrt(1.0 / (4 * 25 / 4)), size=(4, 1, 5, 5))
    cb = np.random.normal(loc=0, scale=1.0, size=(4,))
    fw = np.random.normal(loc=0.0, scale=np.sqrt(1.0 / 30), size=(576, 30))   # the book's 1/n_out
    fb = np.random.normal(loc=0.0, scale=1.0, size=(30,))
    for ours, theirs in zip(conv.params + fc.params, (cw, cb, fw, fb)):
        np.testing.assert_array_equal(ours, theirs)
    assert not sm.w.any() and not sm.b.any()
    np.random.seed(7)
    fixed = FullyConnectedLayer(n_in=576, n_out=30, fix_init=True)
    np.random.seed(7)
    np.testing.assert_array_equal(fixed.w, np.random.normal(0.0, np.sqrt(1.0 / 576), size=(576, 30)))
    # once in a network, w and b are live views of the engine's parameters
    net = Network([conv, fc, sm], 10)
    np.testing.assert_allclose(fc.w, fw.astype(np.float32))
    assert fc.w.shape == (576, 30)
    fc.w[0, 0] = 5.0
    assert net.engine.layers[3].params["w"][0, 0] == 5.0   # Reshape, ConvPool, Flatten, Dense


def test_dropout_layers_share_a_seed_unless_fixed():
    def masks(**kw):
        net = Network([FullyConnectedLayer(50, 50, p_dropout=0.5), FullyConnectedLayer(50, 50, p_dropout=0.5),
                       SoftmaxLayer(50, 10, p_dropout=0.5)], 10, **kw)
        drops = [layer for layer in net.engine.layers if isinstance(layer, Dropout)]
        assert len(drops) == 3 and all(d.scale == "book" for d in drops)
        return [d.rng.random(20) for d in drops]

    shared = masks()
    assert all(np.array_equal(shared[0], m) for m in shared[1:])
    independent = masks(fix_dropout_seed=True)
    assert not np.array_equal(independent[0], independent[1])


def test_activation_functions_and_module_flags():
    z = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_array_equal(network3.ReLU(z), [0.0, 0.0, 3.0])
    np.testing.assert_array_equal(network3.linear(z), z)
    np.testing.assert_allclose(network3.sigmoid(z), 1 / (1 + np.exp(-z)))
    np.testing.assert_allclose(network3.tanh(z), np.tanh(z))
    assert network3.GPU is False
    assert network3.size((np.zeros((7, 3)), np.zeros(7))) == 7


# -- malformed input ---------------------------------------------------------------------

@pytest.mark.parametrize("make, pattern", [
    (lambda: Network([ConvPoolLayer((20, 1, 5, 5), (32, 1, 28, 28)), FullyConnectedLayer(2880, 10),
                      SoftmaxLayer(10, 10)], 10),
     r"image_shape \(32, 1, 28, 28\) starts with mini-batch size 32, but the network's mini_batch_size is 10"),
    (lambda: ConvPoolLayer((20, 3, 5, 5), (10, 1, 28, 28)), "has 3 input feature maps but image_shape"),
    (lambda: ConvPoolLayer((20, 1, 5, 4), (10, 1, 28, 28)), "only square filters"),
    (lambda: ConvPoolLayer((20, 1, 5, 5), (10, 1, 27, 27)), "not divisible by poolsize"),
    (lambda: ConvPoolLayer((20, 1, 5, 5), (10, 1, 28)), "image_shape .* must be a tuple of 4"),
    (lambda: Network([ConvPoolLayer((20, 1, 5, 5), (10, 1, 28, 28)), FullyConnectedLayer(100, 10),
                      SoftmaxLayer(10, 10)], 10),
     r"layer 1 \(FullyConnectedLayer\): n_in is 100, but layer 0 gives 2880 outputs \(20x12x12\)"),
    (lambda: Network([FullyConnectedLayer(784, 100), ConvPoolLayer((20, 1, 5, 5), (10, 1, 28, 28)),
                      SoftmaxLayer(2880, 10)], 10), "needs 784 inputs per image, but layer 0 gives 100 outputs"),
    (lambda: Network([FullyConnectedLayer(784, 10)], 10), "the last layer must be a SoftmaxLayer"),
    (lambda: Network([SoftmaxLayer(784, 10), SoftmaxLayer(10, 10)], 10), "only the last layer may be one"),
    (lambda: FullyConnectedLayer(784, 10, activation_fn=lambda z: z), "activation_fn must be one of"),
    (lambda: FullyConnectedLayer(784, 10, p_dropout=1.0), r"p_dropout must be a probability in \[0, 1\)"),
    (lambda: Network([SoftmaxLayer(784, 10)], 0), "mini_batch_size must be a positive integer"),
])
def test_bad_networks(make, pattern):
    with pytest.raises(ConfigError, match=pattern):
        make()


def test_bad_sgd_calls():
    net = Network([FullyConnectedLayer(12, 6), SoftmaxLayer(6, 4)], 10)
    x, y = np.zeros((30, 12)), np.zeros(30, dtype=int)
    with pytest.raises(ConfigError, match="mini_batch_size is 5, but the network was built for mini-batches of 10"):
        net.SGD((x, y), 1, 5, 0.1, (x, y), (x, y))
    with pytest.raises(ConfigError, match=r"training_data: x must have shape \(n, 12\) for this network"):
        net.SGD((np.zeros((30, 13)), y), 1, 10, 0.1, (x, y), (x, y))
    with pytest.raises(ConfigError, match=r"validation_data has 5 examples, fewer than one mini-batch of 10"):
        net.SGD((x, y), 1, 10, 0.1, (x[:5], y[:5]), (x, y))
    with pytest.raises(ConfigError, match=r"digits must be in 0..3"):
        net.SGD((x, y + 4), 1, 10, 0.1, (x, y), (x, y))
    with pytest.raises(ConfigError, match="must be a pair"):
        net.SGD(x, 1, 10, 0.1, (x, y), (x, y))
