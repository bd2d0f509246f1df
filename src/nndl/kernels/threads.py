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

import os

import numba

_blas = None          # threadpoolctl controllers of the loaded BLAS libraries, found once
_POOL = numba.config.NUMBA_NUM_THREADS      # the most threads numba can run


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
    limit = min(blas_threads) if blas_threads else (os.cpu_count() or 1)
    return max(1, min(limit, _POOL))


class kernel_threads:
    """Run a parallel kernel over ``items`` independent pieces of work::

        with kernel_threads(len(x)) as threads:
            some_kernel(..., threads)

    ``threads`` (the numba threads that run it) is the thread limit, but no
    more than ``items``. Inside, numba hands out the loop's iterations one
    at a time as threads come free (a dynamic schedule: a thread that another
    program delays does not hold up a fixed share of the work), and BLAS is
    held to one thread. (A class rather than a generator: it runs a few times
    per mini-batch.)
    """

    __slots__ = ("threads", "libs", "saved", "numba_saved", "chunk_saved")

    def __init__(self, items: int) -> None:
        self.libs = _blas_libs()
        self.saved = [lib.num_threads for lib in self.libs]
        self.threads = max(1, min(_limit(self.saved), items))

    def __enter__(self) -> int:
        for lib, n in zip(self.libs, self.saved):
            if n != 1:
                lib.set_num_threads(1)
        self.numba_saved = numba.get_num_threads()
        if self.numba_saved != self.threads:
            numba.set_num_threads(self.threads)
        # one thread has nothing to share out: leave the schedule alone
        self.chunk_saved = numba.set_parallel_chunksize(1) if self.threads > 1 else None
        return self.threads

    def __exit__(self, *exc) -> None:
        if self.chunk_saved is not None:
            numba.set_parallel_chunksize(self.chunk_saved)
        if self.numba_saved != self.threads:
            numba.set_num_threads(self.numba_saved)
        for lib, n in zip(self.libs, self.saved):
            if n != 1:
                lib.set_num_threads(n)
