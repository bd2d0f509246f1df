"""MNIST as arrays: IDX parsing, validation, the book's split, the book's pickle.

One data format everywhere (see the guide): images are float rows of 784
pixels, ``byte / 256`` (so the largest value is 255/256 = 0.99609375, as in
the book's ``mnist.pkl.gz``), and labels are int64 class numbers 0..9.
One-hot encoding is the cost's business, not the data's.

The book's split (chapter 1, "the validation data"): training = the first
50,000 of the 60,000 official training images, validation = the last 10,000,
test = the 10,000 official test images.

Locating and downloading the files is :mod:`nndl.data.download`'s job.
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from ..checks import check_finite
from ..errors import ConfigError, DataError, path_arg
from .download import (
    BOOK_PICKLE,
    MNIST_FILES,
    fetch,
    find_file,
    how_to_get,
    missing_files,
    open_maybe_gzip,
    require_folder,
)
from ..fileio import atomic_open
from ..memory import available_memory, format_bytes

__all__ = [
    "Dataset",
    "MnistSplits",
    "read_idx",
    "load_mnist",
    "load_book_pickle",
    "save_book_pickle",
]

IMAGE_SHAPE = (28, 28)
N_PIXELS = 28 * 28
N_CLASSES = 10
N_TRAIN_FILE = 60_000  # images in train-images-idx3-ubyte
N_TEST_FILE = 10_000  # images in t10k-images-idx3-ubyte
N_TRAINING = 50_000  # the book keeps the first 50,000 for training ...
N_VALIDATION = N_TRAIN_FILE - N_TRAINING  # ... and the last 10,000 for validation

_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_ERRORS = (OSError, EOFError, zlib.error)
# IDX magic number -> (number of dimensions, what the file holds). Only the
# two kinds MNIST uses: unsigned bytes (type code 0x08), 1-D or 3-D.
_IDX_KINDS = {0x00000801: (1, "labels"), 0x00000803: (3, "images")}


# --------------------------------------------------------------------------
# Containers


@dataclass(frozen=True, eq=False)
class Dataset:
    """Examples and their labels.

    Attributes:
        x: float array, shape ``(N, D)``; for MNIST ``D = 784`` pixels in
            ``[0, 1)``, row-major 28x28.
        y: int64 array, shape ``(N,)``; class numbers (0..9 for MNIST).

    ``len(ds)`` is ``N``; ``ds[:1000]``, ``ds[index_array]``, ``ds[mask]`` and
    ``ds[i]`` all return a Dataset (``ds[i]`` one of a single example).
    The dataclass is frozen but the arrays are not copied: treat them as
    read-only.
    """

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        try:
            x = np.asarray(self.x)
            y = np.asarray(self.y)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"Dataset needs arrays x (N, D) and y (N,) ({exc})") from None
        if x.ndim != 2:
            raise ConfigError(f"Dataset.x must have shape (N, D), got shape {x.shape}")
        if x.dtype.kind != "f":
            raise ConfigError(f"Dataset.x must be a float array, got dtype {x.dtype}")
        if y.ndim != 1:
            raise ConfigError(f"Dataset.y must have shape (N,), got shape {y.shape}")
        if y.dtype.kind not in "iu":
            raise ConfigError(f"Dataset.y must hold integer labels, got dtype {y.dtype}")
        if len(x) != len(y):
            raise ConfigError(f"Dataset has {len(x)} examples in x but {len(y)} labels in y")
        check_finite(x, "Dataset.x")
        # Frozen dataclass: assign the normalised arrays through object.
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y.astype(np.int64, copy=False))

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: Any) -> Dataset:
        if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
            if not -len(self) <= index < len(self):
                raise ConfigError(f"Dataset index {index} is out of range for {len(self)} examples")
            index = [index]  # keep the batch axis: a Dataset of one example
        try:
            x, y = self.x[index], self.y[index]
        except (IndexError, TypeError, ValueError) as exc:
            raise ConfigError(f"cannot index a Dataset with {index!r:.60}: {exc}") from None
        # Parts of a checked Dataset need no second pass over the values.
        part = object.__new__(Dataset)
        object.__setattr__(part, "x", x)
        object.__setattr__(part, "y", y)
        return part

    def astype(self, dtype: Any) -> Dataset:
        """The same examples with ``x`` as ``dtype`` (a float type); no copy if unchanged."""
        return Dataset(self.x.astype(_float_dtype(dtype), copy=False), self.y)

    def __repr__(self) -> str:
        return f"Dataset(n={len(self)}, x={self.x.dtype}{self.x.shape}, y={self.y.dtype}{self.y.shape})"


class MnistSplits(NamedTuple):
    """The book's three sets: 50,000 training, 10,000 validation, 10,000 test."""

    training: Dataset
    validation: Dataset
    test: Dataset


