"""Writing files safely. Every file nndl writes goes through :func:`atomic_open`.

What a save promises:

* **All or nothing.** The bytes go to a temporary file in the target's own
  folder, which is flushed to disk and then renamed over the target
  (``os.replace``, atomic on one filesystem). Until that rename the old file,
  if any, is untouched; if anything fails (an exception, Ctrl-C, a full disk)
  the temporary file is removed and the old file stays as it was.
* **Permissions as for any new file.** A new file gets ``0o666`` minus the
  user's umask (``open(..., "x")`` asks for no more). A file that is replaced
  keeps its permission bits, so a model you made private stays private.
* **Symlinks are written through.** If the path is a symbolic link, the file
  it points to is replaced and the link stays a link.
* **No litter from a killed save.** A save killed where no clean-up can run
  (SIGKILL, a power cut) leaves its temporary file behind. Temporary files
  are named ``.<name>.nndl-tmp-<pid>-<random>`` beside ``<name>``, so the next
  save to the same path recognises them and removes those that are stale:
  the process that made them no longer runs, or they were last written
  :data:`STALE_AFTER_S` seconds ago or more (longer than any save takes;
  this also covers a process id reused after a reboot).
* **Folders on the way are made** (``mkdir -p``), and removed again if the
  save fails; ``parents=False`` refuses a missing folder instead. (Data
  folders are another matter: :mod:`nndl.data` never creates a folder the
  user named, see :func:`nndl.data.download.require_folder`.)
* **Errors name your path.** Failures raise :class:`~nndl.errors.OutputError`
  saying which path could not be written and why (the folder is missing or
  read-only, the path is a folder, the disk is full), never the hidden
  temporary name.

:func:`check_writable` checks a path the same way without writing it, so
that a long run can refuse a bad output path before it starts.

:func:`signals_deferred` holds Ctrl-C (and SIGTERM, SIGHUP) back for the
length of a write that another library makes and that must not be cut in
half, such as a record appended to an Optuna study's journal.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import signal
import stat
import threading
import time
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator

from .errors import OutputError

__all__ = ["atomic_open", "atomic_write", "atomic_write_text", "atomic_write_bytes",
           "check_writable", "signals_deferred", "process_alive", "TEMP_MARK", "STALE_AFTER_S"]

#: What marks nndl's temporary files: ``.<name>.nndl-tmp-<pid>-<random>``.
TEMP_MARK = ".nndl-tmp-"

#: A temporary file untouched for this long belongs to no running save.
STALE_AFTER_S = 3600.0

# The longest target name kept in a temporary name (file names are limited
# to 255 bytes; ours add about 35 characters).
_MAX_NAME = 200

# errno values that mean "the disk or filesystem refused the bytes", as
# opposed to an error in what the caller was computing while writing.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS}


def _describe(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _target(path: Path) -> Path:
    """The file that will really be replaced: ``path``, or where its symlink points."""
    if path.is_symlink():
        return Path(os.path.realpath(path))
    return path


def _folder(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


def _temp_prefix(target: Path) -> str:
    return f".{target.name[:_MAX_NAME]}{TEMP_MARK}"


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine still runs (True when it
    cannot be told: a process of another user, or not POSIX)."""
    if pid == os.getpid():
        return True                     # another save in this process, e.g. a thread
    if os.name != "posix":
        return True                     # no cheap check: rely on the age alone
    try:
        os.kill(pid, 0)                 # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:                     # exists but belongs to someone else, or unknown
        return True
    return True


def remove_stale_temps(path) -> list[Path]:
    """Remove the temporary files that killed saves to ``path`` left behind.

    A temporary file is stale when the process named in it has ended, or when
    it was last modified :data:`STALE_AFTER_S` seconds ago or more. Returns the
    files removed. Never raises: clean-up is a courtesy, not part of the save.
    """
    target = _target(Path(path))
    folder = _folder(target)
    prefix = _temp_prefix(target)
    removed = []
    now = time.time()
    try:
        entries = [e for e in os.scandir(folder) if e.name.startswith(prefix)]
    except OSError:
        return removed
    for entry in entries:
        pid_text = entry.name[len(prefix):].split("-", 1)[0]
        try:
            pid = int(pid_text)
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except (ValueError, OSError):
            continue
        if age >= STALE_AFTER_S or not process_alive(pid):
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError:
                pass
    return removed


