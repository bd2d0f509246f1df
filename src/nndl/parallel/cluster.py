"""A Dask client and the workers behind it, as an executor of nndl jobs.

    with connect(jobs=2) as cluster:                        # 2 local processes
        run_experiment(exp, out, executor=cluster.run_jobs)
    with connect(scheduler="tcp://10.0.0.1:8786") as cluster:   # a running cluster
        ...

The client sends each job as a small dict (:func:`~nndl.experiments.job_to_dict`)
and gets back a result dict; it writes nothing itself (the caller does, as
each result arrives). Workers need no shared filesystem: each reads MNIST
from its own folder, checked when connecting (:meth:`Cluster.check_workers`).

Faults: if a worker process dies, the scheduler gives its runs to another
worker (up to ``distributed.scheduler.allowed-failures`` times, 3 by
default); a run whose training fails comes back as a failed result (see
:mod:`nndl.parallel.worker`), so it costs only itself.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Iterator, Mapping

from ..errors import ConfigError, DataError
from . import require, worker

#: seconds to wait for a scheduler to answer
CONNECT_TIMEOUT = 6.0
#: seconds to wait for a scheduler's first worker
WORKER_TIMEOUT = 30.0
SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")


def check_address(address: str) -> str:
    """A scheduler address as Dask takes it: ``tcp://HOST:PORT`` (``HOST:PORT``
    means tcp). Raises ConfigError for anything else."""
    text = str(address).strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "tcp", text
    host, _, port = rest.rpartition(":")
    if (scheme not in SCHEMES or not host or not re.fullmatch(r"[0-9]{1,5}", port)
            or not 0 < int(port) < 65536 or "/" in rest):
        raise ConfigError(f"--scheduler {address!r}: expected a Dask scheduler address "
                          f"SCHEME://HOST:PORT with SCHEME one of {', '.join(SCHEMES)}, e.g. tcp://127.0.0.1:8786")
    return f"{scheme}://{rest}"


class Cluster:
    """A connected Dask client (and the local cluster it started, if any).

    Use as a context manager, or call :meth:`close`."""

    def __init__(self, client, local=None, address: str | None = None) -> None:
        self.client = client
        self.local = local
        self.address = address or client.scheduler.address

    # -- what it is ----------------------------------------------------------------------
    @property
    def workers(self) -> dict:
        """``{address: info}`` of the workers the scheduler knows now."""
        return self.client.scheduler_info(n_workers=-1)["workers"]

    @property
    def n_threads(self) -> int:
        """Runs at a time: the workers' threads together."""
        return sum(w.get("nthreads", 1) for w in self.workers.values()) or 1

    def describe(self) -> str:
        n, t = len(self.workers), self.n_threads
        if self.local is not None:
            return f"{n} local worker process{'es' if n != 1 else ''}"
        return f"the Dask cluster at {self.address} ({n} worker{'s' if n != 1 else ''}, {t} thread{'s' if t != 1 else ''})"

    def check_workers(self, data_dir=None) -> dict:
        """Ask every worker for nndl's version and its MNIST files, before any work.

        Raises ConfigError (a worker cannot import nndl, or runs another
        version) or DataError (a worker lacks MNIST files, naming them)."""
        from .. import __version__

        try:
            infos = self.client.run(worker.worker_info, data_dir)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"the workers of {self.address} cannot run nndl ({e}): install nndl "
                              "(the same version as here) on every worker machine") from None
        other = {a: i["nndl"] for a, i in infos.items() if i["nndl"] != __version__}
        if other:
            a, v = next(iter(other.items()))
            raise ConfigError(f"worker {a} runs nndl {v}, this client nndl {__version__}: install the same "
                              "version on every machine")
        for a, i in infos.items():
            if i["missing"]:
                raise DataError(f"worker {a} (host {i['host']}) has no MNIST: {', '.join(i['missing'])} missing "
                                f"from {i['folder']}; on that machine set NNDL_DATA to a folder holding them, "
                                "or run `nndl data --fetch` there")
        return infos

    # -- the executor ----------------------------------------------------------------------
    def run_jobs(self, jobs: Mapping, *, data_dir=None, keep_predictions: bool = False
                 ) -> Iterator[tuple[str, dict]]:
        """Send ``jobs`` (``{label: job}``) to the workers and yield
        ``(label, result)`` as each finishes, in the order they finish.

        A job that fails, or whose workers all died, yields a failed result
        (``result["failed"]`` says why). Jobs not yet finished when the
        generator is closed (Ctrl-C) are cancelled."""
        from distributed import as_completed

        from ..experiments.base import job_to_dict

        if not jobs:
            return
        tag = uuid.uuid4().hex[:8]
        futures, dicts = {}, {}
        for i, (label, job) in enumerate(jobs.items()):
            dicts[label] = job_to_dict(job)
            fut = self.client.submit(worker.run_job, dicts[label], keep_predictions, data_dir,
                                     key=f"nndl-{_slug(label)}-{tag}", pure=False, priority=len(jobs) - i)
            futures[fut] = label
        try:
            for fut in as_completed(list(futures), loop=self.client.loop):
                label = futures[fut]
                result = worker.result_of(fut, dicts[label])
                fut.release()
                yield label, result
        finally:
            pending = [f for f in futures if not f.done()]
            if pending:
                self.client.cancel(pending)

    __call__ = run_jobs

    # -- lifetime --------------------------------------------------------------------------
    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.local is not None:
                self.local.close()

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=_-]+", "_", label)[:80]


def connect(jobs: int | None = None, scheduler: str | None = None, *, timeout: float = CONNECT_TIMEOUT,
            worker_timeout: float = WORKER_TIMEOUT, quiet: bool = True) -> Cluster:
    """A :class:`Cluster`: ``jobs`` local worker processes (one thread and one
    BLAS thread each), or the running cluster whose scheduler is at ``scheduler``.

    Raises ConfigError if the scheduler does not answer within ``timeout``
    seconds or has no worker within ``worker_timeout`` seconds, and names
    the ``cluster`` extra if Dask is not installed."""
    if (jobs is None) == (scheduler is None):
        raise ConfigError("give either a number of local processes (--jobs) or a scheduler address (--scheduler)")
    require("--scheduler" if scheduler else "--jobs", "distributed")
    from distributed import Client, LocalCluster

    if quiet:   # the command line reports what matters; Dask's own log lines would interleave with it
        logging.getLogger("distributed").setLevel(logging.ERROR)
    if scheduler is None:
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise ConfigError(f"--jobs must be a positive integer, got {jobs!r}")
        # processes, not threads: NumPy/numba training holds the GIL for much of a run;
        # the nanny sets OMP/OPENBLAS/MKL_NUM_THREADS=1 in each worker
        local = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, host="127.0.0.1",
                             dashboard_address=":0", silence_logs=logging.ERROR if quiet else logging.WARNING)
        try:
            return Cluster(Client(local, set_as_default=False), local)
        except BaseException:
            local.close()
            raise
    address = check_address(scheduler)
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as e:
        raise ConfigError(f"cannot reach a Dask scheduler at {address} within {timeout:g} s ({e}); start one "
                          f"with `dask scheduler` and workers with `dask worker {address}`") from None
    try:
        client.wait_for_workers(1, timeout=worker_timeout)
    except (OSError, TimeoutError):
        client.close()
        raise ConfigError(f"the Dask scheduler at {address} has no workers (waited {worker_timeout:g} s); start "
                          f"some with `dask worker {address}`") from None
    return Cluster(client, None, address)
