"""nndl.book.mnist_loader and nndl.book.expand_mnist.

* ``load_data`` returns the book's structures (arrays of the book's shapes
  and values), ``load_data_wrapper`` the book's lists of pairs, reusable;
* files are found as given or by name in the data folder;
* ``expand`` equals the book's loop (``np.roll`` + zeroing the wrapped line)
  image for image, is deterministic for a seed, and ``main`` writes the file
  where the book's loaders find it.
"""

from __future__ import annotations


import numpy as np
import pytest

from nndl.book import expand_mnist, mnist_loader, network3
from nndl.data import Dataset, MnistSplits
from nndl.errors import ConfigError, DataError

from helpers import needs_mnist
from reference import book_expand_one


pytestmark = pytest.mark.usefixtures("data_env")   # $NNDL_DATA: the test data (conftest.py)


def book_expand(x, y):
    """The book's expand_mnist loop (without its final shuffle): each image,
    then its four shifted copies."""
    images, labels = [], []
    for xi, yi in zip(x, y):
        images += [xi] + book_expand_one(xi)
        labels += [yi] * 5
    return np.stack(images), np.array(labels)


# -- load_data / load_data_wrapper -------------------------------------------------------

@needs_mnist
def test_load_data_returns_the_books_structures(raw):
    training_data, validation_data, test_data = raw
    for (x, y), n in zip(raw, (50000, 10000, 10000)):
        assert isinstance(x, np.ndarray) and x.shape == (n, 784) and x.dtype == np.float32
        assert isinstance(y, np.ndarray) and y.shape == (n,) and y.dtype == np.int64
    # pixel values: bytes / 256, as in the book's mnist.pkl.gz
    x = training_data[0][:100]
    np.testing.assert_array_equal(x * 256, np.round(x * 256))
    assert x.max() <= 255 / 256 and x.min() == 0.0
    # the book's sample output: test_data[1] == array([7, 2, 1, ..., 4, 5, 6])
    assert list(test_data[1][:3]) == [7, 2, 1] and list(test_data[1][-3:]) == [4, 5, 6]
    assert training_data[1][0] == 5


@needs_mnist
def test_load_data_wrapper_returns_reusable_lists(raw):
    training_data, validation_data, test_data = mnist_loader.load_data_wrapper()
    assert isinstance(training_data, list) and len(training_data) == 50000
    assert isinstance(validation_data, list) and len(validation_data) == 10000
    assert isinstance(test_data, list) and len(test_data) == 10000
    x, y = training_data[0]
    assert x.shape == (784, 1) and x.dtype == np.float32
    assert y.shape == (10, 1)
    np.testing.assert_array_equal(y, mnist_loader.vectorized_result(5))
    np.testing.assert_array_equal(x[:, 0], raw[0][0][0])
    vx, vy = validation_data[3]
    assert vx.shape == (784, 1) and isinstance(vy, int) and vy == raw[1][1][3]
    assert [y for _, y in test_data[:3]] == [7, 2, 1]
    # the book's samples call list(...) on the data and use it again
    assert list(test_data)[0][1] == 7 and len(list(test_data)) == 10000
    labels = np.array([np.argmax(y) for _, y in training_data[:1000]])
    np.testing.assert_array_equal(labels, raw[0][1][:1000])


def test_vectorized_result():
    e = mnist_loader.vectorized_result(3)
    assert e.shape == (10, 1) and e[3, 0] == 1.0 and e.sum() == 1.0


@needs_mnist
def test_the_books_file_name_falls_back_to_the_idx_files(raw):
    training_data, _, _ = mnist_loader.load_data("mnist.pkl.gz")
    np.testing.assert_array_equal(training_data[1], raw[0][1])


def test_missing_files_say_where_they_were_looked_for(tmp_path):
    with pytest.raises(DataError, match=r"mnist_expanded.pkl.gz not found.*python -m nndl.book.expand_mnist"):
        mnist_loader.load_data("../data/mnist_expanded.pkl.gz", data_dir=tmp_path)
    with pytest.raises(DataError, match="other.pkl.gz not found"):
        mnist_loader.load_data("other.pkl.gz", data_dir=tmp_path)


# -- expand_mnist --------------------------------------------------------------------------

