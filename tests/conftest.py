"""Shared test fixtures: real MNIST (a minimal reader, and the book's loaders),
floating-point strictness.

Real MNIST comes from ``$NNDL_DATA`` or ``../shared/data/mnist`` beside the
repository (``helpers.MNIST_DIR``); tests that need it are skipped when it is
absent. The reader here is deliberately independent of :mod:`nndl.data` (a
dozen lines of gzip + ``np.frombuffer``), so that engine tests do not depend
on the loader.
"""

from __future__ import annotations

import functools
import gzip
from pathlib import Path

import numpy as np
import pytest

from helpers import HAVE_MNIST, MNIST_DIR

MNIST_NAMES = {
    "train_x": "train-images-idx3-ubyte.gz",
    "train_y": "train-labels-idx1-ubyte.gz",
    "test_x": "t10k-images-idx3-ubyte.gz",
    "test_y": "t10k-labels-idx1-ubyte.gz",
}


def _read_idx_gz(path: Path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


@functools.lru_cache(maxsize=2)
def load_mnist_arrays(mnist_dir) -> dict[str, np.ndarray]:
    """The four MNIST files as arrays: ``train_x`` ``(60000, 784)`` and
    ``test_x`` ``(10000, 784)`` float32 pixels ``byte / 256`` (the book's
    scaling), ``train_y`` / ``test_y`` int64 labels. Cached; treat as read-only."""
    folder = Path(mnist_dir)
    out = {}
    for key, name in MNIST_NAMES.items():
        a = _read_idx_gz(folder / name)
        if key.endswith("_x"):
            a = (a.reshape(len(a), -1) / np.float32(256)).astype(np.float32)
        else:
            a = a.astype(np.int64)
        a.setflags(write=False)
        out[key] = a
    return out


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The folder holding the four gzipped MNIST IDX files (skip if absent)."""
    folder = MNIST_DIR
    missing = [n for n in MNIST_NAMES.values() if not (folder / n).is_file()]
    if missing:
        pytest.skip(f"MNIST files {missing} not in {folder} (set NNDL_DATA)")
    return folder


@pytest.fixture(scope="session")
def mnist(mnist_dir) -> dict[str, np.ndarray]:
    """``load_mnist_arrays(mnist_dir)``, once per session."""
    return load_mnist_arrays(mnist_dir)


@pytest.fixture
def strict_fp():
    """Turn every floating-point warning into an error for the test's duration."""
    with np.errstate(all="raise"):
        yield


# -- the book's modules ---------------------------------------------------------

@pytest.fixture
def data_env(monkeypatch):
    """The book's loaders take no folder: point ``$NNDL_DATA`` at the test data.
    The book modules' test files use it on every test (``pytestmark``)."""
    monkeypatch.setenv("NNDL_DATA", str(MNIST_DIR))


def _skip_without_mnist() -> None:
    if not HAVE_MNIST:
        pytest.skip(f"MNIST not in {MNIST_DIR}")


@pytest.fixture(scope="module")
def raw():
    """``mnist_loader.load_data()``: the book's (training, validation, test) pairs.
    Once per test module: the book's code may shuffle what it is given."""
    from nndl.book import mnist_loader

    _skip_without_mnist()
    return mnist_loader.load_data(data_dir=MNIST_DIR)


@pytest.fixture(scope="module")
def book_data():
    """``mnist_loader.load_data_wrapper()``: the book's lists of (x, y) pairs.
    Once per test module: the book's ``SGD`` shuffles its training list in place."""
    from nndl.book import mnist_loader

    _skip_without_mnist()
    return mnist_loader.load_data_wrapper(data_dir=MNIST_DIR)