def _check_target(user_path: Path, target: Path, parents: bool) -> tuple[Path, list[Path]]:
    """``(folder, missing)``: ``target``'s folder and the folders that must be
    made for it to exist, outermost first. OutputError if ``target`` is a
    folder, if the nearest existing ancestor is a file, or if folders are
    missing and ``parents`` is false."""
    folder = _folder(target)
    if target.is_dir():
        raise OutputError(f"cannot write {user_path}: it is a folder; give a file name")
    missing, anchor = [], folder
    while not anchor.exists() and anchor.parent != anchor:
        missing.append(anchor)
        anchor = anchor.parent
    if not anchor.is_dir():
        raise OutputError(f"cannot write {user_path}: {anchor} is not a folder")
    if missing and not parents:
        raise OutputError(f"cannot write {user_path}: the folder {folder} does not exist")
    return folder, missing[::-1]


def _make_folders(user_path: Path, missing: list[Path]) -> list[Path]:
    """Create ``missing`` (outermost first); return those made."""
    made = []
    for folder in missing:
        try:
            folder.mkdir()
        except FileExistsError:
            continue                     # made meanwhile by someone else: fine
        except OSError as exc:
            _remove_folders(made)
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise OutputError(f"cannot write {user_path}: the folder {folder.parent} is not writable "
                                  f"({_describe(exc)})") from None
            raise OutputError(f"cannot write {user_path}: cannot create the folder {folder} "
                              f"({_describe(exc)})") from None
        made.append(folder)
    return made


def _remove_folders(made: list[Path]) -> None:
    """Undo :func:`_make_folders` (innermost first), where they are still empty."""
    for folder in reversed(made):
        with contextlib.suppress(OSError):
            folder.rmdir()


