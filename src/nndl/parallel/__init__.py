"""Many trainings at once: local processes or a Dask cluster, and Optuna search on top.

An experiment is a set of independent runs, and a hyper-parameter search a
stream of them; both go to the same engine, `Dask distributed
<https://distributed.dask.org>`_:

- :func:`connect` gives a :class:`Cluster`: ``connect(jobs=2)`` starts a
  local cluster of 2 worker processes (one BLAS thread each) and
  ``connect(scheduler="tcp://host:8786")`` joins a cluster started with
  ``dask scheduler`` / ``dask worker``. ``cluster.run_jobs`` is an executor
  for :func:`~nndl.experiments.run_experiment`: jobs travel as dicts, results
  come back as dicts as each run finishes, and the client alone writes them.
- :mod:`nndl.parallel.search` runs an Optuna study whose trials are runs on
  the same workers (or in this process), pruned from their per-epoch
  validation accuracy.

Every worker trains with the run's own seed and one BLAS thread, so a run
gives the same numbers serially, on local processes or on a cluster. A
worker that dies mid-run costs only that run: the scheduler gives it to
another worker. A run that fails (it diverges, say) comes back as a failed
result with its reason.

Dask and Optuna are an optional extra: ``pip install "nndl[cluster]"``.
Importing this package does not import them.
"""

from __future__ import annotations

import importlib

from ..errors import ConfigError

EXTRA = 'pip install "nndl[cluster]"'


def require(feature: str, *modules: str) -> None:
    """Import ``modules`` (default: dask's ``distributed`` and ``optuna``) or
    raise ConfigError saying that ``feature`` needs the ``cluster`` extra."""
    for name in modules or ("distributed", "optuna"):
        try:
            importlib.import_module(name)
        except ImportError:
            raise ConfigError(f"{feature} needs the optional package {name!r} (Dask distributed and Optuna): "
                              f"{EXTRA}") from None


def connect(*args, **kwargs):
    """See :func:`nndl.parallel.cluster.connect`."""
    from .cluster import connect as _connect

    return _connect(*args, **kwargs)


__all__ = ["EXTRA", "require", "connect"]
