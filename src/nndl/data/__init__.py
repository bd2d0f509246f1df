"""MNIST: locate, download, verify and load it, in one data format.

Images are float rows ``x`` of shape ``(N, 784)`` with pixel = byte / 256;
labels are int64 ``y`` of shape ``(N,)`` in 0..9. :func:`load_mnist` returns
the book's split (50,000 training / 10,000 validation / 10,000 test).
"""

from .download import (
    ENV_VAR,
    MIRRORS,
    MNIST_FILES,
    FileStatus,
    describe,
    fetch,
    resolve_data_dir,
    verify,
)
from .mnist import (
    Dataset,
    MnistSplits,
    load_book_pickle,
    load_mnist,
    read_idx,
    save_book_pickle,
)

__all__ = [
    "Dataset",
    "MnistSplits",
    "read_idx",
    "load_mnist",
    "load_book_pickle",
    "save_book_pickle",
    "resolve_data_dir",
    "fetch",
    "verify",
    "describe",
    "FileStatus",
    "MNIST_FILES",
    "MIRRORS",
    "ENV_VAR",
]