def test_shift_images_equals_np_roll_and_zeroing():
    rng = np.random.default_rng(0)
    images = rng.integers(1, 256, size=(3, 28, 28)).astype(np.uint8)
    out = expand_mnist.shift_images(images)
    assert out.shape == (3, 5, 28, 28) and out.dtype == np.uint8
    x = images.reshape(3, 784).astype(np.float32) / 256
    bx, _ = book_expand(x, np.zeros(3, dtype=np.int64))
    np.testing.assert_array_equal(out.reshape(15, 784).astype(np.float32) / 256, bx)


@needs_mnist
def test_expand_equals_the_books_loop_image_for_image(raw):
    x, y = raw[0][0][:40], raw[0][1][:40]
    bx, by = book_expand(x, y)
    ours = expand_mnist.expand((x, y), shuffle=False)
    assert isinstance(ours, Dataset) and len(ours) == 200 and ours.x.dtype == np.float32
    np.testing.assert_array_equal(ours.x, bx)
    np.testing.assert_array_equal(ours.y, by)


@needs_mnist
def test_expand_is_a_seeded_shuffle_of_the_same_images(raw):
    x, y = raw[0][0][:30], raw[0][1][:30]
    a = expand_mnist.expand((x, y), seed=1)
    b = expand_mnist.expand((x, y), seed=1)
    c = expand_mnist.expand((x, y), seed=2)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.y, c.y) or not np.array_equal(a.x, c.x)
    plain = expand_mnist.expand((x, y), shuffle=False)
    key = lambda d: sorted(zip(d.y.tolist(), map(bytes, (d.x * 256).astype(np.uint8))))  # noqa: E731
    assert key(a) == key(plain)


def test_expand_keeps_non_mnist_values_exact():
    x = np.random.default_rng(0).random((2, 784)).astype(np.float64)   # not multiples of 1/256
    out = expand_mnist.expand((x, np.array([1, 2])), shuffle=False, dtype=np.float64)
    bx, _ = book_expand(x, np.array([1, 2]))
    np.testing.assert_array_equal(out.x, bx)


def test_expand_rejects_bad_input():
    with pytest.raises(ConfigError, match="rows of 784 pixels"):
        expand_mnist.expand((np.zeros((3, 100)), np.zeros(3, dtype=int)))
    with pytest.raises(ConfigError, match="one label per image"):
        expand_mnist.expand((np.zeros((3, 784)), np.zeros(4, dtype=int)))
    with pytest.raises(ConfigError, match="Dataset or an"):
        expand_mnist.expand(42)


@needs_mnist
def test_main_writes_the_file_where_the_books_loaders_find_it(raw, tmp_path, monkeypatch, capsys):
    # a small stand-in for MNIST, so that the test writes 500 images, not 250,000
    small = MnistSplits(Dataset(raw[0][0][:100], raw[0][1][:100]), Dataset(raw[1][0][:20], raw[1][1][:20]),
                        Dataset(raw[2][0][:30], raw[2][1][:30]))
    monkeypatch.setattr(expand_mnist, "load_mnist", lambda data_dir=None: small)
    monkeypatch.setenv("NNDL_DATA", str(tmp_path))
    path = expand_mnist.main()
    assert path == tmp_path / "mnist_expanded.pkl.gz" and path.is_file()
    assert capsys.readouterr().out == ("Expanding the MNIST training set\n"
                                       "Saving expanded data. This may take a few minutes.\n")
    expand_mnist.main()
    assert "The expanded training set already exists.  Exiting." in capsys.readouterr().out
    # the book's paths: "../data/mnist_expanded.pkl.gz" (expand_mnist.py) and
    # "./data/mnist_expanded.pkl.gz" (the chapter 6 sample) resolve by name
    tr, va, te = mnist_loader.load_data("../data/mnist_expanded.pkl.gz")
    assert tr[0].shape == (500, 784) and va[0].shape == (20, 784) and te[0].shape == (30, 784)
    expected = expand_mnist.expand(small.training, seed=0)
    np.testing.assert_array_equal(tr[0], expected.x)
    np.testing.assert_array_equal(tr[1], expected.y)
    expanded_training_data, _, _ = network3.load_data_shared("./data/mnist_expanded.pkl.gz")
    np.testing.assert_array_equal(expanded_training_data[1], expected.y)
    wrapped, _, _ = mnist_loader.load_data_wrapper("mnist_expanded.pkl.gz")
    assert len(wrapped) == 500
