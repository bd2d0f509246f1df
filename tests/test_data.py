"""Tests for nndl.data: IDX parsing, the book's split, the book's pickle, fetching.

Real MNIST comes from $NNDL_DATA or ../shared/data/mnist (beside the repo);
tests that need it are skipped when it is absent. Every error path is tested
on small files made in tmp_path; downloads go through a fake ``opener`` that
serves bytes from memory, so no test touches the network.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import shutil
import struct
import urllib.error
from pathlib import Path

import numpy as np
import platformdirs
import pytest

import nndl.data.mnist as mnist_mod
from nndl.data import (
    MIRRORS,
    MNIST_FILES,
    Dataset,
    MnistSplits,
    describe,
    fetch,
    load_book_pickle,
    load_mnist,
    read_idx,
    resolve_data_dir,
    save_book_pickle,
    verify,
)
from nndl.errors import ConfigError, DataError

NAMES = list(MNIST_FILES)  # train-images, train-labels, t10k-images, t10k-labels


def _mnist_dir() -> Path:
    env = os.environ.get("NNDL_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


MNIST_DIR = _mnist_dir()


def _real_path(name: str) -> Path | None:
    for p in (MNIST_DIR / f"{name}.gz", MNIST_DIR / name):
        if p.is_file():
            return p
    return None


needs_mnist = pytest.mark.skipif(
    any(_real_path(n) is None for n in NAMES),
    reason=f"the four MNIST IDX files are not in {MNIST_DIR} (set NNDL_DATA to their folder)",
)


def _real_gz_bytes(name: str) -> bytes:
    """The gzipped bytes of a real MNIST file (gzipping a raw copy if needed)."""
    data = _real_path(name).read_bytes()
    return data if data[:2] == b"\x1f\x8b" else gzip.compress(data, compresslevel=1)


# ---------------------------------------------------------------- helpers


def idx_bytes(arr: np.ndarray, magic: int | None = None) -> bytes:
    """The IDX encoding of a uint8 array (1-D labels or 3-D images)."""
    arr = np.asarray(arr, dtype=np.uint8)
    if magic is None:
        magic = 0x800 | arr.ndim
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return header + arr.tobytes()


def write_idx(path: Path, data: bytes, gz: bool = True) -> Path:
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def fake_mnist(folder: Path, n_train: int = 6, n_test: int = 4, *,
               train_labels: np.ndarray | None = None, gz: bool = True) -> None:
    """Write four small, well-formed IDX files (wrong counts for real MNIST)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    if train_labels is None:
        train_labels = rng.integers(0, 10, n_train)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": train_labels,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    for name, arr in arrays.items():
        write_idx(folder / f"{name}{suffix}", idx_bytes(arr), gz=gz)


def small_splits(seed: int = 0, sizes=(7, 3, 2)) -> MnistSplits:
    rng = np.random.default_rng(seed)
    return MnistSplits(*(
        Dataset(rng.integers(0, 256, (n, 784)).astype(np.float32) / 256,
                rng.integers(0, 10, n).astype(np.int64))
        for n in sizes
    ))


def assert_splits_equal(a, b) -> None:
    for da, db in zip(a, b, strict=True):
        np.testing.assert_array_equal(da.x, db.x)
        np.testing.assert_array_equal(da.y, db.y)


class FakeResponse(io.BytesIO):
    """What urlopen returns, enough for fetch: read(n), headers, context manager."""

    def __init__(self, data: bytes, on_read=None):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}
        self._on_read = on_read

    def read(self, n=-1):
        if self._on_read is not None:
            self._on_read()
        return super().read(n)


def make_opener(serve, log: list):
    """An opener for fetch: ``serve(mirror, filename)`` returns bytes or raises."""
    def opener(url, timeout=None):
        log.append(url)
        mirror, filename = url.rsplit("/", 1)
        return FakeResponse(serve(mirror + "/", filename))
    return opener


def serve_real(mirror: str, filename: str) -> bytes:
    return _real_gz_bytes(filename.removesuffix(".gz"))


def corrupted(data: bytes) -> bytes:
    """Flip bytes in the middle of a gzip stream (CRC or inflate failure)."""
    b = bytearray(data)
    mid = len(b) // 2
    b[mid:mid + 8] = bytes(x ^ 0xFF for x in b[mid:mid + 8])
    return bytes(b)


