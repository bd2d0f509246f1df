"""Shared test fixtures: where real MNIST lives, and a minimal reader for it.

Real MNIST comes from ``$NNDL_DATA`` or ``../shared/data/mnist`` beside the
repository; tests that need it are skipped when it is absent. The reader
here is deliberately independent of :mod:`nndl.data` (a dozen lines of
gzip + ``np.frombuffer``), so that engine tests do not depend on the loader.
"""

from __future__ import annotations

import functools
import gzip
import os
from pathlib import Path

import numpy as np
import pytest

MNIST_NAMES = {
    "train_x": "train-images-idx3-ubyte.gz",
    "train_y": "train-labels-idx1-ubyte.gz",
    "test_x": "t10k-images-idx3-ubyte.gz",
    "test_y": "t10k-labels-idx1-ubyte.gz",
}


def default_mnist_dir() -> Path:
    """``$NNDL_DATA`` if set, else ``<repo>/../shared/data/mnist``."""
    env = os.environ.get("NNDL_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


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
    folder = default_mnist_dir()
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
