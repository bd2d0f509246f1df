"""Running an experiment: the jobs that are not cached yet, then its figures,
the book's numbers beside ours, and the qualitative checks.

Layout under ``out`` (one folder per experiment)::

    out/NAME/runs/LABEL--KEY.json   one finished job (a history with its configuration)
    out/NAME/results.json           the summary: runs, book rows, checks, figures
    out/NAME/*.png                  the figures

A job is cached by its key (a hash of its configuration): a run file with
that key, in this experiment's folder or another's, means the job is done.
Deleting a run file makes the next ``run_experiment`` train that job again,
and only that one.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

from ..errors import ConfigError, HistoryError, NNDLError
from ..fileio import atomic_write_text
from .base import (Experiment, Job, Results, describe_error, execute, failed_result, job_key, job_to_dict,
                   job_work)

#: results.json format
FORMAT = "nndl-experiment"


def check_out_dir(out) -> Path:
    """``out`` as a folder that exists (or can be made) and can be written,
    checked before any training. Raises ConfigError saying why not."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is not a folder")
    probe_dir = out
    while not probe_dir.exists():
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise ConfigError(f"--out {out}: {probe_dir} is a file, not a folder")
    if not os.access(probe_dir, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: cannot write in {probe_dir}")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".nndl-write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"--out {out}: cannot write there ({e.strerror or e})") from None
    return out


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=_-]+", "_", label).strip("_") or "run"


def run_file(out: Path, name: str, label: str, key: str) -> Path:
    return out / name / "runs" / f"{_slug(label)}--{key}.json"


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        raise HistoryError(f"cannot read {path}: {e}") from None


def find_cached(out: Path, name: str, label: str, key: str) -> dict | None:
    """The finished result of job ``key``: this experiment's run file, else
    any experiment's under ``out`` (copied here). A file that cannot be read
    or whose key does not match is ignored (the job runs again)."""
    own = run_file(out, name, label, key)
    candidates = [own] + sorted(p for p in out.glob(f"*/runs/*--{key}.json") if p != own)
    for path in candidates:
        if not path.is_file():
            continue
        try:
            result = _read_json(path)
        except HistoryError:
            continue
        if isinstance(result, dict) and result.get("key") == key:
            if path != own:
                atomic_write_text(own, json.dumps(result) + "\n")
            return result
    return None


def execute_serially(jobs: Mapping[str, Job], *, data_dir=None, keep_predictions=False
                     ) -> Iterator[tuple[str, dict]]:
    """Do ``jobs`` one after the other in this process, loading MNIST once."""
    from ..data import load_mnist

    data = load_mnist(data_dir, progress=False) if jobs else None
    for label, job in jobs.items():
        try:
            result = execute(job, data=data, keep_predictions=keep_predictions)
        except (NNDLError, FloatingPointError) as e:   # e.g. a diverged run: it costs only itself
            result = failed_result(job_to_dict(job), describe_error(e))
        yield label, result


@dataclass
class ExperimentResult:
    experiment: Experiment
    out: Path
    results: Results
    trained: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)   # label -> why (not cached: runs again next time)
    rows: list = field(default_factory=list)
    checks: list = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def folder(self) -> Path:
        return self.out / self.experiment.name


@dataclass
class _Plan:
    """One experiment's jobs, split into the cached ones and those to run."""
    experiment: Experiment
    jobs: dict
    keys: dict
    results: dict = field(default_factory=dict)
    cached: list = field(default_factory=list)
    missing: dict = field(default_factory=dict)
    trained: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)   # label -> why


def _plan(experiment: Experiment, out: Path, quick: bool, seeds: int | None, only: tuple | None,
          on_result) -> _Plan:
    jobs = experiment.jobs(quick, seeds)
    if only:
        unknown = [o for o in only if not any(label.startswith(o) for label in jobs)]
        if unknown:
            raise ConfigError(f"--only {', '.join(unknown)}: {experiment.name} has no such runs; "
                              f"its runs: {', '.join(jobs)}")
    plan = _Plan(experiment, jobs, {label: job_key(job) for label, job in jobs.items()})
    for label, job in jobs.items():
        found = find_cached(out, experiment.name, label, plan.keys[label])
        if found is not None:
            plan.results[label] = found
            plan.cached.append(label)
            if on_result:
                on_result(label, found, True)
        elif only is None or any(label.startswith(o) for o in only):
            plan.missing[label] = job
    return plan


def longest_first(jobs: Mapping[str, Job]) -> dict[str, Job]:
    """``jobs`` ordered by :func:`~nndl.experiments.base.job_work`, biggest
    first: N workers taking jobs in this order finish close together."""
    return dict(sorted(jobs.items(), key=lambda item: -job_work(item[1])))


