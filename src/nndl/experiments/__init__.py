"""The book's experiments: each is a set of jobs (run configurations or
baselines), the figures drawn from their results, the numbers the book
states beside ours, and the qualitative result the book draws.

    from nndl import experiments
    experiments.names()                                  # every experiment
    res = experiments.run_experiment(experiments.get("overfitting"), "runs/experiments", quick=True)
    experiments.write_report("runs/experiments")         # runs/experiments/report.md

No printing here: the command line (``nndl experiment``) reports progress.
"""

from __future__ import annotations

from ..errors import ConfigError
from . import chapter1, chapter3, chapter5, chapter6
from .base import Baseline, BookRow, Check, Experiment, Results, execute, job_from_dict, job_key, job_to_dict
from .report import write_report
from .runner import ExperimentResult, check_out_dir, run_experiment, run_experiments

EXPERIMENTS: dict[str, Experiment] = {
    e.name: e for e in chapter1.EXPERIMENTS + chapter3.EXPERIMENTS + chapter5.EXPERIMENTS + chapter6.EXPERIMENTS
}


def names() -> list[str]:
    return list(EXPERIMENTS)


def get(name: str) -> Experiment:
    """The experiment called ``name``; ConfigError listing the valid names otherwise."""
    try:
        return EXPERIMENTS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown experiment {name!r}; valid experiments: {', '.join(EXPERIMENTS)}") from None


__all__ = ["EXPERIMENTS", "names", "get", "Experiment", "Baseline", "BookRow", "Check", "Results", "execute",
           "job_key", "job_to_dict", "job_from_dict", "run_experiment", "run_experiments", "ExperimentResult",
           "check_out_dir",
           "write_report"]
