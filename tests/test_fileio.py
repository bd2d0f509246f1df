"""Every file nndl writes goes through nndl.fileio: all or nothing, umask
modes, symlinks written through, litter of killed saves cleaned up, errors
that name the user's path. Real files, real processes, real signals."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

import nndl
from nndl import History, Network
from nndl.data import Dataset, MnistSplits, load_book_pickle, save_book_pickle
from nndl.errors import OutputError
from nndl.fileio import (STALE_AFTER_S, TEMP_MARK, atomic_open, atomic_write_text, check_writable,
                         remove_stale_temps)

from helpers import as_nobody

REPO = Path(__file__).resolve().parents[1]


def _net(seed=0):
    return Network.from_sizes([6, 5, 3], cost="cross-entropy", rng=seed, dtype="float64")


def _splits():
    rng = np.random.default_rng(0)
    return MnistSplits(*(Dataset(rng.integers(0, 256, (n, 784)).astype(np.float32) / 256,
                                 rng.integers(0, 10, n)) for n in (6, 3, 3)))


def _history():
    h = History()
    h.append({"epoch_seconds": 0.5, "test_accuracy": 0.9})
    return h


# Each writer of the package, as (file name, write(path)).
WRITERS = {
    "model .npz": ("net.npz", lambda p: nndl.save(_net(), p)),
    "model .json": ("net.json", lambda p: nndl.save(_net(), p)),
    "history": ("history.json", lambda p: _history().to_json(p)),
    "book pickle": ("mnist.pkl.gz", lambda p: save_book_pickle(_splits(), p)),
}


def _listing(folder):
    return sorted(os.listdir(folder))


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield lambda m: os.umask(m)
    os.umask(old)


@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_files_get_the_umask_mode(tmp_path, umask, writer, mask, mode):
    name, write = WRITERS[writer]
    umask(mask)
    write(tmp_path / name)
    assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == mode
    assert _listing(tmp_path) == [name]


@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_replaced_file_keeps_its_mode(tmp_path, umask, writer):
    name, write = WRITERS[writer]
    path = tmp_path / name
    write(path)
    os.chmod(path, 0o640)
    write(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_symlink_is_written_through(tmp_path, writer):
    name, write = WRITERS[writer]
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    target = real_dir / name
    target.write_bytes(b"old")
    link = tmp_path / name
    link.symlink_to(target)
    write(link)
    assert link.is_symlink() and os.readlink(link) == str(target)     # the link stays a link ...
    assert target.read_bytes() != b"old"                               # ... and its target was replaced
    assert _listing(tmp_path) == sorted([name, "real"]) and _listing(real_dir) == [name]
    if name.endswith(".npz") or name.endswith("net.json"):
        x = np.random.default_rng(1).random((4, 6))
        assert np.array_equal(nndl.load(link).feedforward(x), _net().feedforward(x))
    elif name.endswith(".pkl.gz"):
        assert np.array_equal(load_book_pickle(link).test.y, _splits().test.y)


def test_a_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "h.json"
    link.symlink_to(tmp_path / "elsewhere.json")
    _history().to_json(link)
    assert link.is_symlink() and History.from_json(tmp_path / "elsewhere.json").epochs == 1


KILLED_SAVE = """
import sys, time
from nndl.fileio import atomic_open
with atomic_open(sys.argv[1]) as f:
    f.write(b"half a model" * 100_000)
    f.flush()
    print("writing", flush=True)
    time.sleep(60)