def run_experiments(experiments: Sequence[Experiment], out, *, quick: bool = False, seeds: int | None = None,
                    data_dir=None, only: Iterable[str] | None = None, executor: Callable | None = None,
                    on_result: Callable[[str, dict, bool], None] | None = None) -> list[ExperimentResult]:
    """Run the jobs of ``experiments`` that are not cached under ``out`` as one
    batch, then write each experiment's figures and ``results.json``.

    One batch keeps N workers busy until the end: the jobs go to ``executor``
    together, the biggest first (:func:`~nndl.experiments.base.job_work`), so
    that the workers finish close together. A job two experiments share (the
    same configuration) runs once.

    Args:
        quick: the small versions (seconds), as CI runs them.
        seeds: how many seeds (default: each experiment's own).
        only: run only the jobs whose label starts with one of these (the
            others are used if cached, else left out of figures and tables);
            one experiment only.
        executor: ``executor(jobs, data_dir=..., keep_predictions=...)`` yielding
            ``(label, result)`` as jobs finish (default: one after the other here;
            :mod:`nndl.parallel` offers processes and Dask). A result with a
            ``"failed"`` reason is recorded in ``ExperimentResult.failed`` and
            not written as a finished run.
        on_result: called as ``on_result(label, result, cached)`` for every job;
            with several experiments the label is ``NAME/LABEL``.
    """
    t0 = time.perf_counter()
    out = check_out_dir(out)
    only = tuple(only) if only else None
    if only and len(experiments) != 1:
        raise ConfigError("--only selects runs of one experiment; name a single experiment with it")
    several = len(experiments) > 1

    def tell(name):
        if on_result is None:
            return None
        return (lambda label, result, cached: on_result(f"{name}/{label}" if several else label, result, cached))

    plans = [_plan(exp, out, quick, seeds, only, tell(exp.name)) for exp in experiments]
    # one batch: each distinct configuration once, the biggest first
    batch: dict[str, Job] = {}
    first: dict[str, str] = {}                          # job key -> its label in the batch
    wanted: dict[str, list[tuple[_Plan, str]]] = {}     # batch label -> the experiments' runs it is
    for plan in plans:
        for label, job in plan.missing.items():
            key = plan.keys[label]
            if key not in first:
                first[key] = f"{plan.experiment.name}/{label}" if several else label
                batch[first[key]] = job
            wanted.setdefault(first[key], []).append((plan, label))
    batch = longest_first(batch)
    keep = any(plan.experiment.keep_predictions for plan in plans if plan.missing)
    for batch_label, result in (executor or execute_serially)(batch, data_dir=data_dir, keep_predictions=keep):
        for plan, label in wanted[batch_label]:
            name = plan.experiment.name
            if result.get("failed"):
                plan.failed[label] = result["failed"]
            else:
                atomic_write_text(run_file(out, name, label, plan.keys[label]), json.dumps(result) + "\n")
                plan.results[label] = result
                plan.trained.append(label)
            if on_result:
                tell(name)(label, result, False)
    seconds = time.perf_counter() - t0
    return [_finish(plan, out, quick, seconds) for plan in plans]


def run_experiment(experiment: Experiment, out, *, quick: bool = False, seeds: int | None = None,
                   data_dir=None, only: Iterable[str] | None = None,
                   executor: Callable | None = None,
                   on_result: Callable[[str, dict, bool], None] | None = None) -> ExperimentResult:
    """Run ``experiment``'s jobs that are not cached under ``out``, then write
    its figures and ``results.json`` (:func:`run_experiments` with one)."""
    return run_experiments([experiment], out, quick=quick, seeds=seeds, data_dir=data_dir, only=only,
                           executor=executor, on_result=on_result)[0]


def _finish(plan: _Plan, out: Path, quick: bool, seconds: float) -> ExperimentResult:
    """An experiment's figures, book rows, checks and results.json from its runs."""
    from ..plots import save_figure

    experiment, jobs, keys, results = plan.experiment, plan.jobs, plan.keys, plan.results
    folder = out / experiment.name
    ordered = Results({label: results[label] for label in jobs if label in results})
    res = ExperimentResult(experiment, out, ordered, plan.trained, plan.cached, plan.failed)
    complete = len(ordered.raw) == len(jobs)
    figures = experiment.figures(ordered) if complete else _partial(experiment.figures, ordered)
    for stem, fig in figures.items():
        res.figures.append(save_figure(fig, folder / f"{stem}.png"))
    res.rows = experiment.book_rows(ordered) if complete else _partial(experiment.book_rows, ordered, [])
    res.checks = experiment.checks(ordered) if complete else []
    res.seconds = seconds
    summary = {
        "format": FORMAT, "name": experiment.name, "chapter": experiment.chapter,
        "description": experiment.description, "quick": bool(quick), "complete": complete,
        "runs": {label: {"key": keys[label], "file": str(run_file(out, experiment.name, label, keys[label])
                                                          .relative_to(folder)) if label in results else None,
                         "wall_seconds": results[label].get("wall_seconds") if label in results else None}
                 for label in jobs},
        "failed": plan.failed,
        "book": [row.to_dict() for row in res.rows],
        "checks": [c.to_dict() for c in res.checks],
        "figures": [p.name for p in res.figures],
    }
    atomic_write_text(folder / "results.json", json.dumps(summary, indent=1) + "\n")
    return res


def _partial(fn, results, empty=None):
    """Figures/rows of an incomplete experiment: whatever can be made of the runs there are."""
    try:
        return fn(results)
    except (KeyError, IndexError, ValueError, NNDLError):
        return {} if empty is None else empty


def read_summary(folder: Path) -> dict | None:
    path = Path(folder) / "results.json"
    if not path.is_file():
        return None
    data = _read_json(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise HistoryError(f"{path} is not an nndl experiment summary")
    return data
