"""The book's own files: what its expand_mnist.py writes loads, the book's
../data/mnist.pkl.gz layout is honoured, and a malicious pickle in its place
executes nothing.

The book's expand_mnist.py is taken, unchanged, from the copy of the book's
code in ``../shared/seeds/`` (it is not kept in this repository), and run as
the book runs it: from ``src/``, reading ``../data/mnist.pkl.gz``.
"""

from __future__ import annotations

import builtins
import gzip
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nndl.data.download as dl
from helpers import needs_mnist, MNIST_DIR
from nndl.book import mnist_loader, network3
from nndl.data import Dataset, MnistSplits, load_book_pickle, load_mnist, save_book_pickle
from nndl.data.augment import expand_with_shifts, from_bytes
from nndl.errors import DataError

SEEDS = Path(__file__).resolve().parents[1].parent / "shared" / "seeds"


def book_expand_script() -> str:
    """The book's expand_mnist.py, from its docstring to the final ``f.close()``."""
    for path in sorted(SEEDS.glob("*.txt")):
        text = path.read_text(encoding="utf-8", errors="replace")
        start = text.find('"""expand_mnist.py')
        if start < 0:
            continue
        end = text.find("    f.close()\n", text.find("pickle.dump(", start))
        if end > 0:
            return text[start:end + len("    f.close()\n")]
    pytest.skip(f"the book's expand_mnist.py is not in {SEEDS}")
N_TRAIN, N_OTHER = 600, 100


@pytest.fixture(scope="module")
def book_layout(tmp_path_factory):
    """``root/src`` and ``root/data/mnist.pkl.gz`` (the book's layout), the
    pickle made from the first MNIST IDX images, small enough to expand fast."""
    if not (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST IDX files not in {MNIST_DIR}")
    root = tmp_path_factory.mktemp("book")
    (root / "src").mkdir()
    (root / "data").mkdir()
    full = load_mnist(MNIST_DIR, download=False)
    splits = MnistSplits(full.training[:N_TRAIN], full.validation[:N_OTHER], full.test[:N_OTHER])
    save_book_pickle(splits, root / "data" / "mnist.pkl.gz")
    return root, splits


@pytest.fixture(scope="module")
def expanded(book_layout):
    """Run the book's expand_mnist.py, unchanged, from root/src."""
    root, _ = book_layout
    script = root / "src" / "expand_mnist.py"
    script.write_text(book_expand_script())
    done = subprocess.run([sys.executable, "expand_mnist.py"], cwd=root / "src", capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Expanding the MNIST training set\n")
    assert (root / "data" / "mnist_expanded.pkl.gz").is_file()
    return root / "data" / "mnist_expanded.pkl.gz"


def _rows(x, y):
    """The (image, label) pairs as a sorted list of bytes: order-free comparison."""
    return sorted(xi.tobytes() + bytes([int(yi)]) for xi, yi in zip(x, y))


@needs_mnist
def test_the_books_expanded_file_loads_with_load_data_shared(book_layout, expanded, monkeypatch):
    root, splits = book_layout
    monkeypatch.chdir(root / "src")
    training, validation, test = network3.load_data_shared("../data/mnist_expanded.pkl.gz")
    x, y = training
    assert x.shape == (5 * N_TRAIN, 784) and x.dtype == np.float32 and y.shape == (5 * N_TRAIN,)
    # The book shuffled with an unseeded random.shuffle: compare as a multiset
    # with nndl's own expansion of the same images.
    b, labels = expand_with_shifts(splits.training.x, splits.training.y, shuffle=False)
    assert _rows(x, y) == _rows(from_bytes(b, np.float32), labels)
    for got, want in ((validation, splits.validation), (test, splits.test)):
        assert np.array_equal(got[0], want.x) and np.array_equal(got[1], want.y)


@needs_mnist
def test_the_books_structure_in_a_protocol_5_pickle(book_layout, expanded, tmp_path):
    """What expand_mnist.py writes under Python 3.14 (pickle protocol 5 by default)."""
    with gzip.open(expanded, "rb") as f:
        obj = pickle.Unpickler(f).load()                     # our own file: trusted here
    assert isinstance(obj[0], list) and isinstance(obj[0][1][0], np.int64)
    path = tmp_path / "p5.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump(obj, f, protocol=5)
    assert b"_frombuffer" in gzip.decompress(path.read_bytes())
    got = load_book_pickle(path)
    assert np.array_equal(got.training.x, np.stack(obj[0][0])) and np.array_equal(got.training.y, obj[0][1])


@needs_mnist
def test_the_books_layout_is_used_when_nndl_has_no_data(book_layout, tmp_path, monkeypatch):
    root, splits = book_layout
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("NNDL_DATA", str(empty))
    monkeypatch.setattr(dl, "MIRRORS", ["http://127.0.0.1:9/"])    # nothing is downloaded
    monkeypatch.chdir(root / "src")
    for training, validation, test in (mnist_loader.load_data(), network3.load_data_shared()):
        assert np.array_equal(training[0], splits.training.x) and np.array_equal(test[1], splits.test.y)
    assert list(empty.iterdir()) == []


def test_the_missing_data_error_names_the_books_layout(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("NNDL_DATA", str(empty))
    monkeypatch.setattr(dl, "MIRRORS", ["http://127.0.0.1:9/"])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as e:
        network3.load_data_shared()
    assert str(e.value).endswith(f"The book's own layout works too: put the book's mnist.pkl.gz at "
                                 f"../data/mnist.pkl.gz relative to the working directory "
                                 f"({tmp_path.parent / 'data' / 'mnist.pkl.gz'}), as its scripts expect.")


# -- malicious pickles in the book's place ------------------------------------------------

class _Call:
    """Pickles as a call of ``fn(*args)``: what a malicious file does."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _payloads(marker: Path):
    import numpy.lib.format  # noqa: F401  (the module a payload may name)
    scalar = np.int64(0).__reduce__()[0]
    return {
        "os.system": (_Call(os.system, f"touch {marker}"), r"refuses to load global posix\.system"),
        "builtins.exec": (_Call(builtins.exec, f"open({str(marker)!r}, 'w').close()"),
                          r"refuses to load global (builtins|__builtin__)\.exec"),
        "builtins.open": (_Call(builtins.open, str(marker), "w"), r"refuses to load global io\.open"),
        "object-dtype scalar": (_Call(scalar, np.dtype(object), _Call(os.system, f"touch {marker}")),
                                r"pickle uses dtype dtype\('O'\)"),
        "ndarray called": (_Call(np.ndarray, (10**6, 10**6)), r"not a valid pickle of NumPy arrays"),
        "subclass rebuilt": (np.ma.masked_array([1.0]), r"refuses to load global numpy\.ma\.core"),
        "inside the data": (((np.zeros((1, 784), np.float32), _Call(os.system, f"touch {marker}")),) * 3,
                            r"refuses to load global posix\.system"),
    }


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("payload", list(_payloads(Path("x"))))
def test_a_malicious_pickle_in_the_books_place_executes_nothing(tmp_path, monkeypatch, payload, protocol):
    marker = tmp_path / "pwned"
    obj, message = _payloads(marker)[payload]
    (tmp_path / "data").mkdir()
    (tmp_path / "src").mkdir()
    path = tmp_path / "data" / "mnist_expanded.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    monkeypatch.chdir(tmp_path / "src")
    with pytest.raises(DataError) as e:
        network3.load_data_shared("../data/mnist_expanded.pkl.gz")
    assert re.search(message, str(e.value)) and str(e.value).startswith("../data/mnist_expanded.pkl.gz: ")
    assert not marker.exists()