def _float_dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise ConfigError(f"dtype must be a float type, got {dtype!r}") from exc
    if dt.kind != "f":
        raise ConfigError(f"dtype must be a float type (float32, float64), got {dt}")
    return dt


# --------------------------------------------------------------------------
# IDX files


def _read_upto(stream: Any, n: int) -> bytes:
    """Up to ``n`` bytes from ``stream`` (fewer only at the end), read in
    chunks so that memory follows the bytes really there, not ``n``."""
    parts, left = [], n
    while left > 0:
        chunk = stream.read(min(left, 1 << 22))
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an MNIST IDX file, gzipped or raw.

    Only the two kinds MNIST uses are accepted: magic ``0x00000801`` (labels,
    uint8, shape ``(N,)``) and ``0x00000803`` (images, uint8, shape
    ``(N, rows, cols)``). The payload must hold exactly as many bytes as the
    header's dimensions say. The file is streamed: no more than the header
    declares is ever held in memory (a small gzip file that would inflate to
    gigabytes is refused as soon as it passes the declared size), and a
    header declaring more than the available memory is refused before
    reading on.

    Returns:
        A read-only uint8 array, shape ``(N,)`` or ``(N, rows, cols)``.

    Raises:
        DataError: unreadable file or not a regular file, corrupt gzip stream,
            wrong magic number, short header, truncated payload or trailing
            bytes, a size beyond the available memory; the message names the
            file.
    """
    path = path_arg(path, "read_idx: path")
    if path.exists() and not path.is_file():
        raise DataError(f"{path}: not a regular file")
    with open_maybe_gzip(path) as (stream, is_gzip):
        try:
            head = _read_upto(stream, 4)
            if len(head) < 4:
                raise DataError(f"{path}: not an IDX file: only {len(head)} bytes")
            magic = int.from_bytes(head, "big")
            if magic not in _IDX_KINDS:
                raise DataError(
                    f"{path}: not an MNIST IDX file: magic number 0x{magic:08x}, expected "
                    "0x00000801 (labels) or 0x00000803 (images)"
                )
            ndim, kind = _IDX_KINDS[magic]
            header_len = 4 + 4 * ndim
            head += _read_upto(stream, header_len - 4)
            if len(head) < header_len:
                raise DataError(
                    f"{path}: truncated: the {kind} header needs {header_len} bytes but the file has {len(head)}"
                )
            dims = tuple(int.from_bytes(head[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
            expected = math.prod(dims)
            what = f"{dims[0]} {kind}" + (f" of {dims[1]}x{dims[2]}" if ndim == 3 else "")
            available = available_memory()
            if available is not None and expected > available:
                raise DataError(f"{path}: header says {what} ({format_bytes(expected)}), more than the "
                                f"{format_bytes(available)} of memory available; not an MNIST file")
            data = _read_upto(stream, expected)
            got = len(data)
            while chunk := stream.read(1 << 20):   # count trailing bytes without keeping them
                got += len(chunk)
        except _GZIP_ERRORS as exc:
            raise DataError(f"{path}: corrupt gzip stream: {exc}") from exc
    if got != expected:
        problem = "truncated" if got < expected else f"{got - expected} trailing bytes"
        raise DataError(
            f"{path}: {problem}: header says {what} ({expected} bytes) "
            f"but the file has {got} bytes after the header"
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def _check_idx_pair(
    images: np.ndarray, labels: np.ndarray, image_path: Path, label_path: Path, n_expected: int
) -> None:
    """Check an (images, labels) pair read from IDX files; DataError naming the file."""
    if images.ndim != 3:
        raise DataError(f"{image_path}: holds labels (magic 0x00000801), expected images")
    if images.shape[1:] != IMAGE_SHAPE:
        raise DataError(
            f"{image_path}: images are {images.shape[1]}x{images.shape[2]}, expected 28x28"
        )
    if labels.ndim != 1:
        raise DataError(f"{label_path}: holds images (magic 0x00000803), expected labels")
    if len(images) != len(labels):
        raise DataError(
            f"{image_path} has {len(images)} images but {label_path} has {len(labels)} labels"
        )
    _check_labels(labels, label_path)
    if len(images) != n_expected:
        raise DataError(f"{image_path}: expected {n_expected} images, found {len(images)}")


def _check_labels(labels: np.ndarray, source: Any) -> None:
    bad = (labels < 0) | (labels >= N_CLASSES)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{source}: label {int(labels[i])} at index {i} is outside 0..9")


def _to_dataset(images: np.ndarray, labels: np.ndarray, dtype: np.dtype) -> Dataset:
    """uint8 images (N, 28, 28) and labels (N,) -> Dataset with x = byte / 256, (N, 784)."""
    x = images.reshape(len(images), N_PIXELS).astype(dtype)
    x *= 1 / 256  # a power of two: exact in any float type, same values as the book's pickle
    return Dataset(x, labels.astype(np.int64))


# --------------------------------------------------------------------------
# Loading


def load_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    dtype: Any = np.float32,
    download: bool = True,
    progress: bool = True,
    notify: Callable[[str], None] | None = None,
) -> MnistSplits:
    """Load MNIST with the book's split and scaling.

    The folder (see :func:`nndl.data.resolve_data_dir`) may hold the four IDX
    files (``train-images-idx3-ubyte[.gz]`` etc.) or the book's
    ``mnist.pkl.gz``; the IDX files win when both are there. Present files
    are checked structurally (sizes, shapes, label range), not hashed: use
    :func:`nndl.data.verify` for that.

    Args:
        data_dir: the MNIST folder; default ``$NNDL_DATA`` or the user cache.
        dtype: float type of the images.
        download: fetch missing IDX files (and nothing else) from the mirrors.
        progress: show a download progress bar on stderr.
        notify: called with a one-line message when a download starts or a
            mirror fails (see :func:`nndl.data.fetch`); nndl never prints.

    Returns:
        ``MnistSplits(training, validation, test)`` with 50,000 / 10,000 /
        10,000 examples; each ``x`` has shape ``(n, 784)`` and values
        ``byte / 256``, each ``y`` shape ``(n,)``, int64 in 0..9.

    Raises:
        DataError: the folder does not exist (only the default cache folder
            is created), files missing (with ``download=False``) or
            undownloadable, corrupt, or not the expected sizes.
        ConfigError: ``dtype`` is not a float type.
    """
    dt = _float_dtype(dtype)
    folder = require_folder(data_dir)
    missing = missing_files(folder)
    if missing:
        book = folder / BOOK_PICKLE
        if book.is_file():
            splits = load_book_pickle(book)
            for part, n in zip(splits, (N_TRAINING, N_VALIDATION, N_TEST_FILE)):
                if len(part) != n:
                    raise DataError(
                        f"{book}: expected 50000/10000/10000 examples, found "
                        f"{'/'.join(str(len(p)) for p in splits)}"
                    )
            return MnistSplits(*(part.astype(dt) for part in splits))
        if not download:
            names = ", ".join(f"{n}.gz" for n in missing)
            raise DataError(
                f"MNIST files missing from {folder}: {names}. {how_to_get(folder, missing)}"
            )
        fetch(data_dir, progress=progress, notify=notify)

    paths = {name: find_file(folder, name) for name in MNIST_FILES}
    if any(p is None for p in paths.values()):  # deleted under our feet
        raise DataError(f"MNIST files vanished from {folder} while loading")
    train_img, train_lbl, test_img, test_lbl = (paths[name] for name in MNIST_FILES)
    train_x, train_y = read_idx(train_img), read_idx(train_lbl)
    _check_idx_pair(train_x, train_y, train_img, train_lbl, N_TRAIN_FILE)
    test_x, test_y = read_idx(test_img), read_idx(test_lbl)
    _check_idx_pair(test_x, test_y, test_img, test_lbl, N_TEST_FILE)

    full = _to_dataset(train_x, train_y, dt)
    return MnistSplits(full[:N_TRAINING], full[N_TRAINING:], _to_dataset(test_x, test_y, dt))


# --------------------------------------------------------------------------
# The book's pickle


def _latin1_encode(obj: Any, encoding: str = "utf-8") -> bytes:
    """Stand-in for ``_codecs.encode`` as Python 3 protocol-2 pickles use it for bytes.

    Only ever called as ``encode(str, "latin1")``; any other use is refused.
    """
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise DataError("pickle uses _codecs.encode other than for raw array bytes")
    return obj.encode("latin1")


# NumPy's own reconstructors, whatever module this NumPy keeps them in.
_reconstruct = np.ndarray.__reduce__(np.zeros(0))[0]
_scalar = np.int64(0).__reduce__()[0]

# Kinds of the "plain numeric" dtypes a pickle may use: booleans, signed and
# unsigned integers, floats. No objects (which would let the file name
# arbitrary Python objects), strings or structured records.
_PLAIN_KINDS = "biuf"


def _refuse(what: str) -> DataError:
    return DataError(f"pickle {what}: only plain NumPy arrays and numbers are accepted")


def _check_dtype(dt: Any) -> np.dtype:
    if (not isinstance(dt, np.dtype) or dt.kind not in _PLAIN_KINDS or dt.fields is not None
            or dt.subdtype is not None):
        raise _refuse(f"uses dtype {dt!r}")
    return dt


def _safe_dtype(obj: Any, align: Any = False, copy: Any = True) -> np.dtype:
    """``numpy.dtype`` as pickles call it (``dtype('f4', False, True)``; Python 2
    wrote ``0, 1``), for plain numeric types only."""
    if not isinstance(obj, str) or align not in (0, 1) or copy not in (0, 1):
        raise _refuse(f"builds a dtype from {obj!r}")
    try:
        dt = np.dtype(obj, bool(align), bool(copy))
    except (TypeError, ValueError):
        raise _refuse(f"builds a dtype from {obj!r}") from None
    return _check_dtype(dt)


class _NDArrayName:
    """What the name ``numpy.ndarray`` stands for in a pickle: only an argument
    of :func:`_safe_reconstruct`, never something the file can call."""


def _safe_reconstruct(cls: Any, shape: Any, typecode: Any) -> np.ndarray:
    """``ndarray.__reduce__``'s first step (an empty array, filled by ``__setstate__``)."""
    if cls is not _NDArrayName or shape != (0,) or typecode not in (b"b", "b"):
        raise _refuse("reconstructs something other than a plain ndarray")
    return _reconstruct(np.ndarray, shape, typecode)


