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


class kernel_threads:
    """Run a parallel kernel over ``items`` independent pieces of work::

        with kernel_threads(len(x)) as chunks:
            some_kernel(..., chunks)

    ``chunks`` (= the numba threads running it) is the thread limit, but no
    more than ``items // min_items`` (so that each thread gets enough work to
    pay for waking it). BLAS is held to one thread inside. (A class rather
    than a generator: it runs a few times per mini-batch.)
    """

    __slots__ = ("chunks", "libs", "saved", "numba_saved")

    def __init__(self, items: int, min_items: int = 1) -> None:
        self.libs = _blas_libs()
        self.saved = [lib.num_threads for lib in self.libs]
        self.chunks = max(1, min(_limit(self.saved), items // max(min_items, 1)))

    def __enter__(self) -> int:
        for lib, n in zip(self.libs, self.saved):
            if n != 1:
                lib.set_num_threads(1)
        self.numba_saved = numba.get_num_threads()
        if self.numba_saved != self.chunks:
            numba.set_num_threads(self.chunks)
        return self.chunks

    def __exit__(self, *exc) -> None:
        if self.numba_saved != self.chunks:
            numba.set_num_threads(self.numba_saved)
        for lib, n in zip(self.libs, self.saved):
            if n != 1:
                lib.set_num_threads(n)
