"""Where the tests find real MNIST: ``$NNDL_DATA``, else ``../shared/data/mnist``
beside the repository. Tests that need it are skipped when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

MNIST_DIR = Path(os.environ.get("NNDL_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist")
HAVE_MNIST = (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file() or (MNIST_DIR / "mnist.pkl.gz").is_file()
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason=f"MNIST not in {MNIST_DIR} (set NNDL_DATA)")
