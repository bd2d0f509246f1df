"""Data faults: a mistyped folder is reported (never created), a stalled
network is noticed at once and given up on in seconds, hostile IDX files
cannot make the loader allocate what they declare."""

from __future__ import annotations

import gzip
import socket
import threading
import time
import urllib.error
from pathlib import Path

import pytest

import nndl.data.download as dl
import nndl.data.mnist as mnist_mod
from nndl import cli
from nndl.data import fetch, load_mnist, read_idx
from nndl.errors import DataError
from helpers import peak_mb

NAMES = list(dl.MNIST_FILES)


# -- no folder from a mistyped path ---------------------------------------------------

def test_a_mistyped_data_dir_is_reported_not_created(tmp_path, monkeypatch):
    typo = tmp_path / "mnsit"
    message = (f"the MNIST folder {typo} (given as an argument) does not exist: check the path, or create "
               "the folder first (nndl creates only its default cache folder by itself)")
    for call in (lambda: load_mnist(typo), lambda: fetch(typo, opener=pytest.fail)):
        with pytest.raises(DataError) as e:
            call()
        assert str(e.value) == message
    monkeypatch.setenv("NNDL_DATA", str(typo))
    with pytest.raises(DataError, match=r"\(from the NNDL_DATA environment variable\) does not exist"):
        load_mnist(download=True)
    assert not typo.exists()


def test_a_file_where_the_folder_should_be(tmp_path):
    (tmp_path / "mnist").write_text("not a folder")
    with pytest.raises(DataError, match="mnist \\(given as an argument\\) is not a folder"):
        load_mnist(tmp_path / "mnist")


def test_only_the_default_cache_folder_is_created(tmp_path, monkeypatch):
    monkeypatch.delenv("NNDL_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cache = dl.resolve_data_dir()
    assert cache == tmp_path / "cache" / "nndl" / "mnist" and not cache.exists()

    def offline(url, timeout):
        raise urllib.error.URLError("Name or service not known")

    with pytest.raises(DataError, match="could not download"):
        fetch(opener=offline, progress=False)
    assert cache.is_dir() and list(cache.iterdir()) == []


@pytest.mark.parametrize("argv", [["train", "--epochs", "1"], ["data", "--fetch"], ["evaluate", "net.npz"]])
def test_cli_typo_in_data_dir(tmp_path, capsys, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    if argv[0] == "evaluate":
        import nndl
        nndl.save(nndl.Network.from_sizes([784, 10], rng=0), tmp_path / "net.npz")
    typo = tmp_path / "data-drr"
    code = cli.main([*argv, "--data-dir", str(typo)])
    out, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in err
    assert err.startswith(f"nndl: error: the MNIST folder {typo} (given as an argument) does not exist")
    assert not typo.exists()


# -- a stalled network ------------------------------------------------------------------

@pytest.fixture
def stalled_server():
    """A real HTTP port on 127.0.0.1 that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held, stop = [], threading.Event()

    def accept():
        server.settimeout(0.05)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_the_default_timeout_is_short_and_is_used(tmp_path):
    assert dl.CONNECT_TIMEOUT_S <= 10
    seen = []

    def opener(url, timeout):
        seen.append(timeout)
        raise urllib.error.URLError("offline")

    with pytest.raises(DataError):
        fetch(tmp_path, mirrors=["http://a/", "http://b/"], opener=opener, progress=False)
    assert seen == [dl.CONNECT_TIMEOUT_S] * 2


def test_a_stalled_mirror_is_given_up_in_seconds_with_notices(tmp_path, monkeypatch, stalled_server):
    monkeypatch.setattr(dl, "CONNECT_TIMEOUT_S", 0.3)
    notices = []
    t0 = time.perf_counter()
    with pytest.raises(DataError) as e:
        fetch(tmp_path, mirrors=[stalled_server, stalled_server + "b/"], progress=False, notify=notices.append)
    assert time.perf_counter() - t0 < 5
    assert notices == [
        f"downloading {NAMES[0]}.gz from {stalled_server}",
        f"{stalled_server} failed (no answer within 0.3 s); trying {stalled_server}b/",
        f"downloading {NAMES[0]}.gz from {stalled_server}b/",
    ]
    assert str(e.value).count("no answer within 0.3 s") == 2
    assert list(tmp_path.iterdir()) == []                   # no temporary file left


def test_cli_prints_the_download_notice_first(tmp_path, capsys, monkeypatch, stalled_server):
    monkeypatch.setattr(dl, "CONNECT_TIMEOUT_S", 0.2)
    monkeypatch.setattr(dl, "MIRRORS", [stalled_server])
    code = cli.main(["data", "--fetch", "--data-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    # what a terminal shows: tqdm's bar redraws itself after \r and is blanked at the end
    lines = [line.split("\r")[-1] for line in err.split("\n")]
    assert code == 1 and out == ""
    assert lines[0] == f"nndl: downloading {NAMES[0]}.gz from {stalled_server}"
    assert lines[1] == f"nndl: error: could not download {NAMES[0]}.gz from any mirror:"
    assert lines[2] == f"  {stalled_server}: no answer within 0.2 s"


def test_the_progress_bar_is_shown_before_connecting(tmp_path, capsys, monkeypatch):
    def opener(url, timeout):
        shown = capsys.readouterr().err                     # what the user sees while connecting
        assert f"downloading {NAMES[0]}.gz" in shown
        raise urllib.error.URLError("offline")

    with pytest.raises(DataError):
        fetch(tmp_path, mirrors=["http://x/"], opener=opener, progress=True)


# -- hostile IDX files --------------------------------------------------------------------



def test_a_gzip_bomb_idx_file_is_refused_in_bounded_memory(tmp_path):
    """10 labels declared, 100 MB of zeros after them, 100 kB on disk."""
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write((0x801).to_bytes(4, "big") + (10).to_bytes(4, "big") + bytes(10))
        chunk = bytes(2**20)
        for _ in range(100):
            f.write(chunk)
    assert path.stat().st_size < 2**20

    def read():
        with pytest.raises(DataError, match=r"104857600 trailing bytes: header says 10 labels"):
            read_idx(path)
    assert peak_mb(read) < 20


def test_an_idx_header_declaring_more_than_memory(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes((0x803).to_bytes(4, "big") + (2**32 - 1).to_bytes(4, "big") + (2**16 - 1).to_bytes(4, "big") * 2)
    with pytest.raises(DataError, match=r"header says 4294967295 images of 65535x65535 \(18446 PB\), more than "
                                        r"the .* of memory available; not an MNIST file"):
        read_idx(path)


def test_an_idx_path_that_is_a_device():
    with pytest.raises(DataError, match="^/dev/zero: not a regular file$"):
        read_idx("/dev/zero")
