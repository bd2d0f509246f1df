"""Where the MNIST files live, how to fetch them, and how to check them.

The four official IDX files are looked for in one folder, chosen by
:func:`resolve_data_dir`: an explicit argument, else the ``NNDL_DATA``
environment variable, else ``<user cache>/nndl/mnist``.

Integrity is pinned by the SHA-256 of the *decompressed* bytes
(:data:`MNIST_FILES`), so any faithful copy is accepted whoever gzipped it.
:func:`fetch` downloads only what is missing, verifies each file before it
becomes visible (temporary file + ``os.replace``), and tries the mirrors in
turn. :func:`verify` hashes local files; loading does not (see
:func:`nndl.data.mnist.load_mnist`), because hashing 55 MB on every load is
slow and a structural check already catches truncation and corruption.

Nothing here prints: the progress bar goes to stderr through tqdm and can be
turned off, and reports are returned as strings (:func:`describe`).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import platformdirs
from tqdm import tqdm

from ..errors import DataError, OutputError
from ..fileio import atomic_open

__all__ = [
    "ENV_VAR",
    "MNIST_FILES",
    "MIRRORS",
    "FileStatus",
    "CONNECT_TIMEOUT_S",
    "resolve_data_dir",
    "require_folder",
    "find_file",
    "missing_files",
    "fetch",
    "verify",
    "describe",
]

#: Environment variable naming the MNIST folder.
ENV_VAR = "NNDL_DATA"

#: The four MNIST files (base names, without ``.gz``) -> SHA-256 of their
#: decompressed bytes. Order: training images, training labels, test images,
#: test labels. A file may be stored as ``<name>.gz`` or as raw ``<name>``.
MNIST_FILES: dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

#: Public mirrors, tried in turn; each serves ``<mirror><name>.gz``. Plain
#: http is acceptable because every download is checked against the pins.
MIRRORS: list[str] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]

#: The book's pickle (``mnist.pkl.gz``), accepted in place of the IDX files.
BOOK_PICKLE = "mnist.pkl.gz"

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 16
#: Seconds a mirror may take to accept the connection, and then to send each
#: chunk, before it counts as failed and the next one is tried: a stalled
#: network fails in about this long per mirror instead of minutes.
CONNECT_TIMEOUT_S = 10.0

# What a broken gzip stream raises, depending on where it breaks.
_GZIP_ERRORS = (OSError, EOFError, zlib.error)


class FileStatus(NamedTuple):
    """The state of one MNIST file in a folder, as found by :func:`verify`.

    ``ok`` is ``None`` when the file is missing (nothing to check).
    """

    name: str
    path: Path | None
    present: bool
    ok: bool | None
    message: str


# --------------------------------------------------------------------------
# Location


def _resolve(data_dir: str | os.PathLike[str] | None) -> tuple[Path, str]:
    """The folder and where it came from: 'argument', 'NNDL_DATA' or 'cache'."""
    if data_dir is not None:
        if not isinstance(data_dir, (str, os.PathLike)):
            raise DataError(f"data_dir must be a folder path, got {data_dir!r}")
        return Path(os.path.abspath(Path(data_dir).expanduser())), "argument"
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(os.path.abspath(Path(env).expanduser())), ENV_VAR
    return Path(platformdirs.user_cache_dir("nndl")) / "mnist", "cache"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The MNIST folder: ``data_dir`` if given, else ``$NNDL_DATA``, else the cache.

    The cache is ``platformdirs.user_cache_dir("nndl") / "mnist"``. The folder
    need not exist yet.
    """
    return _resolve(data_dir)[0]


def find_file(folder: Path, name: str) -> Path | None:
    """The local copy of MNIST file ``name`` in ``folder`` (``.gz`` preferred), or None."""
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def missing_files(folder: Path) -> list[str]:
    """Base names of the MNIST files that ``folder`` lacks (in :data:`MNIST_FILES` order)."""
    return [name for name in MNIST_FILES if find_file(folder, name) is None]


def _origin(source: str) -> str:
    return {
        "argument": "given as an argument",
        ENV_VAR: f"from the {ENV_VAR} environment variable",
        "cache": f"the user cache (set {ENV_VAR} to use another folder)",
    }[source]


def require_folder(data_dir: str | os.PathLike[str] | None = None, *, create: bool = False) -> Path:
    """The MNIST folder (:func:`resolve_data_dir`), checked to exist.

    Only nndl's own cache folder is ever created (with ``create=True``); a
    folder named by the caller or by ``NNDL_DATA`` must already exist, so
    that a mistyped path is reported instead of silently becoming a new
    folder that a download then fills.

    Raises:
        DataError: the folder does not exist (or is not a folder) and is not
            the cache, or the cache cannot be created.
    """
    folder, source = _resolve(data_dir)
    if folder.is_dir():
        return folder
    if source != "cache" or folder.exists():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise DataError(
            f"the MNIST folder {folder} ({_origin(source)}) {what}: check the path, or create the "
            "folder first (nndl creates only its default cache folder by itself)"
        )
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(f"cannot create the MNIST folder {folder}: {exc.strerror or exc}") from exc
    return folder


