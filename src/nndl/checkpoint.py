"""Checkpoints: everything a run needs to continue exactly where it stopped.

A checkpoint is one file, ``DIR/checkpoint.npz``, that
:class:`~nndl.callbacks.Checkpoint` replaces atomically after every epoch
(write a temporary file, then rename): a process killed at any moment, even
by SIGKILL or a power cut, leaves the previous complete checkpoint. One file
rather than two, so that the arrays and their description can never come
from different epochs. It is a NumPy ``.npz`` archive read with
``allow_pickle=False`` (nothing in it runs) holding:

* ``config.json`` and ``layer<i>/<key>``: the network, exactly as
  :func:`nndl.io.save` writes it, so ``nndl evaluate DIR/checkpoint.npz``
  works on a run in progress;
* ``checkpoint.json``: ``{"format": "nndl-checkpoint", "version": 1,
  "epoch": <epochs done>, "run": {...}, "state": {...}}`` as UTF-8 bytes,
  where ``run`` describes the run (its :class:`~nndl.config.RunConfig` and
  the command line's outputs) and ``state`` is
  :meth:`nndl.training.Trainer.state_dict` without the parameters: the
  optimizer (eta, momentum velocities), the generators' ``bit_generator``
  states, the epoch counter, the history and the callbacks' states. Arrays
  in it are stored beside it as ``state/<n>`` and referred to as
  ``{"__array__": "state/<n>"}``; NaN and infinities as ``{"__float__": "nan"}``,
  so that the JSON stays valid.

:func:`write` and :func:`read` convert between that file and the state;
:func:`nndl.config.resume` continues a run from it.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import CheckpointError, NNDLError

FILENAME = "checkpoint.npz"
FORMAT = "nndl-checkpoint"
VERSION = 1
#: the largest checkpoint.json read (histories with many gradient records stay far below)
MAX_JSON_BYTES = 256 * 1024 * 1024

__all__ = ["FILENAME", "CheckpointData", "checkpoint_path", "exists", "write", "read", "prepare_folder",
           "Lock", "LOCK_NAME"]


def checkpoint_path(folder) -> Path:
    """The checkpoint file in ``folder``."""
    return Path(folder) / FILENAME


def exists(folder) -> bool:
    """Whether ``folder`` holds a checkpoint file (valid or not)."""
    return checkpoint_path(folder).is_file()


@dataclass
class CheckpointData:
    """A checkpoint as read: ``epoch`` (epochs done), ``run`` (what the writer
    said about the run) and ``state`` (a :meth:`~nndl.training.Trainer.state_dict`,
    parameters included)."""

    path: Path
    epoch: int
    run: dict
    state: dict


# -- the JSON part: arrays and non-finite floats by reference ---------------------------
def _encode(obj, arrays: dict, where: str):
    if isinstance(obj, np.ndarray):
        name = f"state/{len(arrays)}"
        arrays[name] = obj
        return {"__array__": name}
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise CheckpointError(f"cannot save {where}: key {k!r} is not a string")
            out[k] = _encode(v, arrays, f"{where}.{k}")
        return out
    if isinstance(obj, (list, tuple)):
        return [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (str, bool)):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else {"__float__": repr(value)}
    raise CheckpointError(f"cannot save {where}: {type(obj).__name__} values are not supported")


def _decode(obj, arrays: dict):
    if isinstance(obj, dict):
        if set(obj) == {"__array__"}:
            name = obj["__array__"]
            if name not in arrays:
                raise CheckpointError(f"the array {name!r} it refers to is missing")
            return arrays[name]
        if set(obj) == {"__float__"}:
            if obj["__float__"] not in ("nan", "inf", "-inf"):
                raise CheckpointError(f"bad number {obj['__float__']!r}")
            return float(obj["__float__"])
        return {k: _decode(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v, arrays) for v in obj]
    return obj


# -- writing -----------------------------------------------------------------------------
def prepare_folder(folder) -> Path:
    """Create the checkpoint folder if it is missing (not its parents: a
    mistyped path is refused rather than created)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise CheckpointError(f"checkpoint folder {folder} is a file; give a folder")
    if not folder.parent.is_dir():
        raise CheckpointError(f"cannot create the checkpoint folder {folder}: {folder.parent} does not exist")
    try:
        folder.mkdir(exist_ok=True)
    except OSError as e:
        raise CheckpointError(f"cannot create the checkpoint folder {folder}: {e.strerror or e}") from None
    return folder


def write(folder, state: dict, run: dict, network_config: dict | None = None) -> Path:
    """Write ``state`` (a :meth:`~nndl.training.Trainer.state_dict`) and ``run``
    to ``folder/checkpoint.npz``, atomically. ``network_config`` is the
    network's :meth:`~nndl.network.Network.config` (default: taken from
    ``run["network"]``); without one the file is not also a model file."""
    from .fileio import atomic_write
    from .io import model_arrays

    folder = Path(folder)
    state = dict(state)
    params = state.pop("params")
    if network_config is None:
        network_config = run.get("network")
    arrays = model_arrays(params, network_config)   # a checkpoint is also a model file
    extra: dict[str, np.ndarray] = {}
    meta = {"format": FORMAT, "version": VERSION, "epoch": int(state["epoch"]),
            "run": _encode(run, extra, "run"), "state": _encode(state, extra, "state")}
    arrays.update(extra)
    text = json.dumps(meta, allow_nan=False)
    arrays["checkpoint.json"] = np.frombuffer(text.encode(), dtype=np.uint8)
    path = checkpoint_path(folder)
    try:
        atomic_write(path, lambda f: np.savez(f, **arrays))
    except NNDLError:
        raise
    except OSError as e:
        raise CheckpointError(f"cannot write the checkpoint {path}: {e.strerror or e}") from None
    return path


