"""The run as a value (RunConfig), run(), the epoch runner's hooks, the gradient
recorder and the history's record of its run."""

from __future__ import annotations

import dataclasses
import io
import json
import math

import numpy as np
import pytest

import nndl
from nndl import callbacks as cb
from nndl.config import ConfigFieldError, RunConfig, parse_monitor, run
from nndl.data import Dataset, MnistSplits
from nndl.errors import ConfigError, HistoryError
from nndl.history import History
from nndl.training import EpochRunner

from helpers import MNIST_DIR, needs_mnist
from reference import ReferenceNetwork


def tiny_splits(n_train=300, seed=0) -> MnistSplits:
    """Synthetic 784-pixel 'digits': each class lights its own band of pixels."""
    rng = np.random.default_rng(seed)

    def make(n):
        y = rng.integers(0, 10, n)
        x = (rng.random((n, 784)) < 0.05).astype(np.float32) * 0.5
        for i, label in enumerate(y):
            x[i, label * 70:label * 70 + 60] += 0.5
        return Dataset(x, y.astype(np.int64))

    return MnistSplits(make(n_train), make(100), make(100))


# -- the configuration ------------------------------------------------------------------
def test_default_is_the_books_chapter1_network():
    c = RunConfig()
    assert c.sizes == (784, 30, 10) and c.activation == "sigmoid" and c.resolved_cost == "quadratic"
    assert c.resolved_init == "large" and (c.epochs, c.batch_size, c.eta) == (30, 10, 3.0)
    assert c.monitor == (("test", ("accuracy",)),)
    assert c.describe().startswith("[784, 30, 10] sigmoid network (quadratic cost, init large), 30 epochs, "
                                   "mini-batch 10, eta 3.0")


def test_round_trip_through_json_and_key():
    c = RunConfig(sizes=[784, 100, 10], cost="cross-entropy", init="default", lmbda=5, eta=0.5,
                  monitor=["validation:cost,accuracy", "training:cost"], record_gradients=0)
    d = json.loads(json.dumps(c.to_dict()))
    c2 = RunConfig.from_dict(d)
    assert c2 == c and c2.key() == c.key()
    assert d["monitor"] == {"training": ["cost"], "validation": ["accuracy", "cost"]}
    assert c.replace(seed=1).key() != c.key()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.eta = 1.0


def test_canonical_forms_make_equal_configs_equal():
    a = RunConfig(monitor=["test", "validation:cost", "validation:accuracy"], activation="Sigmoid")
    b = RunConfig(monitor={"validation": ["accuracy", "cost"], "test": "accuracy"}, sizes=(784, 30, 10))
    assert a == b and a.key() == b.key()
    assert parse_monitor("none") == ()


@pytest.mark.parametrize("changes, field, fragment", [
    ({"eta": 0}, "eta", "eta must be a number > 0, got 0"),
    ({"eta": float("nan")}, "eta", "eta must be a number > 0"),
    ({"momentum": 1.0}, "momentum", "momentum must be in [0, 1)"),
    ({"lmbda": -1}, "lmbda", "lmbda must be a number >= 0"),
    ({"epochs": 0}, "epochs", "epochs must be a positive integer, got 0"),
    ({"batch_size": 2.5}, "batch_size", "batch_size must be an integer"),
    ({"seed": -1}, "seed", "seed must be an integer >= 0, got -1"),
    ({"epochs": True}, "epochs", "epochs must be an integer"),
    ({"sizes": (100, 30, 10)}, "sizes", "does not fit MNIST"),
    ({"sizes": (784, 0, 10)}, "sizes", "positive integer"),
    ({"activation": "swish"}, "activation", "unknown activation 'swish'; valid activations: sigmoid"),
    ({"cost": "hinge"}, "cost", "unknown cost 'hinge'"),
    ({"init": "orthogonal"}, "init", "unknown initializer"),
    ({"cost": "cross-entropy", "activation": "tanh"}, "cost", "cannot follow a tanh output"),
    ({"layers": "conv:20:5,pool:2,dense:100,softmax:10", "sizes": (784, 10)}, "layers", "either"),
    ({"layers": "conv:20:5,pool:2,dense:100,softmax:7"}, "layers", "MNIST needs 10"),
    ({"monitor": ["holdout"]}, "monitor", "unknown split 'holdout'"),
    ({"monitor": ["test:speed"]}, "monitor", "unknown metric 'speed'"),
    ({"early_stopping": 3, "monitor": ["training:cost"]}, "early_stopping", "watch an accuracy"),
    ({"dtype": "float16"}, "dtype", "float16"),
    ({"expand": "yes"}, "expand", "true or false"),
    ({"record_gradients": -2}, "record_gradients", ">= 0"),
])
def test_each_rule_gives_one_message_naming_the_field(changes, field, fragment):
    with pytest.raises(ConfigFieldError) as e:
        RunConfig(**changes)
    assert e.value.field == field and fragment in str(e.value), str(e.value)


