"""What runs on a worker: one job (or one search trial) in, a JSON-ready dict out.

These functions are imported by name on each Dask worker (local processes or
machines of a cluster), so they take and return only plain data: a job as
:func:`~nndl.experiments.job_to_dict` makes it, a result as
:func:`~nndl.experiments.execute` returns it. A worker reads MNIST from its
own folder (``data_dir`` if the client names one, else the worker's
``$NNDL_DATA`` or user cache), once per process, and never downloads it: a
worker without the files says which it lacks.

A run that fails in a way nndl expects (it diverges, its configuration does
not fit the data, the worker has no MNIST) comes back as a *failed* result,
``{"job", "key", "failed": reason, "worker": ...}``, so that one bad run
costs only itself; the client records the reason and goes on.
"""

from __future__ import annotations

import asyncio
import os
import platform
import threading
import time
from typing import Callable

from ..callbacks import Callback
from ..errors import DataError, NNDLError

#: MNIST splits loaded in this process, by folder (a worker keeps them for every job)
_DATA: dict[str, object] = {}
_DATA_LOCK = threading.Lock()


def where() -> str:
    """This process, as a failure reason names it: the Dask worker's address, else host:pid."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"{platform.node()}:{os.getpid()}"


def mnist(data_dir=None):
    """The book's MNIST split from this machine's folder, loaded once per process.

    Raises DataError naming the worker and the files it lacks."""
    from ..data import load_mnist, resolve_data_dir
    from ..data.download import how_to_get

    folder = resolve_data_dir(data_dir)
    with _DATA_LOCK:
        if str(folder) not in _DATA:
            missing = _missing(folder)
            if missing:
                raise DataError(f"worker {where()} has no MNIST: {', '.join(f'{n}.gz' for n in missing)} "
                                f"missing from {folder}. On that machine, {how_to_get(folder, missing)}")
            _DATA[str(folder)] = load_mnist(folder, download=False, progress=False)
        return _DATA[str(folder)]


def _missing(folder) -> list[str]:
    """The MNIST files ``folder`` lacks (none if it holds the book's pickle)."""
    from ..data.download import BOOK_PICKLE, missing_files

    return [] if (folder / BOOK_PICKLE).is_file() else missing_files(folder)


def worker_info(data_dir=None) -> dict:
    """What the client checks on every worker before sending work: nndl's
    version, the MNIST folder and the files missing there."""
    from .. import __version__
    from ..data import resolve_data_dir

    folder = resolve_data_dir(data_dir)
    missing = _missing(folder)
    return {"nndl": __version__, "folder": str(folder), "missing": [f"{n}.gz" for n in missing],
            "host": platform.node(), "pid": os.getpid()}


def failed_result(job_dict: dict, reason: str) -> dict:
    """The result of a job that did not finish: its job, key, why, and where."""
    from ..experiments.base import failed_result as failed

    return {**failed(job_dict, reason), "worker": where()}


def describe_error(e: BaseException) -> str:
    """``DivergedError: ...``: what a failure reason says."""
    from ..experiments.base import describe_error as describe

    return describe(e)


def result_of(future, job_dict: dict) -> dict:
    """A finished Dask future's result: the job's own, or a failed result if
    the task raised or the workers running it kept dying (on the client)."""
    from distributed import KilledWorker

    try:
        return future.result()
    except KilledWorker:
        return failed_result(job_dict, "the workers running it died repeatedly (KilledWorker)")
    except Exception as e:   # whatever a worker raised: it costs only this run
        return failed_result(job_dict, describe_error(e))


#: errors that cost only their own run (a bug elsewhere still raises)
RUN_ERRORS = (NNDLError, FloatingPointError, MemoryError)


def run_job(job_dict: dict, keep_predictions: bool = False, data_dir=None) -> dict:
    """Do one job (a dict from :func:`~nndl.experiments.job_to_dict`) and
    return its result dict, or a failed result saying why."""
    from ..experiments.base import execute, job_from_dict

    try:
        job = job_from_dict(job_dict)
        result = execute(job, data=mnist(data_dir), keep_predictions=keep_predictions)
    except RUN_ERRORS as e:
        return failed_result(job_dict, describe_error(e))
    return result   # exactly what a serial run gives (no worker name: same seeds, same dict)


# -- search trials ------------------------------------------------------------------------
class ReportValidation(Callback):
    """The pruning callback of one search trial: after each epoch it passes the
    validation accuracy to ``report(epoch, value)``, which answers whether to
    stop now (Optuna's pruner decides, on the client)."""

    def __init__(self, report: Callable[[int, float], bool]) -> None:
        self.report = report
        self.pruned_at: int | None = None

    def on_epoch_end(self, trainer, epoch, logs):
        value = logs.get("validation_accuracy")
        # after the last epoch the trial is done: it is reported, and complete whatever the pruner says
        if value is not None and self.report(epoch, float(value)) and epoch != trainer.last_epoch:
            self.pruned_at = epoch
            trainer.stop_training = True
            trainer.stop_reason = f"pruned after epoch {epoch}"


def run_trial(job_dict: dict, report: Callable[[int, float], bool], data=None, data_dir=None) -> dict:
    """Train one search trial: ``{"value": final validation accuracy, "pruned":
    epoch or None, "history", "wall_seconds"}``, or a failed result.

    ``report(epoch, validation_accuracy)`` is called after every epoch and
    returns True to stop the trial (pruning)."""
    from ..config import run
    from ..experiments.base import job_from_dict

    t0 = time.perf_counter()
    reporter = ReportValidation(report)
    try:
        config = job_from_dict(job_dict)
        result = run(config, data=data if data is not None else mnist(data_dir), callbacks=[reporter])
    except RUN_ERRORS as e:
        return failed_result(job_dict, describe_error(e))
    if result.interrupted:
        raise KeyboardInterrupt
    values = result.history["validation_accuracy"] if "validation_accuracy" in result.history else []
    if not values or values[-1] is None:
        return failed_result(job_dict, "the run evaluated no validation accuracy")
    return {"job": job_dict, "value": float(values[-1]), "pruned": reporter.pruned_at,
            "epochs": result.history.epochs, "history": result.history.to_dict(),
            "wall_seconds": round(time.perf_counter() - t0, 3), "worker": where()}


def run_trial_on_worker(job_dict: dict, channel: str, trial: int, data_dir=None, answer_timeout: float = 600.0
                        ) -> dict:
    """:func:`run_trial` as a Dask task: each epoch's validation accuracy goes
    to the client through the queue ``channel`` as ``(trial, epoch, value)``;
    the client's answer ``(epoch, prune)`` comes back through ``channel-trial``.
    If the client has gone (no answer within ``answer_timeout`` s) the trial stops."""
    from distributed import Queue

    reports, answers = Queue(channel), Queue(f"{channel}-{trial}")

    def report(epoch: int, value: float) -> bool:
        reports.put((trial, epoch, value))
        deadline = time.monotonic() + answer_timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                step, prune = answers.get(timeout=left)
            except (TimeoutError, asyncio.TimeoutError):
                break
            if step == epoch:   # an answer to an earlier attempt of this trial is stale
                return bool(prune)
        return True

    return run_trial(job_dict, report, data_dir=data_dir)
