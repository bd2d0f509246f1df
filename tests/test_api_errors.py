"""The public API answers misuse with nndl's own exceptions and a message
saying what was wrong: wrong types, shapes, empty arrays, bools as ints,
negative numbers, NaN and infinity in the data."""

from __future__ import annotations

import numpy as np
import pytest

import nndl
from nndl import L1, L2, SGD, ConfigError, DataError, Dense, ModelFileError, NNDLError, Network, cli, costs
from nndl.architecture import parse_layers
from nndl.book import mnist_average_darkness, mnist_loader, mnist_svm
from nndl.data import Dataset, MnistSplits, augment, fetch, load_mnist, read_idx, save_book_pickle
from nndl.ensemble import ensemble_accuracy, vote
from nndl.layers import from_config
from helpers import needs_mnist, MNIST_DIR


def _net():
    return Network.from_sizes([4, 3, 2], rng=0)


X = np.random.default_rng(0).random((5, 4))
Y = np.array([0, 1, 0, 1, 1])
DS = Dataset(np.zeros((2, 3)), np.zeros(2, int))

MISUSES = {
    # building networks
    "sizes None": (lambda: Network.from_sizes(None), ConfigError, "sizes must be at least two positive integers, got [None]"),
    "sizes an int": (lambda: Network.from_sizes(784), ConfigError, "sizes must be at least two positive integers, got [784]"),
    "sizes with a bool": (lambda: Network.from_sizes([784, True, 10]), ConfigError, "sizes must be at least two"),
    "layers None": (lambda: Network(None), ConfigError, "a network needs at least one layer"),
    "layers of numbers": (lambda: Network([Dense(3), 2]), ConfigError, "layer 1 is not a layer (nndl.layers.Layer) but 2"),
    "negative seed": (lambda: Network([Dense(2)], rng=-1), ConfigError, "integer seed >= 0, got -1"),
    "dtype an int": (lambda: Network([Dense(2)], dtype=3), ConfigError, "dtype must be float32 or float64, got 3"),
    "input_shape 0": (lambda: Network([Dense(2)], input_shape=0), ConfigError, "input_shape must be one or more positive integers, got 0"),
    "input_shape a string": (lambda: Network([Dense(2)], input_shape="28x28"), ConfigError, "input_shape must be"),
    "layer type a list": (lambda: from_config({"type": ["Dense"]}), ConfigError, "unknown layer description"),
    "spec None": (lambda: parse_layers(None), ConfigError, "a layer spec is a string"),
    "spec a number": (lambda: parse_layers(100), ConfigError, "a layer spec is a string"),
    # using networks
    "ragged input": (lambda: _net().forward([[1, 2], [3]]), DataError, "x is not an array of numbers"),
    "string input": (lambda: _net().forward(np.array([["a"] * 4])), DataError, "x must hold real numbers, got an array of dtype <U1"),
    "object input": (lambda: _net().feedforward(np.array([[None] * 4])), DataError, "dtype object"),
    "complex input": (lambda: _net().predict(np.zeros((2, 4), complex)), DataError, "dtype complex128"),
    "one example without batch axis": (lambda: _net().predict(np.zeros(4)), ConfigError, "input has per-example shape ()"),
    "float labels": (lambda: _net().accuracy(X, Y + 0.5), ConfigError, "y must hold integer class labels 0..1, got dtype float64 (convert with .astype(int))"),
    "bool labels": (lambda: _net().accuracy(X, Y.astype(bool)), ConfigError, "got dtype bool"),
    "labels of another length": (lambda: _net().accuracy(X, Y[:3]), ConfigError, "y must have shape (5,), one label per input, got (3,)"),
    "labels as a column": (lambda: _net().total_cost(X, Y[:, None]), ConfigError, "got (5, 1)"),
    "negative labels": (lambda: _net().total_cost(X, -Y), ConfigError, "y must be integers in 0..1 for 2 output neurons, got -1..0"),
    "labels out of range": (lambda: _net().total_cost(X, Y + 5), ConfigError, "got 5..6"),
    "regularizers not a list": (lambda: _net().total_cost(X, Y, regularizers=L2(1.0)), ConfigError, "regularizers must be a list"),
    "backward before forward": (lambda: _net().backward(Y), ConfigError, "call forward(x, train=True) before backward(y)"),
    "backward with other labels": (lambda: (lambda n: (n.forward(X), n.backward(Y[:2])))(_net()), ConfigError, "one label per input"),
    "feedforward batch 0": (lambda: _net().feedforward(X, batch_size=0), ConfigError, "batch_size must be a positive integer, got 0"),
    "feedforward batch a string": (lambda: _net().feedforward(X, batch_size="10"), ConfigError, "got '10'"),
    "set_params not a list": (lambda: _net().set_params(5), ConfigError, "params must be a list of one dict per layer"),
    "set_params of ints": (lambda: _net().set_params([1, 2]), ConfigError, "params must be a list of one dict per layer"),
    # penalties and costs
    "L2 of a string": (lambda: L2("5.0"), ConfigError, "lambda must be a number >= 0, got '5.0'"),
    "L1 of None": (lambda: L1(None), ConfigError, "L1 regularisation parameter lambda must be a number >= 0, got None"),
    "L2 of a bool": (lambda: L2(True), ConfigError, "got True"),
    "one_hot of floats": (lambda: costs.one_hot(np.array([1.5]), 3), ConfigError, "labels must be a 1-D array of integers"),
    "one_hot n a string": (lambda: costs.one_hot(np.array([1]), "10"), ConfigError, "the number of classes must be a positive integer"),
    # files
    "save of a non-network": (lambda: nndl.save(5, "x.npz"), ConfigError, "save: expected an nndl Network, got int"),
    "save to None": (lambda: nndl.save(_net(), None), ConfigError, "save: path must be a file path, got None"),
    "load of None": (lambda: nndl.load(None), ConfigError, "load: path must be a file path, got None"),
    "load of an int": (lambda: nndl.load(3), ConfigError, "load: path must be a file path, got 3"),
    "read_idx of None": (lambda: read_idx(None), ConfigError, "read_idx: path must be a file path"),
    "save_book_pickle of an int": (lambda: save_book_pickle(5, "p.pkl.gz"), ConfigError, "needs three Datasets"),
    "data_dir an int": (lambda: load_mnist(5), DataError, "data_dir must be a folder path, got 5"),
    "mirrors a string": (lambda: fetch(".", mirrors="http://x/"), DataError, "mirrors must be a list of base URLs"),
    # data sets
    "Dataset of ragged lists": (lambda: Dataset([[1.0], [1.0, 2.0]], [0, 1]), ConfigError, "Dataset needs arrays"),
    "Dataset index out of range": (lambda: DS[5], ConfigError, "Dataset index 5 is out of range for 2 examples"),
    "Dataset index a float": (lambda: DS[1.5], ConfigError, "cannot index a Dataset with 1.5"),
    "shifts an int": (lambda: augment.shift_images(np.zeros((2, 28, 28)), 5), ConfigError, "shifts must be a list of"),
    "expanded set of a non-Dataset": (lambda: augment.expanded_training_set((np.zeros((2, 784)), [0, 1])), ConfigError, "needs a Dataset, got tuple"),
    "from_bytes of floats": (lambda: augment.from_bytes(np.zeros((2, 784))), ConfigError, "expects uint8 pixels"),
    "from_bytes to ints": (lambda: augment.from_bytes(np.zeros((2, 784), np.uint8), int), ConfigError, "dtype must be a float type"),
    # ensembles
    "vote of None": (lambda: vote(None, X), ConfigError, "vote needs a list of at least one network, got None"),
    "vote of a non-network": (lambda: vote([5], X), ConfigError, "network 0 has no feedforward(x) method: got int"),
    "vote batch 0": (lambda: vote([_net()], X, batch_size=0), ConfigError, "batch_size must be a positive integer"),
    "ensemble labels as strings": (lambda: ensemble_accuracy([_net()], X, np.array(list("abcde"))), ConfigError, "integer class numbers"),
    # the book's baselines and loader
    "svm with one digit": (lambda: mnist_svm.svm_correct((np.zeros((1, 784)), np.array([3])), (np.zeros((2, 784)), np.array([1, 2]))),
                           ConfigError, "an SVM needs training images of at least two different digits; the 1 training image(s) given are all 3s"),
    "svm with no images": (lambda: mnist_svm.svm_correct((np.zeros((0, 784)), np.zeros(0, int)), (np.zeros((2, 784)), np.array([1, 2]))),
                           ConfigError, "the training set is empty"),
    "darkness with no images": (lambda: mnist_average_darkness.count_correct((np.zeros((0, 784)), np.zeros(0, int)), (np.zeros((1, 784)), np.array([1]))),
                                ConfigError, "training_data is empty"),
    "vectorized_result of 12": (lambda: mnist_loader.vectorized_result(12), ConfigError, "j must be a digit 0..9, got 12"),
}


