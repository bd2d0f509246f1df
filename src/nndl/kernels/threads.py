"""How many threads the compiled kernels use.

The user's one knob is the BLAS thread limit (``Trainer(blas_threads=...)``,
``nndl train --threads``, or any ``threadpoolctl.threadpool_limits``). The
parallel kernels follow it: :func:`kernel_threads` runs a kernel on at most
that many numba threads, one slice of the mini-batch each, and meanwhile
holds every BLAS library to one thread, because the kernels call BLAS from
inside their threads (two pools of busy threads on the same cores slow each
other down many times over).
"""

from __future__ import annotations

import contextlib
import os

import numba

_blas = None          # threadpoolctl controllers of the loaded BLAS libraries, found once


def _blas_libs() -> list:
    global _blas
    if _blas is None:
        try:
            import scipy.linalg.cython_blas  # noqa: F401  (the BLAS numba's np.dot calls)
            from threadpoolctl import ThreadpoolController
            _blas = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
        except Exception:  # pragma: no cover - no threadpoolctl-visible BLAS: nothing to limit
            _blas = []
    return _blas


def thread_limit() -> int:
    """The threads the kernels may use now: the BLAS limit in effect, at most numba's pool size."""
    return _limit([lib.num_threads for lib in _blas_libs()])


def _limit(blas_threads: list[int]) -> int:
    limit = min(blas_threads, default=os.cpu_count() or 1)
    return max(1, min(limit, numba.config.NUMBA_NUM_THREADS))


@contextlib.contextmanager
def kernel_threads(items: int, min_items: int = 1):
    """Run a parallel kernel over ``items`` independent pieces of work.

    Yields the number of chunks (= numba threads) to split them into: the
    thread limit, but no more than ``items // min_items`` (so that each thread
    gets enough work to pay for waking it). BLAS is held to one thread inside.
    """
    libs = _blas_libs()
    saved = [lib.num_threads for lib in libs]
    chunks = max(1, min(_limit(saved), items // max(min_items, 1)))
    for lib, n in zip(libs, saved):
        if n != 1:
            lib.set_num_threads(1)
    numba_saved = numba.get_num_threads()
    if numba_saved != chunks:
        numba.set_num_threads(chunks)
    try:
        yield chunks
    finally:
        if numba_saved != chunks:
            numba.set_num_threads(numba_saved)
        for lib, n in zip(libs, saved):
            if n != 1:
                lib.set_num_threads(n)