# ---------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def real_splits() -> MnistSplits:
    if any(_real_path(n) is None for n in NAMES):
        pytest.skip(f"the four MNIST IDX files are not in {MNIST_DIR} (set NNDL_DATA)")
    return load_mnist(MNIST_DIR, download=False, progress=False)


@needs_mnist
def test_real_mnist_has_the_books_split_and_scaling(real_splits):
    training, validation, test = real_splits
    assert (len(training), len(validation), len(test)) == (50_000, 10_000, 10_000)
    for ds in real_splits:
        assert ds.x.dtype == np.float32 and ds.x.shape == (len(ds), 784)
        assert ds.y.dtype == np.int64 and ds.y.shape == (len(ds),)
        assert ds.x.min() == 0.0 and ds.x.max() == 0.99609375  # 255 / 256
        assert set(np.unique(ds.y)) == set(range(10))
    assert training.y[0] == 5  # the famous first training digit
    # The official test-set label counts.
    assert np.bincount(test.y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    # Validation is the last 10,000 of the training file, in order.
    raw_labels = read_idx(_real_path("train-labels-idx1-ubyte"))
    np.testing.assert_array_equal(validation.y, raw_labels[50_000:])
    np.testing.assert_array_equal(training.y, raw_labels[:50_000])
    # Pixels are exactly byte / 256.
    raw_test = read_idx(_real_path("t10k-images-idx3-ubyte"))
    np.testing.assert_array_equal(test.x * 256, raw_test.reshape(-1, 784))


@needs_mnist
def test_real_mnist_float64(real_splits):
    splits = load_mnist(MNIST_DIR, dtype=np.float64, download=False)
    assert splits.training.x.dtype == np.float64
    np.testing.assert_array_equal(splits.test.x, real_splits.test.x.astype(np.float64))


@needs_mnist
def test_verify_real_files_all_ok():
    statuses = verify(MNIST_DIR)
    assert [s.name for s in statuses] == NAMES
    assert all(s.present and s.ok for s in statuses), statuses
    report = describe(MNIST_DIR)
    assert report.count("verified OK") == 4 and "MISMATCH" not in report


@needs_mnist
def test_gz_and_raw_read_the_same(tmp_path, real_splits):
    # Raw copies of all four files load to the same splits.
    for name in NAMES:
        (tmp_path / name).write_bytes(gzip.decompress(_real_gz_bytes(name)))
    assert_splits_equal(load_mnist(tmp_path, download=False), real_splits)
    # gzip is detected by its magic bytes, not the name.
    labels = tmp_path / "t10k-labels-idx1-ubyte"
    disguised = tmp_path / "labels.bin"
    disguised.write_bytes(_real_gz_bytes("t10k-labels-idx1-ubyte"))
    np.testing.assert_array_equal(read_idx(disguised), read_idx(labels))
    assert verify(tmp_path)[3].ok


def test_read_idx_small_files(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([3, 1, 4], dtype=np.uint8)
    for gz in (True, False):
        img = read_idx(write_idx(tmp_path / f"i{gz}", idx_bytes(images), gz=gz))
        lbl = read_idx(write_idx(tmp_path / f"l{gz}", idx_bytes(labels), gz=gz))
        assert img.dtype == np.uint8 and img.shape == (2, 3, 4)
        np.testing.assert_array_equal(img, images)
        np.testing.assert_array_equal(lbl, labels)


# ---------------------------------------------------------------- IDX errors


def test_read_idx_wrong_magic(tmp_path):
    path = write_idx(tmp_path / "x.gz", idx_bytes(np.zeros(5), magic=0x00000901))
    with pytest.raises(DataError, match=r"x\.gz: not an MNIST IDX file: magic number 0x00000901"):
        read_idx(path)


def test_read_idx_truncated_payload(tmp_path):
    data = idx_bytes(np.zeros((3, 28, 28)))[:-100]
    path = write_idx(tmp_path / "train-images-idx3-ubyte.gz", data)
    with pytest.raises(DataError) as err:
        read_idx(path)
    msg = str(err.value)
    assert "train-images-idx3-ubyte.gz: truncated" in msg
    assert "3 images of 28x28 (2352 bytes)" in msg and "2252" in msg


def test_read_idx_truncated_header(tmp_path):
    path = write_idx(tmp_path / "h", idx_bytes(np.zeros((3, 28, 28)))[:10], gz=False)
    with pytest.raises(DataError, match="h: truncated"):
        read_idx(path)


def test_read_idx_trailing_bytes(tmp_path):
    path = write_idx(tmp_path / "labels", idx_bytes(np.zeros(4)) + b"\x00\x01", gz=False)
    with pytest.raises(DataError, match=r"labels: 2 trailing bytes: header says 4 labels \(4 bytes\)"):
        read_idx(path)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_read_idx_corrupt_gzip(tmp_path, damage):
    good = gzip.compress(idx_bytes(np.arange(3000) % 10))
    bad = good[: len(good) // 2] if damage == "truncate" else corrupted(good)
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(bad)
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: corrupt gzip stream"):
        read_idx(path)
    assert verify(tmp_path)[3].ok is False


def test_load_mnist_label_out_of_range(tmp_path):
    fake_mnist(tmp_path, n_train=6, train_labels=np.array([1, 2, 3, 10, 4, 5]))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: label 10 at index 3 is outside 0\.\.9"):
        load_mnist(tmp_path, download=False)


def test_load_mnist_image_label_count_mismatch(tmp_path):
    fake_mnist(tmp_path, n_train=6, train_labels=np.arange(5))
    with pytest.raises(DataError, match="has 6 images but .*train-labels-idx1-ubyte.gz has 5 labels"):
        load_mnist(tmp_path, download=False)


def test_load_mnist_wrong_image_count(tmp_path):
    fake_mnist(tmp_path, gz=False)  # raw files work too; 6 is not 60,000
    with pytest.raises(DataError, match="train-images-idx3-ubyte: expected 60000 images, found 6"):
        load_mnist(tmp_path, download=False)


def test_load_mnist_swapped_files(tmp_path):
    fake_mnist(tmp_path)
    imgs, lbls = tmp_path / "t10k-images-idx3-ubyte.gz", tmp_path / "t10k-labels-idx1-ubyte.gz"
    img_bytes, lbl_bytes = imgs.read_bytes(), lbls.read_bytes()
    imgs.write_bytes(lbl_bytes), lbls.write_bytes(img_bytes)
    # The training pair fails first (6 is not 60,000), so check the test pair directly.
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz: holds labels"):
        mnist_mod._check_idx_pair(read_idx(imgs), read_idx(lbls), imgs, lbls, 4)


def test_load_mnist_missing_files_without_download(tmp_path, monkeypatch):
    fake_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    monkeypatch.setattr(mnist_mod, "fetch", pytest.fail)  # download=False must not fetch
    with pytest.raises(DataError) as err:
        load_mnist(tmp_path, download=False)
    msg = str(err.value)
    assert "train-labels-idx1-ubyte.gz" in msg and "t10k-images-idx3-ubyte.gz" in msg
    assert msg.startswith(f"MNIST files missing from {tmp_path}: "
                          "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz.")
    assert str(tmp_path) in msg and "nndl data --fetch" in msg and "NNDL_DATA" in msg


def test_load_mnist_rejects_non_float_dtype(tmp_path):
    with pytest.raises(ConfigError, match="float"):
        load_mnist(tmp_path, dtype=np.int32, download=False)


@needs_mnist
def test_load_mnist_no_network_when_all_present(monkeypatch, real_splits):
    monkeypatch.setattr(mnist_mod, "fetch", pytest.fail)
    load_mnist(MNIST_DIR, download=True)


@needs_mnist
def test_load_mnist_fetches_only_missing_files(tmp_path, monkeypatch, real_splits):
    for name in NAMES[:3]:
        shutil.copy(_real_path(name), tmp_path / _real_path(name).name)
    log: list[str] = []
    real_fetch = mnist_mod.fetch
    monkeypatch.setattr(mnist_mod, "fetch", lambda folder, progress, notify: real_fetch(
        folder, progress=progress, notify=notify, opener=make_opener(serve_real, log)))
    splits = load_mnist(tmp_path, download=True, progress=False)
    assert log == [MIRRORS[0] + "t10k-labels-idx1-ubyte.gz"]
    assert_splits_equal(splits, real_splits)


# ---------------------------------------------------------------- Dataset


def test_dataset_validates_and_slices():
    ds = small_splits().training
    assert len(ds) == 7
    assert isinstance(ds[:3], Dataset) and len(ds[:3]) == 3
    assert len(ds[np.array([0, 2])]) == 2 and len(ds[ds.y >= 0]) == 7
    one = ds[-1]
    assert one.x.shape == (1, 784) and one.y[0] == ds.y[-1]
    assert ds.astype(np.float64).x.dtype == np.float64
    assert ds.astype(np.float32).x is ds.x  # no copy when unchanged
    assert "n=7" in repr(ds)
    with pytest.raises(ConfigError, match=r"\(N, D\)"):
        Dataset(np.zeros((2, 28, 28)), np.zeros(2, int))
    with pytest.raises(ConfigError, match="3 examples in x but 2 labels"):
        Dataset(np.zeros((3, 784)), np.zeros(2, int))
    with pytest.raises(ConfigError, match="integer"):
        Dataset(np.zeros((2, 784)), np.zeros(2))
    with pytest.raises(ConfigError, match="float"):
        ds.astype(np.uint8)


# ---------------------------------------------------------------- book pickle


def test_book_pickle_round_trip(tmp_path):
    splits = small_splits()
    path = save_book_pickle(splits, tmp_path / "mnist.pkl.gz")
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    assert [p.name for p in tmp_path.iterdir()] == ["mnist.pkl.gz"]  # no temp file left
    loaded = load_book_pickle(path)
    assert isinstance(loaded, MnistSplits)
    assert_splits_equal(loaded, splits)
    assert loaded.training.x.dtype == np.float32 and loaded.training.y.dtype == np.int64
    # The format the book's loader expects: a plain 3-tuple of (x, y) pairs.
    with gzip.open(path) as f:
        raw = pickle.load(f, encoding="latin1")
    assert type(raw) is tuple and len(raw) == 3 and all(type(p) is tuple for p in raw)


def py2_book_pickle(splits) -> bytes:
    """Protocol-2 opcodes as Python 2's cPickle wrote the book's mnist.pkl.gz.

    Array bytes are Python 2 str (BINSTRING), globals name numpy.core, and
    there is no memo: the format a Python 3 writer cannot produce.
    """
    def array(a: np.ndarray) -> bytes:
        code = {np.dtype(np.float32): b"f4", np.dtype(np.int64): b"i8"}[a.dtype]
        shape = b"".join(b"J" + struct.pack("<i", d) for d in a.shape) + {1: b"\x85", 2: b"\x86"}[a.ndim]
        dtype = (b"cnumpy\ndtype\nU\x02" + code + b"K\x00K\x01\x87R"
                 b"(K\x03U\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
        data = np.ascontiguousarray(a).tobytes()
        return (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R"
                b"(K\x01" + shape + dtype + b"\x89T" + struct.pack("<I", len(data)) + data + b"tb")
    body = b"".join(array(d.x) + array(d.y) + b"\x86" for d in splits)
    return b"\x80\x02" + body + b"\x87."


def test_book_pickle_python2_format(tmp_path):
    splits = small_splits(seed=1)
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(gzip.compress(py2_book_pickle(splits)))
    assert_splits_equal(load_book_pickle(path), splits)
    raw = tmp_path / "mnist.pkl"  # not gzipped: also accepted
    raw.write_bytes(py2_book_pickle(splits))
    assert_splits_equal(load_book_pickle(raw), splits)


class _Evil:
    """Unpickling this calls ``func(arg)``: what a malicious mnist.pkl.gz would do."""

    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return (self.func, (self.arg,))


@pytest.mark.parametrize("kind", ["system", "exec", "nested"])
def test_book_pickle_refuses_code(tmp_path, kind):
    marker = tmp_path / "pwned"
    if kind == "exec":
        payload = _Evil(exec, f"open({str(marker)!r}, 'w').close()")
    else:
        payload = _Evil(os.system, f"echo pwned > '{marker}'")
    if kind == "nested":  # hidden inside an otherwise well-formed file
        s = small_splits()
        payload = ((s.training.x, s.training.y), (s.validation.x, payload), (s.test.x, s.test.y))
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(gzip.compress(pickle.dumps(payload, protocol=2)))
    with pytest.raises(DataError, match=r"refuses to load global \S+\.(system|exec): only plain NumPy arrays"):
        load_book_pickle(path)
    assert not marker.exists()


def _parts(change=None):
    """The (x, y) pairs of small splits as a tuple, with ``change(parts)`` applied first."""
    parts = [(d.x, d.y) for d in small_splits()]
    if change is not None:
        change(parts)
    return tuple(parts)


def _set(i, x=None, y=None):
    def change(parts):
        parts[i] = (parts[i][0] if x is None else x(parts[i][0]),
                    parts[i][1] if y is None else y(parts[i][1]))
    return change


@pytest.mark.parametrize("make, match", [
    (lambda: "not a tuple", "expected a 3-tuple .* got a str"),
    (lambda: _parts()[:2], "expected a 3-tuple .* got a tuple of length 2"),
    (lambda: list(_parts())[:1], "expected a 3-tuple .* got a list of length 1"),
    (lambda: _parts(lambda p: p.__setitem__(0, list(p[0]) * 2)),
     r"training set: expected an \(x, y\) pair, got a list of length 4"),
    (lambda: _parts(lambda p: p.__setitem__(0, [list(p[0][0]), list(p[0][1][:-1]) + [True]])),
     r"training set: y\[\d+\] is not an integer label"),
    (lambda: _parts(lambda p: p.__setitem__(0, [list(p[0][0][:-1]) + [p[0][0][0, :5]], p[0][1]])),
     r"training set: x\[\d+\] is not an image of 784 floats"),
    (lambda: _parts(_set(1, x=lambda x: x.reshape(-1, 28, 28))),
     r"validation set: x must be a float array of shape \(n, 784\)"),
    (lambda: _parts(_set(0, x=lambda x: (x * 256).astype(np.uint8))), "training set: x must be a float"),
    (lambda: _parts(_set(2, y=lambda y: y.astype(np.float32))), "test set: y must be an integer array"),
    (lambda: _parts(_set(2, y=lambda y: np.r_[12, y[1:]])), "label 12 at index 0 is outside 0..9"),
    (lambda: _parts(_set(1, y=lambda y: y[:2])), "3 images but 2 labels"),
    (lambda: _parts(_set(0, x=lambda x: x * 256)), r"pixel values must lie in \[0, 1\]"),
])
def test_book_pickle_wrong_structure(tmp_path, make, match):
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(gzip.compress(pickle.dumps(make(), protocol=2)))
    with pytest.raises(DataError, match=match):
        load_book_pickle(path)


def test_book_pickle_garbage(tmp_path):
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(b"this is not a pickle")
    with pytest.raises(DataError, match="not a valid pickle"):
        load_book_pickle(path)
    path.write_bytes(corrupted(gzip.compress(pickle.dumps(tuple(range(5000)), protocol=2))))
    with pytest.raises(DataError, match="corrupt gzip stream"):
        load_book_pickle(path)


def test_load_mnist_from_book_pickle(tmp_path, monkeypatch):
    splits = small_splits(sizes=(5, 3, 2))
    save_book_pickle(splits, tmp_path / "mnist.pkl.gz")
    with pytest.raises(DataError, match="expected 50000/10000/10000 examples, found 5/3/2"):
        load_mnist(tmp_path, download=False)
    # With the sizes the book's file has, the pickle stands in for the IDX files.
    monkeypatch.setattr(mnist_mod, "N_TRAINING", 5)
    monkeypatch.setattr(mnist_mod, "N_VALIDATION", 3)
    monkeypatch.setattr(mnist_mod, "N_TEST_FILE", 2)
    loaded = load_mnist(tmp_path, dtype=np.float64, download=False)
    assert loaded.training.x.dtype == np.float64
    assert_splits_equal(loaded, splits)


# ---------------------------------------------------------------- fetch


@needs_mnist
def test_fetch_lands_verified_files_atomically(tmp_path):
    folder = tmp_path / "new" / "mnist"
    folder.mkdir(parents=True)  # fetch creates only the default cache folder
    seen_partial = []

    def serve(mirror, filename):
        target = folder / filename

        def check():  # while bytes arrive, only a hidden temp file exists
            assert not target.exists()
            seen_partial.append([p.name for p in folder.iterdir() if ".nndl-tmp-" in p.name])
        return FakeResponse(_real_gz_bytes(filename.removesuffix(".gz")), on_read=check)

    log: list[str] = []

    def opener(url, timeout=None):
        log.append(url)
        mirror, filename = url.rsplit("/", 1)
        return serve(mirror + "/", filename)

    got = fetch(folder, progress=False, opener=opener)
    assert [p.name for p in got] == [f"{n}.gz" for n in NAMES]
    assert log == [f"{MIRRORS[0]}{n}.gz" for n in NAMES]
    assert seen_partial and all(len(parts) == 1 for parts in seen_partial)
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{n}.gz" for n in NAMES)
    assert all(s.ok for s in verify(folder))
    # Nothing missing: nothing fetched, no network.
    assert fetch(folder, opener=pytest.fail) == []


@needs_mnist
def test_fetch_bad_mirror_then_good_one(tmp_path):
    for name in NAMES[:3]:
        shutil.copy(_real_path(name), tmp_path / _real_path(name).name)
    log: list[str] = []

    def serve(mirror, filename):
        good = _real_gz_bytes(filename.removesuffix(".gz"))
        if mirror == "https://bad.example/":
            return corrupted(good)
        if mirror == "https://wrong.example/":  # valid gzip, wrong content
            return gzip.compress(gzip.decompress(good)[:-1] + b"\x07")
        return good

    mirrors = ["https://bad.example/", "https://wrong.example/", "https://good.example/"]
    fetch(tmp_path, mirrors=mirrors, progress=False, opener=make_opener(serve, log))
    assert log == [f"{m}t10k-labels-idx1-ubyte.gz" for m in mirrors]
    assert verify(tmp_path)[3].ok
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_fetch_all_mirrors_fail(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()

    def serve(mirror, filename):
        if mirror == "https://corrupt.example/":
            return b"\x1f\x8b" + b"garbage" * 100
        if mirror == "https://html.example/":
            return b"<html>Forbidden</html>"
        if mirror == "https://404.example/":
            raise urllib.error.HTTPError(mirror + filename, 404, "Not Found", {}, None)
        raise urllib.error.URLError("Name or service not known")

    mirrors = ["https://corrupt.example/", "https://html.example/",
               "https://404.example/", "https://offline.example/"]
    with pytest.raises(DataError) as err:
        fetch(folder, mirrors=mirrors, progress=False, opener=make_opener(serve, []))
    msg = str(err.value)
    for m in mirrors:
        assert m in msg
    assert "corrupt gzip" in msg and "not a gzip file" in msg
    assert "HTTP 404" in msg and "Name or service not known" in msg
    for name in NAMES:
        assert f"{name}.gz" in msg  # every file is still missing
    assert f"into {folder}" in msg and "NNDL_DATA" in msg
    assert list(folder.iterdir()) == []  # no partial or temporary file left


def test_fetch_uses_progress_bar_on_stderr(tmp_path, capsys):
    # progress=True must not break anything (bar on stderr, nothing on stdout).
    with pytest.raises(DataError):
        fetch(tmp_path, mirrors=["https://x.example/"], progress=True,
              opener=make_opener(lambda m, f: b"\x1f\x8b junk", []))
    assert capsys.readouterr().out == ""


# ---------------------------------------------------------------- location and report


def test_resolve_data_dir_precedence(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setattr(platformdirs, "user_cache_dir", lambda appname: str(cache))
    monkeypatch.delenv("NNDL_DATA", raising=False)
    assert resolve_data_dir() == cache / "mnist"
    monkeypatch.setenv("NNDL_DATA", str(tmp_path / "env"))
    assert resolve_data_dir() == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir(str(tmp_path / "arg")) == tmp_path / "arg"
    monkeypatch.setenv("NNDL_DATA", "")  # empty means unset
    assert resolve_data_dir() == cache / "mnist"


def test_describe_reports_source_and_state(tmp_path, monkeypatch):
    fake_mnist(tmp_path)  # well-formed but not the pinned content
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv("NNDL_DATA", str(tmp_path))
    report = describe()
    assert str(tmp_path) in report and "NNDL_DATA" in report
    assert "t10k-labels-idx1-ubyte.gz" in report and "missing" in report
    assert report.count("MISMATCH") == 3
    assert "nndl data --fetch" in report
    statuses = verify()
    assert statuses[3] == (NAMES[3], None, False, None, "missing")
    assert statuses[0].present and statuses[0].ok is False
    assert "given as an argument" in describe(tmp_path)
    assert "does not exist" in describe(tmp_path / "nowhere")