def test_bad_layer_specs_are_refused_when_the_config_is_made():
    with pytest.raises(ConfigError, match="conv:20:30"):
        RunConfig(layers="conv:20:30,pool:2,softmax:10").build_network()
    with pytest.raises(ConfigError, match="unknown layer 'convv'"):
        RunConfig(layers="convv:20:5,softmax:10")


def test_unknown_fields_are_named():
    with pytest.raises(ConfigError, match="unknown run configuration field.*'etaa'.*valid fields"):
        RunConfig.from_dict({"etaa": 1.0})
    with pytest.raises(ConfigError, match="JSON object"):
        RunConfig.from_dict([1, 2])


# -- run() ------------------------------------------------------------------------------
def test_run_is_reproducible_and_records_its_config():
    splits = tiny_splits()
    c = RunConfig(sizes=(784, 20, 10), epochs=3, eta=1.0, cost="cross-entropy", init="default",
                  monitor=["training:cost", "test"], seed=4)
    a, b = run(c, data=splits), run(c, data=splits)
    assert a.history["test_accuracy"] == b.history["test_accuracy"]
    assert a.history["training_cost"] == b.history["training_cost"]
    for la, lb in zip(a.network.layers, b.network.layers):
        np.testing.assert_array_equal(la.params["w"], lb.params["w"])
    assert a.history["test_accuracy"][-1] > 0.8           # the bands are easy to tell apart
    assert RunConfig.from_dict(a.history.config) == c
    assert a.history.run["epochs_done"] == 3 and a.stop_reason is None
    other = run(c.replace(seed=5), data=splits)
    assert other.history["training_cost"] != a.history["training_cost"]


def test_run_selects_the_data_it_is_asked_for():
    splits = tiny_splits()
    r = run(RunConfig(epochs=1, train_size=50, test_size=30, validation_size=20,
                      monitor=["validation", "test"]), data=splits)
    assert r.data_sizes == {"training": 50, "validation": 20, "test": 30}
    with pytest.raises(ConfigFieldError, match="train_size 1000 exceeds the 300 training images"):
        run(RunConfig(epochs=1, train_size=1000), data=splits)


def test_run_with_early_stopping_says_why():
    splits = tiny_splits()
    r = run(RunConfig(epochs=40, eta=0.001, early_stopping=2, monitor=["validation"]), data=splits)
    assert r.history.epochs < 40 and "no improvement" in r.stop_reason


def test_run_takes_only_a_config():
    with pytest.raises(ConfigError, match="RunConfig"):
        run({"eta": 1.0})


@needs_mnist
def test_run_on_mnist_subset_reaches_accuracy():
    c = RunConfig(sizes=(784, 30, 10), epochs=2, train_size=10000, cost="cross-entropy", init="default",
                  eta=0.5, test_size=2000)
    r = run(c, data_dir=MNIST_DIR)
    assert r.history["test_accuracy"][-1] >= 0.88