def how_to_get(folder: Path, names: Sequence[str], *, suggest_fetch: bool = True) -> str:
    """The sentence telling a user how to provide the files ``names`` in ``folder``."""
    files = ", ".join(f"{n}.gz" for n in names)
    by_hand = (
        f"copy {files} (gzipped or not) into {folder}, "
        f"or set {ENV_VAR} to a folder that holds them."
    )
    if suggest_fetch:
        return f"Run `nndl data --fetch` to download them, or {by_hand}"
    return f"To install them by hand, {by_hand}"


# --------------------------------------------------------------------------
# Hashing


@contextlib.contextmanager
def open_maybe_gzip(path: Path) -> Iterator[tuple[Any, bool]]:
    """``with open_maybe_gzip(path) as (stream, is_gzip)``: the file's content,
    streamed through gzip when it starts with gzip's magic bytes (whatever its
    name). Raises DataError if the file cannot be opened."""
    try:
        raw = open(path, "rb")
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from exc
    with raw:
        is_gzip = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        yield (gzip.GzipFile(fileobj=raw, mode="rb") if is_gzip else raw), is_gzip


def _sha256_decompressed(path: Path) -> str:
    """SHA-256 of the file's content, gunzipped first if it is gzip (by magic bytes).

    Raises DataError for an unreadable file or a corrupt gzip stream.
    """
    digest = hashlib.sha256()
    with open_maybe_gzip(path) as (stream, is_gzip):
        try:
            # Stream in chunks: 47 MB decompressed need not sit in memory twice.
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
        except _GZIP_ERRORS as exc:
            what = "corrupt gzip stream" if is_gzip else "cannot read"
            raise DataError(f"{path}: {what}: {exc}") from exc
    return digest.hexdigest()


def verify(data_dir: str | os.PathLike[str] | None = None) -> list[FileStatus]:
    """Check each of the four MNIST files in the folder against its SHA-256 pin.

    The hash is of the decompressed bytes, so ``.gz`` and raw copies are both
    accepted. Never raises for a bad file: the problem is in its status.

    Returns:
        One :class:`FileStatus` per file of :data:`MNIST_FILES`, in order.
    """
    folder = resolve_data_dir(data_dir)
    statuses = []
    for name, expected in MNIST_FILES.items():
        path = find_file(folder, name)
        if path is None:
            statuses.append(FileStatus(name, None, False, None, "missing"))
            continue
        try:
            got = _sha256_decompressed(path)
        except DataError as exc:
            statuses.append(FileStatus(name, path, True, False, str(exc)))
            continue
        if got == expected:
            statuses.append(FileStatus(name, path, True, True, "verified OK"))
        else:
            statuses.append(
                FileStatus(name, path, True, False,
                           f"SHA-256 mismatch: got {got[:16]}..., expected {expected[:16]}...")
            )
    return statuses


# --------------------------------------------------------------------------
# Download


def _download_one(
    url: str,
    name: str,
    folder: Path,
    expected: str,
    *,
    progress: bool,
    opener: Callable[..., Any],
) -> Path:
    """Download ``url`` into ``folder/<name>.gz`` if its content hashes to ``expected``.

    The bytes go to a temporary file in the same folder (so the final
    ``os.replace`` is atomic, on one filesystem) and become visible only after
    verification. Raises DataError (or a network error) on failure, always
    leaving no temporary file behind.
    """
    target = folder / f"{name}.gz"
    with atomic_open(target) as out:
        # The bar appears before connecting, so a slow mirror is visibly a
        # download in progress, not a blank screen.
        with tqdm(unit="B", unit_scale=True, unit_divisor=1024, desc=f"downloading {name}.gz",
                  file=sys.stderr, disable=not progress, leave=False) as bar, \
                opener(url, timeout=CONNECT_TIMEOUT_S) as response:
            headers = getattr(response, "headers", None)
            length = headers.get("Content-Length") if headers is not None else None
            if length and str(length).isdigit():
                bar.reset(total=int(length))
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                bar.update(len(chunk))
        out.flush()
        # Verify before the file becomes visible; a failure here removes it.
        tmp = Path(out.name)
        with open(tmp, "rb") as f:
            if f.read(2) != _GZIP_MAGIC:
                raise DataError("not a gzip file")
        try:
            got = _sha256_decompressed(tmp)
        except DataError as exc:
            raise DataError(f"corrupt gzip stream ({exc.__cause__})") from exc
        if got != expected:
            raise DataError(f"SHA-256 mismatch (got {got[:16]}..., expected {expected[:16]}...)")
    return target