def _safe_frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """Protocol 5's array constructor (``numpy._core.numeric._frombuffer``)."""
    _check_dtype(dtype)
    if isinstance(buf, pickle.PickleBuffer):
        buf = buf.raw()
    if (not isinstance(buf, (bytes, bytearray, memoryview)) or order not in ("C", "F")
            or not isinstance(shape, tuple)
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
        raise _refuse("holds a malformed array")
    if int(np.prod(shape, dtype=object)) * dtype.itemsize != len(buf):
        raise _refuse(f"holds an array of shape {shape} with {len(buf)} bytes of data")
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order)


def _safe_scalar(dtype: Any, data: Any = None) -> Any:
    """A NumPy scalar such as ``np.int64(5)`` (what iterating over an array gives)."""
    _check_dtype(dtype)
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise _refuse("holds a malformed NumPy number")
    return _scalar(dtype, data)


# Exactly the globals that pickles of plain NumPy arrays and numbers refer
# to, each mapped to a checking stand-in. The book's Python 2 file names
# numpy.core.multiarray; NumPy 2 writes numpy._core. Mapping both avoids
# importing the deprecated numpy.core alias. Files written by the book's
# expand_mnist.py hold lists of arrays and of NumPy integers (scalar);
# protocol 5 pickles build arrays with _frombuffer.
_ALLOWED_GLOBALS = {
    **{(f"{core}.multiarray", "_reconstruct"): _safe_reconstruct for core in ("numpy.core", "numpy._core")},
    **{(f"{core}.multiarray", "scalar"): _safe_scalar for core in ("numpy.core", "numpy._core")},
    **{(f"{core}.numeric", "_frombuffer"): _safe_frombuffer for core in ("numpy.core", "numpy._core")},
    ("numpy", "ndarray"): _NDArrayName,
    ("numpy", "dtype"): _safe_dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """An Unpickler that can build NumPy arrays and nothing else.

    Pickles run code through the globals they name (``os.system`` and the
    like); refusing every global outside :data:`_ALLOWED_GLOBALS` means
    nothing in the file can be executed.
    """

    def __init__(self, file: Any, source: Path) -> None:
        # latin1: the book's file is a Python 2 pickle whose array bytes are str.
        super().__init__(file, encoding="latin1")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise DataError(
                f"refuses to load global {module}.{name}: only plain NumPy arrays and numbers "
                "are accepted"
            ) from None


def _describe_type(obj: Any) -> str:
    if isinstance(obj, (tuple, list)):
        return f"a {type(obj).__name__} of length {len(obj)}"
    return f"a {type(obj).__name__}"


def _as_array(items: Any, where: str, what: str) -> Any:
    """A list of per-example rows or labels (as the book's expand_mnist.py
    writes) stacked into one array; anything else returned as it is."""
    if not isinstance(items, list):
        return items
    if what == "x":
        first = items[0] if items else None
        for i, row in enumerate(items):
            if (type(row) is not np.ndarray or row.shape != (N_PIXELS,) or row.dtype.kind != "f"
                    or row.dtype != first.dtype):
                raise DataError(f"{where}: x[{i}] is not an image of 784 floats like x[0]")
        return np.stack(items) if items else np.zeros((0, N_PIXELS), np.float32)
    for i, label in enumerate(items):
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
            raise DataError(f"{where}: y[{i}] is not an integer label")
    return np.array(items, dtype=np.int64)


def _check_book_part(part: Any, which: str, source: Path) -> Dataset:
    """Check one ``(x, y)`` pair of the book's pickle and wrap it as a Dataset.

    x and y are NumPy arrays (``mnist.pkl.gz``), or lists of images and of
    labels (the book's ``expand_mnist.py`` writes ``[list(xs), list(ys)]``).
    """
    where = f"{source}: {which} set"
    if not (isinstance(part, (tuple, list)) and len(part) == 2):
        raise DataError(f"{where}: expected an (x, y) pair, got {_describe_type(part)}")
    x, y = _as_array(part[0], where, "x"), _as_array(part[1], where, "y")
    # type() is: subclasses (matrix, masked arrays) are not plain arrays.
    if type(x) is not np.ndarray or type(y) is not np.ndarray:
        raise DataError(f"{where}: expected two NumPy arrays, got {type(x).__name__}, {type(y).__name__}")
    if x.ndim != 2 or x.shape[1] != N_PIXELS or x.dtype.kind != "f":
        raise DataError(f"{where}: x must be a float array of shape (n, 784), got {x.dtype}{x.shape}")
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise DataError(f"{where}: y must be an integer array of shape (n,), got {y.dtype}{y.shape}")
    if len(x) != len(y):
        raise DataError(f"{where}: {len(x)} images but {len(y)} labels")
    if len(x) and not (x.min() >= 0.0 and x.max() <= 1.0):  # also catches NaN
        raise DataError(f"{where}: pixel values must lie in [0, 1]")
    _check_labels(y, where)
    return Dataset(x, y)


def load_book_pickle(path: str | os.PathLike[str]) -> MnistSplits:
    """Safely load a pickle in the format of the book's ``mnist.pkl.gz``.

    The file (gzipped or not) must hold exactly a 3-tuple (training,
    validation, test) of ``(x, y)`` 2-tuples, x float of shape ``(n, 784)``
    with values in [0, 1] and y integer of shape ``(n,)`` in 0..9. The file
    the book's ``expand_mnist.py`` writes is accepted too: its training set
    is a list ``[images, labels]`` of Python lists of 784-pixel arrays and of
    NumPy integers. The split sizes are not checked here (:func:`load_mnist`
    does for the real data).

    Unlike ``pickle.load``, this never runs code from the file: the only
    globals it may name are NumPy's array, dtype and scalar constructors,
    each replaced by a stand-in that accepts only plain numeric dtypes
    (booleans, integers, floats) and well-formed data.

    Raises:
        DataError: unreadable or corrupt file, a forbidden global, or the
            wrong structure.
    """
    path = Path(path)
    # Stream through gzip: the decompressed pickle is ~220 MB.
    with open_maybe_gzip(path) as (stream, is_gzip):
        try:
            obj = _ArrayOnlyUnpickler(stream, path).load()
        except DataError as exc:
            raise DataError(f"{path}: {exc}") from None
        except _GZIP_ERRORS as exc:
            what = "corrupt gzip stream" if is_gzip else "cannot read"
            raise DataError(f"{path}: {what}: {exc}") from exc
        except Exception as exc:  # untrusted bytes can fail inside pickle in many ways
            if is_gzip:
                # A damaged deflate stream can inflate to garbage that trips
                # pickle before gzip's CRC check: read on to name the real cause.
                try:
                    while stream.read(1 << 20):
                        pass
                except _GZIP_ERRORS as gz_exc:
                    raise DataError(f"{path}: corrupt gzip stream: {gz_exc}") from gz_exc
            raise DataError(f"{path}: not a valid pickle of NumPy arrays: {type(exc).__name__}: {exc}") from exc

    if not (isinstance(obj, (tuple, list)) and len(obj) == 3):
        raise DataError(
            f"{path}: expected a 3-tuple (training, validation, test), got {_describe_type(obj)}"
        )
    return MnistSplits(*(
        _check_book_part(part, which, path)
        for part, which in zip(obj, MnistSplits._fields)
    ))


def save_book_pickle(splits: Sequence[Dataset], path: str | os.PathLike[str]) -> Path:
    """Write ``splits`` in the book's ``mnist.pkl.gz`` format.

    The file is a gzipped protocol-2 pickle of
    ``((x_train, y_train), (x_val, y_val), (x_test, y_test))`` with x float32
    of shape ``(n, 784)`` and y int64 of shape ``(n,)``, readable by
    :func:`load_book_pickle` and by the book's ``mnist_loader`` under
    Python 3 (``pickle.load(f, encoding="latin1")``). Written to a temporary
    file first, so a crash never leaves half a file at ``path``.

    Args:
        splits: three Datasets (an :class:`MnistSplits`), each of 784 features.
        path: the file to write (gzipped whatever its name).

    Returns:
        ``path`` as a Path.
    """
    if not isinstance(splits, (tuple, list)) or len(splits) != 3 or not all(isinstance(s, Dataset) for s in splits):
        raise ConfigError("save_book_pickle needs three Datasets (training, validation, test)")
    for s, which in zip(splits, MnistSplits._fields):
        if s.x.shape[1] != N_PIXELS:
            raise ConfigError(f"{which} set has {s.x.shape[1]} features per example, expected 784")
    obj = tuple((np.ascontiguousarray(s.x, dtype=np.float32),
                 np.ascontiguousarray(s.y, dtype=np.int64)) for s in splits)
    path = Path(path)
    # The gzip header records a file name: the target's, not the temporary file's.
    with atomic_open(path) as raw, gzip.GzipFile(filename=path.name, fileobj=raw, mode="wb",
                                                  compresslevel=6) as gz:
        pickle.dump(obj, gz, protocol=2)
    return path