# -- reading -----------------------------------------------------------------------------
def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """One ``.npy`` member, its declared size checked against the stored bytes
    before anything is allocated."""
    fmt = np.lib.format
    with zf.open(info) as f:
        version = fmt.read_magic(f)
        header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = header(f)
        if dtype.hasobject:
            raise ValueError(f"{info.filename} holds Python objects")
        if math.prod(shape) * dtype.itemsize > info.file_size:
            raise ValueError(f"{info.filename} declares more data than it holds")
    with zf.open(info) as f:
        return fmt.read_array(f, allow_pickle=False)


def read(folder) -> CheckpointData:
    """Read ``folder/checkpoint.npz``; CheckpointError saying what is wrong
    (no such folder, no checkpoint in it, not a checkpoint, corrupt, newer)."""
    folder = Path(folder)
    path = checkpoint_path(folder)
    if not folder.exists():
        raise CheckpointError(f"{folder}: no such checkpoint folder")
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is a file, not a checkpoint folder (nndl train --checkpoint DIR "
                              "writes one)")
    if not path.is_file():
        raise CheckpointError(f"{folder} holds no checkpoint ({FILENAME}); nndl train --checkpoint DIR "
                              "writes one after every epoch")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable checkpoint (corrupt or not an .npz archive: {e})") from None
    with zf:
        infos = {info.filename: info for info in zf.infolist()}
        for info in infos.values():
            # nndl writes checkpoints uncompressed; a member that would inflate is not ours
            if info.compress_type != zipfile.ZIP_STORED or info.file_size > info.compress_size:
                raise CheckpointError(f"{path} is not a checkpoint written by nndl (compressed member "
                                      f"{info.filename!r})")
        if "checkpoint.json.npy" not in infos:
            what = "an nndl model file" if "config.json.npy" in infos else "an .npz archive"
            raise CheckpointError(f"{path} is {what}, not a checkpoint (it has no checkpoint.json)")
        if infos["checkpoint.json.npy"].file_size > MAX_JSON_BYTES:
            raise CheckpointError(f"{path}: checkpoint.json is larger than {MAX_JSON_BYTES >> 20} MB")
        try:
            arrays = {name[:-4]: _read_member(zf, info) for name, info in infos.items() if name.endswith(".npy")}
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise CheckpointError(f"{path} is corrupt ({e})") from None
    try:
        raw = arrays.pop("checkpoint.json")
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CheckpointError(f"{path}: checkpoint.json is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an nndl checkpoint")
    version = meta.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise CheckpointError(f"{path}: checkpoint version must be an integer, got {version!r}")
    if version > VERSION:
        raise CheckpointError(f"{path} was written by a newer nndl (checkpoint version {version}); upgrade nndl")
    epoch, run, state = meta.get("epoch"), meta.get("run"), meta.get("state")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise CheckpointError(f"{path}: epoch must be an integer >= 0, got {epoch!r}")
    if not isinstance(run, dict) or not isinstance(state, dict):
        raise CheckpointError(f"{path}: checkpoint.json lacks its run or state object")
    try:
        run = _decode(run, arrays)
        state = _decode(state, arrays)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    params: list[dict[str, np.ndarray]] = []
    for name, value in arrays.items():
        head, _, key = name.partition("/")
        if head.startswith("layer") and head[5:].isdigit() and key:
            i = int(head[5:])
            while len(params) <= i:
                params.append({})
            params[i][key] = value
    state["params"] = params
    if state.get("epoch") != epoch:
        raise CheckpointError(f"{path}: the state's epoch {state.get('epoch')!r} differs from {epoch}")
    return CheckpointData(path, epoch, run, state)


# -- one training per folder -------------------------------------------------------------
#: the lock file a training holds in its checkpoint folder
LOCK_NAME = ".nndl-lock"


class Lock:
    """An exclusive advisory lock (``flock``) on a file, created if missing,
    or on a folder itself (which leaves nothing behind), held by one process
    at a time and dropped when released or when the process ends, however
    it ends. Where ``flock`` does not exist (Windows) it does nothing.

    Args:
        path: the file or folder to lock.
        what: how to name what is locked in the message.
        wait: block until the other holder is done (else refuse at once).
    """

    def __init__(self, path, *, what: str | None = None, wait: bool = False) -> None:
        self.path = Path(path)
        self.what = what or str(self.path)
        self.wait = wait
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return
        try:
            if self.path.is_dir():
                fd = os.open(self.path, os.O_RDONLY)
            else:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise CheckpointError(f"cannot lock {self.what}: {e.strerror or e}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if self.wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            raise CheckpointError(f"{self.what} is in use by another nndl training; wait for it to end "
                                  "or choose another folder") from None
        except OSError:
            os.close(fd)   # a filesystem without locks: go on unlocked
            return
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)   # closing drops the lock
            self._fd = None

    def __enter__(self) -> "Lock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