"""


def test_sigkill_during_a_save_keeps_the_old_file_and_the_next_save_cleans_up(tmp_path):
    path = tmp_path / "model.npz"
    nndl.save(_net(0), path)
    before = path.read_bytes()
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    proc = subprocess.Popen([sys.executable, "-c", KILLED_SAVE, str(path)], stdout=subprocess.PIPE,
                            text=True, env=env)
    assert proc.stdout.readline() == "writing\n"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    leftovers = [n for n in _listing(tmp_path) if n != "model.npz"]
    assert len(leftovers) == 1 and leftovers[0].startswith(f".model.npz{TEMP_MARK}{proc.pid}-")
    assert (tmp_path / leftovers[0]).stat().st_size == 1_200_000     # what the killed save wrote
    assert path.read_bytes() == before                                  # the old model is intact

    nndl.save(_net(1), path)                                            # the next save to that path
    assert _listing(tmp_path) == ["model.npz"]                          # ... removed the litter
    x = np.random.default_rng(0).random((4, 6))
    assert np.array_equal(nndl.load(path).feedforward(x), _net(1).feedforward(x))


def test_temp_files_of_running_saves_are_kept_unless_stale(tmp_path):
    path = tmp_path / "h.json"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".h.json{TEMP_MARK}{sleeper.pid}-0000aaaa"    # a save still running
        own = tmp_path / f".h.json{TEMP_MARK}{os.getpid()}-0000bbbb"     # another save in this process
        old = tmp_path / f".h.json{TEMP_MARK}{sleeper.pid}-0000cccc"     # untouched for too long
        other = tmp_path / f".other.json{TEMP_MARK}1-0000dddd"            # another target's
        for p in (live, own, old, other):
            p.write_bytes(b"partial")
        os.utime(old, (time.time() - STALE_AFTER_S - 10,) * 2)
        assert remove_stale_temps(path) == [old]
        _history().to_json(path)
        assert _listing(tmp_path) == sorted(["h.json", live.name, own.name, other.name])
    finally:
        sleeper.kill()
        sleeper.wait()
    _history().to_json(path)                     # the sleeper is gone: its file is stale now
    assert _listing(tmp_path) == sorted(["h.json", own.name, other.name])


def test_an_error_inside_the_block_leaves_the_old_file(tmp_path):
    path = tmp_path / "h.json"
    path.write_text("old")
    with pytest.raises(ZeroDivisionError):
        with atomic_open(path, "w") as f:
            f.write("new and half")
            1 / 0
    assert path.read_text() == "old" and _listing(tmp_path) == ["h.json"]


# -- failures name the user's path and change nothing --------------------------------

def test_missing_folders_are_made_and_unmade_on_failure(tmp_path):
    path = tmp_path / "runs" / "a" / "net.npz"
    nndl.save(_net(), path)
    assert _listing(tmp_path / "runs" / "a") == ["net.npz"]
    with pytest.raises(ZeroDivisionError):
        with atomic_open(tmp_path / "new" / "deeper" / "h.json", "w") as f:
            f.write("half")
            1 / 0
    assert _listing(tmp_path) == ["runs"]                   # the folders made for it are gone again
    with pytest.raises(OutputError) as e:
        atomic_write_text(tmp_path / "typo" / "h.json", "x", parents=False)
    assert str(e.value) == f"cannot write {tmp_path / 'typo' / 'h.json'}: the folder {tmp_path / 'typo'} does not exist"
    assert _listing(tmp_path) == ["runs"]


def test_a_file_on_the_way_or_a_folder_at_the_path(tmp_path):
    (tmp_path / "notes.txt").write_text("a file")
    with pytest.raises(OutputError) as e:
        nndl.save(_net(), tmp_path / "notes.txt" / "sub" / "net.npz")
    assert str(e.value) == (f"cannot write {tmp_path / 'notes.txt' / 'sub' / 'net.npz'}: "
                            f"{tmp_path / 'notes.txt'} is not a folder")
    (tmp_path / "runs").mkdir()
    with pytest.raises(OutputError, match=f"cannot write {tmp_path / 'runs'}: it is a folder"):
        _history().to_json(tmp_path / "runs")
    assert _listing(tmp_path) == ["notes.txt", "runs"] and _listing(tmp_path / "runs") == []


FILL_THE_DISK = """
import resource, signal, sys
import numpy as np
import nndl
from nndl.errors import OutputError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)      # let write() fail with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
net = nndl.Network.from_sizes([100, 30, 10], rng=1, dtype="float64")   # 3,340 parameters: 27 kB
try:
    nndl.save(net, sys.argv[1])
except OutputError as e:
    print(e)
