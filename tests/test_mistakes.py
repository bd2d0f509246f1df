"""Misclassified images: nndl.predictions, the figures of nndl.plots.images,
and ``nndl mistakes`` (its count agrees with ``nndl evaluate``)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from matplotlib.figure import Figure

import nndl
from nndl import cli
from nndl.errors import ConfigError
from nndl.plots import confusion_matrix_figure, digit_grid, mistakes_figure
from nndl.predictions import find_mistakes, probabilities

from helpers import MNIST_DIR, needs_mnist

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_size(path) -> tuple[int, int]:
    raw = path.read_bytes()
    assert raw[:8] == PNG_MAGIC
    return int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")


def _tiny_net(output: str, cost: str, seed: int = 0) -> nndl.Network:
    return nndl.Network.from_sizes([784, 12, 10], output_activation=output, cost=cost, rng=seed)


@pytest.mark.parametrize("output, cost, rescaled", [
    ("sigmoid", "quadratic", True), ("softmax", "log-likelihood", False), ("tanh", "quadratic", True)])
def test_probabilities_sum_to_one_and_keep_the_answer(output, cost, rescaled):
    net = _tiny_net(output, cost)
    x = np.random.default_rng(0).random((50, 784)).astype(np.float32)
    p, was_rescaled = probabilities(net, x)
    assert was_rescaled is rescaled
    assert p.shape == (50, 10) and (p >= 0).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(p.argmax(axis=1), net.predict(x))
    if output == "softmax":  # a softmax output is already a distribution: left as it is
        np.testing.assert_allclose(p, net.feedforward(x), rtol=1e-6)
    if output == "sigmoid":  # each output's share of the total
        a = net.feedforward(x).astype(np.float64)
        np.testing.assert_allclose(p, a / a.sum(axis=1, keepdims=True), rtol=1e-12)


def test_find_mistakes_by_hand():
    # a network whose answer is fixed: zero weights, biases favour digit 3 -> every image is a 3
    net = _tiny_net("sigmoid", "quadratic")
    net.set_params([{"w": np.zeros((12, 784)), "b": np.zeros(12)},
                    {"w": np.zeros((10, 12)), "b": np.where(np.arange(10) == 3, 2.0, -2.0)}])
    y = np.array([3, 1, 3, 7, 7, 0])
    m = find_mistakes(net, np.zeros((6, 784), np.float32), y)
    np.testing.assert_array_equal(m.indices, [1, 3, 4, 5])
    np.testing.assert_array_equal(m.true, [1, 7, 7, 0])
    np.testing.assert_array_equal(m.predicted, [3, 3, 3, 3])
    # confidence: sigmoid(2) / (sigmoid(2) + 9 sigmoid(-2))
    s = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    np.testing.assert_allclose(m.confidence, s(2) / (s(2) + 9 * s(-2)))
    assert m.total == 6 and m.correct == 2 and len(m) == 4
    expected = np.zeros((10, 10), int)
    expected[[3, 1, 7, 0], 3] = [2, 1, 2, 1]
    np.testing.assert_array_equal(m.confusion, expected)
    np.testing.assert_array_equal(m.select(true=7), [1, 2])
    np.testing.assert_array_equal(m.select(predicted=5), [])


@needs_mnist
def test_mistakes_agree_with_accuracy_on_mnist(mnist):
    net = nndl.Network.from_sizes([784, 30, 10], init="large", rng=0)
    nndl.train(net, nndl.SGD(3.0), mnist["train_x"][:5000], mnist["train_y"][:5000], epochs=1,
               rng=np.random.default_rng(0))
    x, y = mnist["test_x"][:2000], mnist["test_y"][:2000]
    m = find_mistakes(net, x, y)
    assert m.correct == net.accuracy(x, y) == np.trace(m.confusion)
    assert m.confusion.sum() == 2000
    np.testing.assert_array_equal(m.confusion.sum(axis=1), np.bincount(y, minlength=10))
    assert (net.predict(x[m.indices]) != y[m.indices]).all()
    assert ((m.confidence > 0) & (m.confidence <= 1)).all()


def test_digit_grid_layout_and_captions(tmp_path):
    images = np.random.default_rng(0).random((13, 784))
    fig = digit_grid(images, [f"#{i}" for i in range(13)], ncols=5, title="thirteen",
                     highlight=[i % 2 == 0 for i in range(13)])
    assert isinstance(fig, Figure)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(fig.axes) == 15 and len(shown) == 13  # 3 rows of 5, two cells left empty
    np.testing.assert_allclose(shown[4].images[0].get_array(), images[4].reshape(28, 28), rtol=1e-6)
    assert [ax.get_title() for ax in shown] == [f"#{i}" for i in range(13)]
    assert shown[0].title.get_color() != shown[1].title.get_color()  # highlighted in red
    assert fig._suptitle.get_text() == "thirteen"
    fig.savefig(tmp_path / "g.png")
    assert _png_size(tmp_path / "g.png")[0] > 100
    with pytest.raises(ConfigError, match="13 images but 2 captions"):
        digit_grid(images, ["a", "b"])
    with pytest.raises(ConfigError, match="shape"):
        digit_grid(np.zeros((3, 5)))


def test_mistakes_figure_and_confusion_matrix(tmp_path):
    net = _tiny_net("sigmoid", "quadratic")
    net.set_params([{"w": np.zeros((12, 784)), "b": np.zeros(12)},
                    {"w": np.zeros((10, 12)), "b": np.where(np.arange(10) == 3, 2.0, -2.0)}])
    x = np.random.default_rng(1).random((30, 784)).astype(np.float32)
    y = np.arange(30) % 10
    m = find_mistakes(net, x, y)  # 27 mistakes: every image that is not a 3
    fig = mistakes_figure(m, x, limit=8, ncols=4)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 8
    assert shown[0].get_title() == "0 → 3 45%"  # 0.8808 / (0.8808 + 9 * 0.1192) = 0.451
    np.testing.assert_allclose(shown[1].images[0].get_array(), x[1].reshape(28, 28), rtol=1e-6)
    assert "27 of 30 misclassified" in fig._suptitle.get_text()
    only_sevens = mistakes_figure(m, x, true=7)
    assert [ax.get_title()[:5] for ax in only_sevens.axes if ax.images] == ["7 → 3"] * 3
    assert "nothing to show" in mistakes_figure(m, x, true=3).texts[0].get_text()

    fig = confusion_matrix_figure(m.confusion)
    ax = fig.axes[0]
    values = [int(t.get_text()) for t in ax.texts]
    assert values == m.confusion.reshape(-1).tolist()
    assert ax.get_xlabel() == "predicted digit" and ax.get_ylabel() == "true digit"
    assert ax.get_title() == "3 / 30 correct"
    fig.savefig(tmp_path / "cm.png")
    assert _png_size(tmp_path / "cm.png") == (550, 550)


@needs_mnist
def test_cli_mistakes_count_equals_evaluate(tmp_path, capsys):
    model = tmp_path / "net.npz"
    code = cli.main(["train", "--data-dir", str(MNIST_DIR), "--epochs", "1", "--train-size", "3000",
                     "--save", str(model), "--no-progress"])
    assert code == 0
    capsys.readouterr()
    assert cli.main(["evaluate", str(model), "--data-dir", str(MNIST_DIR)]) == 0
    correct = int(re.search(r"(\d+) / 10000 correct", capsys.readouterr().out).group(1))

    grid, cm = tmp_path / "grid.png", tmp_path / "out" / "cm.svg"
    code = cli.main(["mistakes", str(model), "-o", str(grid), "--confusion", str(cm), "--limit", "20",
                     "--data-dir", str(MNIST_DIR)])
    out = capsys.readouterr().out
    assert code == 0
    assert f"{10000 - correct} of 10000 test images misclassified ({correct} / 10000 correct" in out
    rows = re.findall(r"^\s+(\d)((?:\s+\d+){10})$", out, flags=re.M)
    matrix = np.array([[int(v) for v in r.split()] for _, r in rows])
    assert matrix.shape == (10, 10) and np.trace(matrix) == correct
    assert "20 misclassified image(s) drawn in" in out
    assert _png_size(grid)[0] > 500 and cm.read_text().lstrip().startswith("<?xml")

    code = cli.main(["mistakes", str(model), "--true", "5", "--predicted", "3", "-o", str(grid),
                     "--limit", "1000", "--data-dir", str(MNIST_DIR)])
    out = capsys.readouterr().out
    assert code == 0 and f"{matrix[5, 3]} misclassified image(s) drawn" in out


@pytest.mark.parametrize("argv, fragment", [
    (["mistakes", "missing.npz"], "does not exist"),
    (["mistakes", "m.npz", "-o", "grid.nope"], "cannot tell the image format"),
    (["mistakes", "m.npz", "--confusion", "cm"], "cannot tell the image format"),
])
def test_cli_mistakes_errors_are_one_line(tmp_path, capsys, monkeypatch, argv, fragment):
    monkeypatch.chdir(tmp_path)
    nndl.save(_tiny_net("sigmoid", "quadratic"), tmp_path / "m.npz")
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    assert err.startswith("nndl: error:") and fragment in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "grid.nope").exists()


def test_cli_mistakes_rejects_a_non_digit(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["mistakes", "m.npz", "--true", "12"])
    assert info.value.code == 2 and "expected a digit 0-9, got '12'" in capsys.readouterr().err