def _reason(exc: BaseException) -> str:
    """A one-line reason for a failed mirror."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, TimeoutError) or isinstance(getattr(exc, "reason", None), TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT_S:g} s"
    if isinstance(exc, urllib.error.URLError):
        return f"network error: {exc.reason}"
    if isinstance(exc, DataError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def fetch(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    mirrors: Sequence[str] | None = None,
    progress: bool = True,
    opener: Callable[..., Any] = urllib.request.urlopen,
    notify: Callable[[str], None] | None = None,
) -> list[Path]:
    """Download the MNIST files missing from the folder, verifying each one.

    For each missing file, ``<mirror><name>.gz`` is tried on each mirror in
    turn until one yields bytes whose decompressed SHA-256 matches the pin.
    Each mirror gets :data:`CONNECT_TIMEOUT_S` seconds to answer (and to send
    each chunk). Files already present are left alone (not even hashed).

    Args:
        data_dir: the folder (see :func:`resolve_data_dir`). It must exist,
            unless it is nndl's default cache folder, which is created.
        mirrors: base URLs ending in ``/`` (default :data:`MIRRORS`).
        progress: show a tqdm byte counter on stderr (it appears before
            connecting, labelled ``downloading <name>.gz``).
        opener: ``opener(url, timeout=seconds)`` returning a readable response
            usable as a context manager; tests pass a fake to avoid the network.
        notify: called with a one-line message when a download starts
            (``"downloading <name>.gz from <mirror>"``) and when a mirror
            fails and the next is tried; the command line prints these.
            nndl itself never prints.

    Returns:
        Paths of the files downloaded (empty when nothing was missing).

    Raises:
        DataError: the folder does not exist (and is not the cache), or a file
            could not be obtained from any mirror; the message lists the
            files still missing, each mirror's failure, and how to install
            the files by hand.
        OutputError: a file could not be written (e.g. the disk is full).
    """
    say = notify or (lambda message: None)
    mirrors = MIRRORS if mirrors is None else mirrors
    if isinstance(mirrors, (str, bytes)) or not all(isinstance(m, str) for m in mirrors):
        raise DataError(f"mirrors must be a list of base URLs, got {mirrors!r}")
    folder = require_folder(data_dir)
    todo = missing_files(folder)
    if not todo:
        return []
    if not mirrors:
        raise DataError(f"no mirrors to download from. {how_to_get(folder, todo, suggest_fetch=False)}")
    folder = require_folder(data_dir, create=True)

    fetched = []
    for name in todo:
        failures = []
        for i, mirror in enumerate(mirrors):
            url = f"{mirror}{name}.gz"
            say(f"downloading {name}.gz from {mirror}")
            try:
                fetched.append(_download_one(url, name, folder, MNIST_FILES[name],
                                             progress=progress, opener=opener))
                break
            except OutputError:
                raise                   # the disk, not the mirror: another mirror will not help
            except (DataError, OSError, ValueError, http.client.HTTPException) as exc:
                # URLError and timeouts are OSErrors; ValueError: malformed URL.
                failures.append(f"  {mirror}: {_reason(exc)}")
                if i + 1 < len(mirrors):
                    say(f"{mirror} failed ({_reason(exc)}); trying {mirrors[i + 1]}")
        else:
            # Stop at the first file no mirror can provide: the others would
            # most likely fail the same way, each after its own timeouts.
            still = missing_files(folder)
            raise DataError(
                f"could not download {name}.gz from any mirror:\n"
                + "\n".join(failures)
                + f"\nMissing from {folder}: {', '.join(f'{n}.gz' for n in still)}.\n"
                + how_to_get(folder, still, suggest_fetch=False)
            )
    return fetched


# --------------------------------------------------------------------------
# Report


def describe(data_dir: str | os.PathLike[str] | None = None) -> str:
    """A human-readable report on the MNIST folder, for ``nndl data``.

    Says which folder is used and why (argument, ``NNDL_DATA`` or the user
    cache), and for each file whether it is present and whether its SHA-256
    matches. Hashes every present file, so it takes a fraction of a second.
    """
    folder, source = _resolve(data_dir)
    lines = [f"MNIST folder: {folder}", f"  ({_origin(source)})"]
    if not folder.is_dir():
        lines.append("  the folder does not exist yet" if source == "cache" else
                     "  the folder does not exist: check the path")
    statuses = verify(folder)
    width = max(len(n) for n in MNIST_FILES) + 5
    for st in statuses:
        shown = st.path.name if st.path is not None else f"{st.name}.gz"
        if not st.present:
            state = "missing"
        elif st.ok:
            state = "present, verified OK"
        else:
            state = f"present, MISMATCH ({st.message})"
        lines.append(f"  {shown:<{width}} {state}")
    book = folder / BOOK_PICKLE
    lines.append(f"  {BOOK_PICKLE:<{width}} {'present (book pickle)' if book.is_file() else 'absent (optional)'}")

    missing = [st.name for st in statuses if not st.present]
    bad = [st.name for st in statuses if st.present and not st.ok]
    if not missing and not bad:
        lines.append("All four MNIST files are present and verified.")
    else:
        if missing:
            if book.is_file():
                lines.append(f"{len(missing)} IDX file(s) missing; {BOOK_PICKLE} will be used instead.")
            else:
                lines.append(f"{len(missing)} file(s) missing. {how_to_get(folder, missing)}")
        if bad:
            lines.append(
                f"{len(bad)} file(s) fail verification: delete them and run `nndl data --fetch`, "
                "or replace them with good copies."
            )
    return "\n".join(lines)