# -- the epoch runner's hooks -------------------------------------------------------------
@pytest.mark.parametrize("fast", [True, False])
def test_marks_come_before_their_batch_with_parameters_up_to_date(fast):
    splits = tiny_splits(n_train=95)
    net = nndl.Network.from_sizes([784, 8, 10], rng=0, dtype="float64")
    runner = EpochRunner(net, nndl.SGD(1.0), splits.training.x.astype(np.float64), splits.training.y, 10,
                         fast=fast)
    assert runner.n_batches == 10
    seen = []
    runner.run_epoch(np.arange(95), marks=[0, 3, 7], on_mark=lambda b: seen.append((b, net.layers[0].params["w"].copy())))
    assert [b for b, _ in seen] == [0, 3, 7]
    # the weights seen at mark 3 are those after exactly 3 mini-batches
    net2 = nndl.Network.from_sizes([784, 8, 10], rng=0, dtype="float64")
    r2 = EpochRunner(net2, nndl.SGD(1.0), splits.training.x[:30].astype(np.float64), splits.training.y[:30], 10,
                     fast=False)
    r2.run_epoch(np.arange(30))
    with pytest.raises(ConfigError, match="order of the 30 examples"):
        r2.run_epoch(np.arange(29))
    np.testing.assert_allclose(seen[1][1], net2.layers[0].params["w"], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("fast", [True, False])
def test_drop_last_and_the_n_of_lambda_over_n(fast):
    splits = tiny_splits(n_train=95)
    x, y = splits.training.x.astype(np.float64), splits.training.y

    def train(lmbda, n, x):
        net = nndl.Network.from_sizes([784, 8, 10], rng=0, dtype="float64")
        runner = EpochRunner(net, nndl.SGD(0.5, regularizers=[nndl.L2(lmbda)]), x, y, 10,
                             drop_last=True, n=n, fast=fast)
        assert runner.n_batches == 9 and runner.n_used == 90
        runner.run_epoch(np.arange(95))
        return net.layers[0].params["w"]

    w = train(2.0, 9, x)
    np.testing.assert_allclose(w, train(20.0, 90, x), rtol=1e-12)   # only lambda/n matters
    other = x.copy()
    other[90:] = 1.0                                                 # the dropped examples
    np.testing.assert_array_equal(w, train(2.0, 9, other))
    assert not np.allclose(w, train(2.0, 90, x))


def test_an_optimizer_belongs_to_one_network():
    splits = tiny_splits(n_train=20)
    opt = nndl.SGD(0.5, momentum=0.9)
    a = nndl.Network.from_sizes([784, 5, 10], rng=0)
    b = nndl.Network.from_sizes([784, 5, 10], rng=1)
    nndl.train(a, opt, splits.training.x, splits.training.y, epochs=1, rng=0)
    with pytest.raises(ConfigError, match="another network"):
        nndl.train(b, opt, splits.training.x, splits.training.y, epochs=1, rng=0)
    state = opt.state_dict()
    assert set(state["velocity"]) == {"0.w", "0.b", "1.w", "1.b"}
    fresh = nndl.SGD(0.1, momentum=0.9)
    fresh.load_state_dict(state)
    assert fresh.eta == 0.5
    np.testing.assert_array_equal(fresh.velocity[(1, "w")], opt.velocity[(1, "w")])


# -- the gradient recorder ------------------------------------------------------------------
def test_gradient_norms_equal_the_books_average_gradient():
    """nndl's ||dC/db^l|| against generate_gradient.py's average of per-example backprop."""
    splits = tiny_splits(n_train=40)
    net = nndl.Network.from_sizes([784, 6, 5, 10], init="large", rng=3, dtype="float64")
    x, y = splits.training.x.astype(np.float64), splits.training.y
    ref = ReferenceNetwork([l.params["w"] for l in net.layers], [l.params["b"] for l in net.layers],
                           ["sigmoid"] * 3)
    sums = None
    for xi, yi in zip(x, y):
        t = np.zeros((10, 1)); t[yi] = 1
        nabla_b, _, _, _ = ref.backprop(xi.reshape(-1, 1), t)
        sums = nabla_b if sums is None else [s + nb for s, nb in zip(sums, nabla_b)]
    expected = [float(np.linalg.norm(s / len(x))) for s in sums]
    norms = cb.gradient_norms(net, x, y, chunk=16)
    np.testing.assert_allclose(norms["bias"], expected, rtol=1e-10)
    w_before = net.layers[0].params["w"].copy()
    np.testing.assert_array_equal(net.layers[0].params["w"], w_before)


def test_recorder_records_at_start_each_epoch_and_every_n_batches():
    splits = tiny_splits(n_train=100)
    r = run(RunConfig(sizes=(784, 10, 10, 10), epochs=2, record_gradients=4, monitor="none"), data=splits)
    recs = r.history["gradients"]
    assert [(g["epoch"], g["batch"]) for g in recs] == [(0, 0), (0, 4), (0, 8), (1, 0), (1, 4), (1, 8), (2, 0)]
    assert all(len(g["bias"]) == 3 and len(g["weight"]) == 3 for g in recs)


# -- the history ------------------------------------------------------------------------------
def test_history_writes_non_finite_values_as_null(tmp_path):
    h = History({"epoch_seconds": [0.1, 0.2], "training_cost": [0.5, math.nan]}, run={"config": {"eta": 1}})
    path = tmp_path / "h.json"
    h.to_json(path)
    data = json.loads(path.read_text())
    assert data["training_cost"] == [0.5, None] and data["run"] == {"config": {"eta": 1}}
    back = History.from_json(path)
    assert math.isnan(back["training_cost"][1]) and back.config == {"eta": 1}
    assert back.best("training_cost") == (0, 0.5)


@pytest.mark.parametrize("text, fragment", [
    ("[1, 2]", "not an nndl history"),
    ('{"a": 1}', "not an nndl history"),
    ('{"epoch_seconds": [1], "test_accuracy": ["x"]}', "must be a list of numbers"),
    ("{not json", "cannot read history"),
    ("[" * 100000, "cannot read history"),
])
def test_foreign_histories_are_refused(tmp_path, text, fragment):
    path = tmp_path / "h.json"
    path.write_text(text)
    with pytest.raises(HistoryError, match=fragment):
        History.from_json(path)
    with pytest.raises(HistoryError, match="folder"):
        History.from_json(tmp_path)


def test_epoch_printer_prints_the_books_lines():
    out = io.StringIO()
    splits = tiny_splits(n_train=50)
    run(RunConfig(epochs=2, monitor=["test", "training:cost"]), data=splits,
        callbacks=[cb.EpochPrinter(file=out)])
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("Epoch 0: ") and lines[0].endswith(" / 100")
    assert lines[1].startswith("  Cost on training data: ") and lines[2].startswith("Epoch 1: ")
