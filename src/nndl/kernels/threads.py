"""How many threads the compiled kernels use, and BLAS while training.

One pool of threads at a time: the compiled kernels split their work over
numba's threads and call BLAS from inside them, single-threaded. Measured on
the project's 2-core machine, letting BLAS's own threads and numba's take
turns made alternating calls ten to twenty times slower (each pool's idle
threads spin for a while and hold the cores the other pool needs).

* While training, :func:`limit` (``Trainer(blas_threads=n)``, ``nndl train
  --threads n``) lets the kernels use up to ``n`` threads and holds BLAS to
  one: the products left to NumPy at training batch sizes (the dense layers)
  are too small to gain from more.
* Outside it, the kernels follow whatever BLAS limit is in effect (e.g. a
  ``threadpoolctl.threadpool_limits``), else use all of numba's threads.
* :class:`kernel_threads` wraps each kernel call: it picks the thread count
  and holds BLAS to one thread inside.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time

import numba

_blas = None          # threadpoolctl controllers of the loaded BLAS libraries, found once
_POOL = numba.config.NUMBA_NUM_THREADS      # the most threads numba can run
_local = threading.local()                  # .cap: the limit set by limit(), per calling thread


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


@contextlib.contextmanager
def limit(threads: int | None):
    """Within the block, the kernels use at most ``threads`` threads and every
    BLAS library one thread (training). ``None`` changes nothing."""
    if threads is None:
        yield
        return
    libs = _blas_libs()
    saved = [lib.num_threads for lib in libs]
    previous = getattr(_local, "cap", None)
    _local.cap = int(threads)
    for lib in libs:
        lib.set_num_threads(1)
    try:
        yield
    finally:
        _local.cap = previous
        for lib, n in zip(libs, saved):
            lib.set_num_threads(n)


def thread_limit() -> int:
    """The threads the kernels may use now (see the module docstring)."""
    return _limit([lib.num_threads for lib in _blas_libs()])


def _limit(blas_threads: list[int]) -> int:
    cap = getattr(_local, "cap", None)
    if cap is None:
        cap = min(blas_threads) if blas_threads else (os.cpu_count() or 1)
    return max(1, min(cap, _POOL))


class _Choice:
    """Per kernel and problem size: is one thread or ``cap`` threads faster, now?

    Both are timed a few times, then the faster one is used and the other
    re-timed now and then, at intervals that double each time it loses (so
    that a machine that gets busier or quieter is noticed, at little cost).
    """

    WARMUP = 3          # timings of each before choosing (the first of each is dropped)
    FIRST_PROBE = 16    # calls between re-timings of the other, doubling up to
    MAX_PROBE = 1024
    ALPHA = 0.3         # weight of a new timing in the running average

    __slots__ = ("options", "seconds", "count", "best", "calls", "next_probe", "interval")

    def __init__(self, cap: int) -> None:
        self.options = (cap, 1)
        self.seconds = [0.0, 0.0]
        self.count = [0, 0]
        self.best = 0
        self.calls = 0
        self.next_probe = 0
        self.interval = self.FIRST_PROBE

    def pick(self) -> int:
        """Index of the option to run this call."""
        self.calls += 1
        if min(self.count) <= self.WARMUP:                  # still timing both: alternate
            return 0 if self.count[0] <= self.count[1] else 1
        if self.calls >= self.next_probe:
            return 1 - self.best
        return self.best

    def record(self, i: int, seconds: float) -> None:
        n = self.count[i]
        self.count[i] = n + 1
        if n == 0:
            return                                          # the first run may have compiled
        self.seconds[i] = seconds if n == 1 else self.ALPHA * seconds + (1 - self.ALPHA) * self.seconds[i]
        if min(self.count) <= self.WARMUP:
            self.best = 0 if self.seconds[0] <= self.seconds[1] or self.count[1] <= 1 else 1
            return
        if i != self.best:                                  # a probe of the other option
            if self.seconds[i] < self.seconds[self.best]:
                self.best, self.interval = i, self.FIRST_PROBE
            else:
                self.interval = min(2 * self.interval, self.MAX_PROBE)
            self.next_probe = self.calls + self.interval
        elif self.calls >= self.next_probe:                 # (first choice after the warm-up)
            self.next_probe = self.calls + self.interval


_choices: dict = {}


class kernel_threads:
    """Run a parallel kernel over ``items`` independent pieces of work::

        with kernel_threads(len(x), key=("my kernel", x.shape)) as threads:
            some_kernel(..., threads)

    ``threads`` (the numba threads that run it) is at most the thread limit
    and ``items``. With a ``key`` (the kernel and its problem size), calls
    choose by measurement between that many threads and one: several threads
    only pay when the machine has idle cores (on a busy machine each parallel
    call waits for the scheduler to wake its threads, and one thread is often
    faster). Inside, numba hands out the loop's iterations one at a time as
    threads come free (a dynamic schedule), and BLAS is held to one thread.
    (A class rather than a generator: it runs a few times per mini-batch.)
    """

    __slots__ = ("threads", "libs", "saved", "numba_saved", "chunk_saved", "choice", "option", "t0")

    def __init__(self, items: int, key=None) -> None:
        self.libs = _blas_libs()
        self.saved = [lib.num_threads for lib in self.libs]
        cap = max(1, min(_limit(self.saved), items))
        self.choice = None
        if key is not None and cap > 1:
            choice = _choices.get((key, cap))
            if choice is None:
                choice = _choices[(key, cap)] = _Choice(cap)
            self.choice = choice
            self.option = choice.pick()
            cap = choice.options[self.option]
        self.threads = cap

    def __enter__(self) -> int:
        for lib, n in zip(self.libs, self.saved):
            if n != 1:
                lib.set_num_threads(1)
        self.numba_saved = numba.get_num_threads()
        if self.numba_saved != self.threads:
            numba.set_num_threads(self.threads)
        # one thread has nothing to share out: leave the schedule alone
        self.chunk_saved = numba.set_parallel_chunksize(1) if self.threads > 1 else None
        self.t0 = time.perf_counter()
        return self.threads

    def __exit__(self, exc_type, *exc) -> None:
        if self.choice is not None and exc_type is None:
            self.choice.record(self.option, time.perf_counter() - self.t0)
        if self.chunk_saved is not None:
            numba.set_parallel_chunksize(self.chunk_saved)
        if self.numba_saved != self.threads:
            numba.set_num_threads(self.numba_saved)
        for lib, n in zip(self.libs, self.saved):
            if n != 1:
                lib.set_num_threads(n)