def _create_temp(user_path: Path, folder: Path, target: Path, mode: str,
                 encoding: str | None) -> tuple[Path, IO]:
    """A new temporary file for ``target`` in ``folder``, opened for writing."""
    prefix = _temp_prefix(target)
    for _ in range(100):
        tmp = folder / f"{prefix}{os.getpid()}-{secrets.token_hex(4)}"
        try:
            # "x": O_CREAT | O_EXCL with mode 0o666, which the umask trims.
            return tmp, open(tmp, mode.replace("w", "x"), encoding=encoding)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise OutputError(f"cannot write {user_path}: the folder {folder} is not writable "
                                  f"({_describe(exc)})") from None
            raise OutputError(f"cannot write {user_path}: {_describe(exc)}") from None
    raise OutputError(f"cannot write {user_path}: cannot create a temporary file in {folder}")


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable; not every system allows it (then skip)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path, mode: str = "wb", *, encoding: str | None = None, parents: bool = True) -> Iterator[IO]:
    """``with atomic_open(path) as f: ...`` writes ``path`` all or nothing.

    ``f`` is a new temporary file beside ``path`` (``f.name`` is its path, for
    callers that need to read back what they wrote, e.g. to verify a
    download). When the block ends normally the file is flushed, synced and
    renamed to ``path``; when it raises, the temporary file is removed, ``path``
    is left as it was, and the exception propagates -- except that an
    ``OSError`` saying the disk refused the bytes (full, over quota, file too
    large, read-only, I/O error) becomes an :class:`OutputError` naming ``path``.

    Args:
        path: the file to write; a symlink is followed (the file it points to
            is replaced).
        mode: ``"wb"`` or ``"w"`` (text).
        encoding: for text mode; default UTF-8.
        parents: create missing folders on the way to ``path`` (removed
            again if the write fails); with ``False`` a missing folder is an
            error.

    Raises:
        OutputError: the path is a folder, a folder on the way is a file,
            missing (with ``parents=False``) or not writable, or the disk
            refused the bytes.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes with mode 'wb' or 'w', not {mode!r}")
    if mode == "w" and encoding is None:
        encoding = "utf-8"
    user_path = Path(path)
    target = _target(user_path)
    folder, missing = _check_target(user_path, target, parents)
    made = _make_folders(user_path, missing)
    remove_stale_temps(target)
    try:
        tmp, f = _create_temp(user_path, folder, target, mode, encoding)
    except BaseException:
        _remove_folders(made)
        raise
    existed = target.exists()
    keep = "; the existing file is unchanged" if existed else ""
    def refused(exc: OSError) -> OutputError:
        return OutputError(f"cannot write {user_path}: {_describe(exc)}{keep}")

    try:
        if existed:
            with contextlib.suppress(OSError):
                os.chmod(f.fileno(), stat.S_IMODE(os.stat(target).st_mode))
        try:
            yield f
        except OSError as exc:
            # Only the disk's refusals are ours to explain; any other
            # error belongs to the caller's code and propagates as is.
            if isinstance(exc, OutputError) or exc.errno not in _WRITE_ERRNOS:
                raise
            raise refused(exc) from None
        try:
            f.flush()
            os.fsync(f.fileno())
            f.close()
            os.replace(tmp, target)
        except OSError as exc:
            raise refused(exc) from None
    except BaseException:
        # Closing flushes what is buffered, which fails again on a full disk:
        # that second error says nothing new.
        with contextlib.suppress(OSError):
            f.close()
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        _remove_folders(made)
        raise
    _fsync_folder(folder)


def atomic_write(path, write: Callable[[IO], None], mode: str = "wb", *, parents: bool = True) -> Path:
    """Call ``write(f)`` on a temporary file and move it to ``path`` (see :func:`atomic_open`)."""
    with atomic_open(path, mode, parents=parents) as f:
        write(f)
    return Path(path)


def atomic_write_text(path, text: str, *, parents: bool = True) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(text), mode="w", parents=parents)


def atomic_write_bytes(path, data: bytes, *, parents: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(data), mode="wb", parents=parents)


def check_writable(path, suffixes: Iterable[str] | None = None, *, what: str = "output",
                   parents: bool = True) -> Path:
    """Check, without writing it, that :func:`atomic_open` could write ``path``.

    Cheap enough to call before a long run: the path must not be a folder;
    its folder must exist (or, with ``parents``, be creatable: its nearest
    existing ancestor is a folder) and accept a new file, tested by creating
    and removing a temporary file there, which also catches read-only
    filesystems and permissions that ``os.access`` misjudges; and, when
    ``suffixes`` is given, its extension must be one of them
    (case-insensitive). Nothing is left behind, no folder is created.

    Args:
        path: the file a run will write.
        suffixes: allowed extensions with their dot, e.g. ``(".npz", ".json")``.
        what: what the file is, for the message (e.g. ``"--save"``).
        parents: as for :func:`atomic_open`; ``False`` requires the folder
            to exist already.

    Returns:
        ``path`` as a Path.

    Raises:
        OutputError: naming ``path`` and what is wrong with it.
    """
    user_path = Path(path)
    if suffixes is not None:
        allowed = [s.lower() for s in suffixes]
        if user_path.suffix.lower() not in allowed:
            got = f"{user_path.suffix!r}" if user_path.suffix else "no extension"
            raise OutputError(f"{what} {user_path}: {got} is not a known extension; "
                              f"use {' or '.join(allowed)}")
    target = _target(user_path)
    folder, missing = _check_target(user_path, target, parents)
    probe_in = missing[0].parent if missing else folder     # where the first new entry would go
    tmp, f = _create_temp(user_path, probe_in, target, "wb", None)
    f.close()
    with contextlib.suppress(OSError):
        os.unlink(tmp)
    return user_path


_DEFERRED = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Within the block, SIGINT (Ctrl-C), SIGTERM and SIGHUP wait; each one
    received is delivered, to the handler there was before, when the block
    ends. For a write that must not be cut in half and that is not nndl's own
    (an Optuna study's journal: Ctrl-C inside its file lock left the lock half
    renamed and ended the command with "No such file or directory").

    Only the main thread can hold signals; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {}
    for signum in _DEFERRED:
        try:
            previous[signum] = signal.signal(signum, lambda n, frame: received.append(n))
        except (ValueError, OSError):   # pragma: no cover - e.g. an embedding that owns the signals
            pass
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(received):
            signal.raise_signal(signum)