"""


@pytest.mark.parametrize("name", ["net.npz", "net.json"])
def test_a_full_disk_leaves_the_old_file_intact(tmp_path, name):
    path = tmp_path / name
    nndl.save(_net(), path)                        # a small good model, under the limit
    before = path.read_bytes()
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    out = subprocess.run([sys.executable, "-c", FILL_THE_DISK, str(path)], capture_output=True,
                         text=True, env=env, check=True).stdout.strip()
    assert out == f"cannot write {path}: File too large; the existing file is unchanged"
    assert TEMP_MARK not in out
    assert path.read_bytes() == before and _listing(tmp_path) == [name]


@pytest.fixture
def read_only_folder():
    """A folder that an ordinary user cannot write into, with a good model in it."""
    base = Path(tempfile.mkdtemp(dir="/tmp"))
    os.chmod(base, 0o755)                          # reachable by the unprivileged child
    folder = base / "ro"
    folder.mkdir()
    nndl.save(_net(), folder / "net.npz")
    os.chmod(folder / "net.npz", 0o644)
    os.chmod(folder, 0o555)
    yield folder
    os.chmod(folder, 0o755)
    shutil.rmtree(base)


@pytest.mark.parametrize("call", ["save", "check_writable"])
@pytest.mark.parametrize("name", ["net.npz", "sub/net.npz"])
def test_a_read_only_folder_is_refused_naming_the_path(read_only_folder, call, name):
    path = read_only_folder / name
    before = (read_only_folder / "net.npz").read_bytes()
    fn = {"save": lambda: str(nndl.save(_net(5), path)),
          "check_writable": lambda: str(check_writable(path, (".npz",)))}[call]
    kind, message = as_nobody(fn)
    assert kind == "error"
    assert message == (f"OutputError: cannot write {path}: the folder {read_only_folder} is not writable "
                       "(Permission denied)")
    assert (read_only_folder / "net.npz").read_bytes() == before and _listing(read_only_folder) == ["net.npz"]


def test_check_writable(tmp_path):
    good = tmp_path / "net.npz"
    assert check_writable(good, (".npz", ".json")) == good
    assert _listing(tmp_path) == []                              # it wrote nothing
    cases = {
        tmp_path / "net.txt": "--save {p}: '.txt' is not a known extension; use .npz or .json",
        tmp_path / "net": "--save {p}: no extension is not a known extension; use .npz or .json",
    }
    for path, message in cases.items():
        with pytest.raises(OutputError) as e:
            check_writable(path, (".npz", ".json"), what="--save")
        assert str(e.value) == message.format(p=path)
    assert check_writable(tmp_path / "new" / "net.npz", (".npz",)) == tmp_path / "new" / "net.npz"
    with pytest.raises(OutputError, match=f"the folder {tmp_path / 'new'} does not exist"):
        check_writable(tmp_path / "new" / "net.npz", parents=False)
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(OutputError, match="it is a folder"):
        check_writable(tmp_path / "dir.json", (".json",))
    assert _listing(tmp_path) == ["dir.json"]


def test_check_save_path_knows_what_the_books_format_holds(tmp_path):
    relu = Network.from_sizes([6, 5, 3], activation="relu", cost="log-likelihood", rng=0)
    assert nndl.io.check_save_path(tmp_path / "net.npz", relu) == tmp_path / "net.npz"
    assert nndl.io.check_save_path(tmp_path / "net.json", _net()) == tmp_path / "net.json"
    with pytest.raises(nndl.ConfigError, match=r"--save .*net.json: the book's format stores quadratic or "
                                               r"cross-entropy networks, not log-likelihood"):
        nndl.io.check_save_path(tmp_path / "net.json", relu, what="--save")
    assert _listing(tmp_path) == []


def test_atomic_write_text_returns_the_path(tmp_path):
    assert atomic_write_text(tmp_path / "a.txt", "é") == tmp_path / "a.txt"
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "é"


def test_signals_are_held_back_until_the_block_ends_then_delivered():
    from nndl.fileio import signals_deferred

    signal_mod = signal
    steps = []
    before = signal_mod.getsignal(signal_mod.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        with signals_deferred():
            os.kill(os.getpid(), signal_mod.SIGINT)   # Ctrl-C in the middle of a write
            time.sleep(0.05)
            steps.append("the write finished")
        steps.append("not reached")
    assert steps == ["the write finished"]
    assert signal_mod.getsignal(signal_mod.SIGINT) is before
    # a handler of the caller's gets the signal when the block ends, once
    got = []
    old = signal_mod.signal(signal_mod.SIGTERM, lambda n, f: got.append(n))
    try:
        with signals_deferred():
            os.kill(os.getpid(), signal_mod.SIGTERM)
            os.kill(os.getpid(), signal_mod.SIGTERM)
            time.sleep(0.05)
            assert got == []
        assert got == [signal_mod.SIGTERM]
    finally:
        signal_mod.signal(signal_mod.SIGTERM, old)
