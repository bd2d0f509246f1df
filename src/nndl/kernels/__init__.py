"""Compiled fast paths. Each computes exactly what the readable NumPy code
in :mod:`nndl.layers` computes (tests compare them), only faster.

The kernels are compiled by numba the first time they run (about ten
seconds for a convolutional network) and kept on disk, so later processes
load them in a fraction of a second. The cache lives in
``$NUMBA_CACHE_DIR`` if that is set, else in nndl's folder of the user's
cache directory (:func:`cache_dir`). :func:`on_compile` tells a caller when a
compilation starts, so that a program can say why it is waiting.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable

try:
    import numba
    from numba.core import event as _event
except ImportError:  # pragma: no cover - numba is a dependency
    numba = None

__all__ = ["cache_dir", "compiled", "on_compile"]


def cache_dir() -> Path:
    """Where compiled kernels are kept: ``$NUMBA_CACHE_DIR``, else
    ``platformdirs.user_cache_dir("nndl")/numba``."""
    env = os.environ.get("NUMBA_CACHE_DIR")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("nndl")) / "numba"


def compiled(**options):
    """``numba.njit(cache=True, **options)``, caching in :func:`cache_dir`.

    numba picks a function's cache folder when the decorator runs, from
    ``numba.config.CACHE_DIR``; it is set for that moment only, so that other
    numba users in the same process keep their own setting.
    """
    def decorate(fn):
        if numba is None:  # pragma: no cover
            raise ImportError("nndl's compiled kernels need numba: pip install numba")
        saved = numba.config.CACHE_DIR
        numba.config.CACHE_DIR = str(cache_dir())
        try:
            return numba.njit(cache=True, **options)(fn)
        finally:
            numba.config.CACHE_DIR = saved
    return decorate


class _CompileListener(_event.Listener if numba is not None else object):
    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.fired = False

    def on_start(self, event) -> None:
        if not self.fired:
            self.fired = True
            self.callback()

    def on_end(self, event) -> None:
        pass


@contextlib.contextmanager
def on_compile(callback: Callable[[], None]):
    """Within the block, call ``callback()`` once, just before numba starts
    compiling something (not when it loads compiled code from the disk
    cache). Yields an object whose ``fired`` says whether it did.

    Example: ``with on_compile(lambda: print("compiling kernels...")): trainer.fit(...)``
    """
    listener = _CompileListener(callback)
    with _event.install_listener("numba:compile", listener):
        yield listener