@pytest.mark.parametrize("case", list(MISUSES))
def test_misuse_raises_nndls_own_error(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                       # nothing may be written, and nothing is
    call, kind, fragment = MISUSES[case]
    with pytest.raises(kind) as e:
        call()
    assert isinstance(e.value, NNDLError)
    assert fragment in str(e.value), str(e.value)
    assert list(tmp_path.iterdir()) == []


# -- NaN and infinity -----------------------------------------------------------------------

def _with(value, index=(3, 2), shape=(5, 4)):
    x = np.random.default_rng(1).random(shape)
    x[index] = value
    return x


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_training_data_with_nan_or_inf_is_refused(value):
    net = _net()
    before = net.get_params()
    with pytest.raises(DataError, match=rf"^the training inputs x holds non-finite values \({value} at index \(3, 2\)\); "
                                        "remove or fix those examples$"):
        nndl.train(net, SGD(0.1), _with(value), Y, epochs=1, batch_size=2, rng=0)
    assert all(np.array_equal(a[k], b[k]) for a, b in zip(before, net.get_params()) for k in a)


def test_a_value_that_overflows_the_networks_dtype_is_refused():
    # 1e300 is a finite float64, but the float32 network would see inf
    with pytest.raises(DataError, match=r"x holds non-finite values \(inf at index \(0, 1\)\)"):
        _net().accuracy(_with(1e300, (0, 1)), Y)



def test_finite_values_whose_sum_overflows_are_accepted_and_a_late_nan_is_found():
    # the check sums each chunk first: a sum that overflows must not be taken for a bad value
    from nndl.checks import check_finite

    x = np.full((20_000, 3), 3e38, dtype=np.float32)
    with np.errstate(all="raise"):
        check_finite(x, "x")
        x[19_999, 2] = -np.inf
        x[12_345, 1] = np.nan   # the first bad one, in the second chunk
        with pytest.raises(DataError, match=r"x holds non-finite values \(nan at index \(12345, 1\)\)"):
            check_finite(x, "x")

@pytest.mark.parametrize("method", ["accuracy", "total_cost", "predict", "feedforward"])
def test_evaluation_data_with_nan_is_refused(method):
    net = _net()
    args = (_with(np.nan, (4, 0)), Y)[: 1 if method in ("predict", "feedforward") else 2]
    with pytest.raises(DataError, match=r"x holds non-finite values \(nan at index \(4, 0\)\)"):
        getattr(net, method)(*args)


def test_a_nan_data_set_is_refused_when_made_and_when_evaluated():
    with pytest.raises(DataError, match=r"^Dataset.x holds non-finite values \(nan at index \(2, 3\)\)"):
        Dataset(_with(np.nan, (2, 3)), Y)
    # any object with x and y reaches the network's evaluation, which checks too
    from types import SimpleNamespace
    bad = SimpleNamespace(x=_with(np.inf, (1, 1)), y=Y)
    with pytest.raises(DataError, match=r"x holds non-finite values \(inf at index \(1, 1\)\)"):
        nndl.train(_net(), SGD(0.1), X, Y, epochs=1, rng=0, callbacks=[nndl.callbacks.Evaluation({"test": bad})])


def test_nan_in_a_large_data_set_is_found_in_chunks():
    x = np.zeros((20_000, 784), np.float32)
    x[17_123, 500] = np.nan
    with pytest.raises(DataError, match=r"Dataset.x holds non-finite values \(nan at index \(17123, 500\)\)"):
        Dataset(x, np.zeros(20_000, np.int64))


def test_nan_in_a_book_pickle_is_refused(tmp_path):
    import gzip
    import pickle
    parts = [(np.full((2, 784), 0.5, np.float32), np.array([1, 2])) for _ in range(3)]
    parts[1][0][1, 7] = np.nan
    path = tmp_path / "mnist.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump(tuple(parts), f, protocol=2)
    from nndl.data import load_book_pickle
    with pytest.raises(DataError, match=r"validation set: pixel values must lie in \[0, 1\]"):
        load_book_pickle(path)


# -- the command line ---------------------------------------------------------------------------

@needs_mnist
def test_svm_baseline_with_one_training_image_is_one_line(capsys):
    code = cli.main(["baseline", "svm", "--train-size", "1", "--data-dir", str(MNIST_DIR)])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert err == ("nndl: error: an SVM needs training images of at least two different digits; the 1 "
                   "training image(s) given are all 5s: use more\n")
