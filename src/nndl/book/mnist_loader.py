"""mnist_loader
~~~~~~~~~~~~

The book's MNIST loader with its API unchanged, reading from the folder nndl
uses (:func:`nndl.data.resolve_data_dir`: an explicit ``data_dir``, else
``$NNDL_DATA``, else the user cache; missing files are downloaded) instead of
``mnist.pkl.gz`` in the working directory. The book's own layout is honoured
too: without ``data_dir``, when nndl's folder holds no MNIST yet and
``../data/mnist.pkl.gz`` exists relative to the working directory (where the
book's scripts, run from ``src/``, expect it), that file is read instead of
downloading anything.

``load_data()`` returns the book's structures; ``load_data_wrapper()``
returns *lists* of ``(x, y)`` pairs rather than the one-shot ``zip``
iterators of the Python 3 ports, so the book's ``list(training_data)`` and
repeated use both work.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data import load_book_pickle, load_mnist, resolve_data_dir
from ..data.download import missing_files
from ..errors import ConfigError, DataError

__all__ = ["load_data", "load_data_wrapper", "vectorized_result"]

BOOK_FILE = "mnist.pkl.gz"

#: Where the book's scripts look for the data, relative to the working directory.
BOOK_LAYOUT = Path("..") / "data" / BOOK_FILE


def _has_mnist(folder: Path) -> bool:
    return folder.is_dir() and (not missing_files(folder) or (folder / BOOK_FILE).is_file())


def _load_default(data_dir):
    """MNIST from nndl's folder, else from the book's ``../data/mnist.pkl.gz``,
    else downloaded into nndl's folder; a missing-data error mentions the
    book's layout."""
    folder = resolve_data_dir(data_dir)
    if _has_mnist(folder):
        return load_mnist(data_dir)
    if data_dir is None and BOOK_LAYOUT.is_file():
        return load_book_pickle(BOOK_LAYOUT)
    try:
        return load_mnist(data_dir)
    except DataError as e:
        raise DataError(f"{e}\nThe book's own layout works too: put the book's {BOOK_FILE} at "
                        f"{BOOK_LAYOUT} relative to the working directory "
                        f"({BOOK_LAYOUT.resolve()}), as its scripts expect.") from None


def _find(filename, data_dir) -> Path | None:
    """The file to read: ``filename`` as given if it exists, else its name in
    the data folder; None for the book's own ``mnist.pkl.gz`` when absent (then
    the IDX files are read)."""
    p = Path(filename)
    if p.is_file():
        return p
    q = resolve_data_dir(data_dir) / p.name
    if q.is_file():
        return q
    if p.name == BOOK_FILE:
        return None
    hint = " (make it with: python -m nndl.book.expand_mnist)" if "expanded" in p.name else ""
    raise DataError(f"{filename} not found, neither as given nor in the data folder "
                    f"{resolve_data_dir(data_dir)}{hint}")


def load_data(filename=None, *, data_dir=None):
    """Return the MNIST data as a tuple ``(training_data, validation_data,
    test_data)``.

    ``training_data`` is a tuple ``(x, y)``: x a float32 array of shape
    ``(50000, 784)`` (pixels in [0, 1), row-major 28x28), y an int64 array of
    the 50,000 digits. ``validation_data`` and ``test_data`` are the same
    with 10,000 images each.

    Args:
        filename: a file in the book's pickle format (e.g. the expanded set
            ``"mnist_expanded.pkl.gz"``), looked for as given and then in the
            data folder; default: MNIST itself, from the data folder or, when
            that holds none, the book's ``../data/mnist.pkl.gz``.
        data_dir: the data folder (default ``$NNDL_DATA`` or the user cache).
    """
    if filename is None or (path := _find(filename, data_dir)) is None:
        splits = _load_default(data_dir)
    else:
        splits = load_book_pickle(path)
    return tuple((part.x, part.y) for part in splits)


def load_data_wrapper(filename=None, *, data_dir=None):
    """Return a tuple ``(training_data, validation_data, test_data)`` in the
    format the book's networks use.

    ``training_data`` is a list of 50,000 pairs ``(x, y)``: x a ``(784, 1)``
    input column, y the ``(10, 1)`` unit vector of the digit
    (:func:`vectorized_result`). ``validation_data`` and ``test_data`` are
    lists of 10,000 pairs ``(x, y)`` with y the digit (an int). The different
    formats are the book's.
    """
    tr_d, va_d, te_d = load_data(filename, data_dir=data_dir)
    training_inputs = list(tr_d[0].reshape(-1, 784, 1))
    results = np.zeros((len(tr_d[1]), 10, 1))
    results[np.arange(len(tr_d[1])), tr_d[1], 0] = 1.0
    training_data = list(zip(training_inputs, list(results)))
    validation_data = list(zip(list(va_d[0].reshape(-1, 784, 1)), [int(y) for y in va_d[1]]))
    test_data = list(zip(list(te_d[0].reshape(-1, 784, 1)), [int(y) for y in te_d[1]]))
    return (training_data, validation_data, test_data)


def vectorized_result(j):
    """Return a 10-dimensional unit vector ``(10, 1)`` with a 1.0 in the jth
    position and zeroes elsewhere: the desired output for digit ``j``."""
    if isinstance(j, bool) or not isinstance(j, (int, np.integer)) or not 0 <= j < 10:
        raise ConfigError(f"vectorized_result: j must be a digit 0..9, got {j!r}")
    e = np.zeros((10, 1))
    e[j] = 1.0
    return e
