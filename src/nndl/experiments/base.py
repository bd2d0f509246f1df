"""What an experiment is made of: jobs (runs), their results, figures, the
book's numbers and the qualitative result the book draws.

A *job* is a value that says everything about one piece of work: a
:class:`~nndl.config.RunConfig` (train a network) or a :class:`Baseline`
(average darkness, SVM). :func:`execute` does one job and returns a
JSON-ready result; that is all a worker process or a Dask worker needs.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from ..config import RunConfig, run
from ..errors import ConfigError, HistoryError, NNDLError
from ..history import History


@dataclass(frozen=True)
class Baseline:
    """One of the book's baselines as a job.

    Args:
        kind: ``darkness`` (average darkness, ch. 1) or ``svm`` (scikit-learn's SVC).
        gamma: SVM kernel width: ``auto`` (the book's era) or ``scale`` (today's default).
        train_size: fit on the first N training images (default: all 50,000).
        eval_size: score on the first N validation and test images (default: all).
    """

    kind: str
    gamma: str = "auto"
    train_size: int | None = None
    eval_size: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("darkness", "svm"):
            raise ConfigError(f"unknown baseline {self.kind!r}; valid: darkness, svm")
        if self.gamma not in ("auto", "scale"):
            raise ConfigError(f"SVM gamma must be 'auto' or 'scale', got {self.gamma!r}")
        for name in ("train_size", "eval_size"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.kind == "darkness":
            object.__setattr__(self, "gamma", "auto")   # unused: one canonical form
        if self.train_size == 50000:
            object.__setattr__(self, "train_size", None)


Job = RunConfig | Baseline


def job_to_dict(job: Job) -> dict:
    if isinstance(job, RunConfig):
        return {"run": job.to_dict()}
    if isinstance(job, Baseline):
        return {"baseline": asdict(job)}
    raise ConfigError(f"not a job: {job!r}")


def job_from_dict(data: Mapping) -> Job:
    if isinstance(data, Mapping) and set(data) == {"run"}:
        return RunConfig.from_dict(data["run"])
    if isinstance(data, Mapping) and set(data) == {"baseline"} and isinstance(data["baseline"], Mapping):
        try:
            return Baseline(**data["baseline"])
        except TypeError as e:
            raise ConfigError(f"not a baseline job: {e}") from None
    raise ConfigError("a job is {'run': {...}} or {'baseline': {...}}")


def job_key(job: Job) -> str:
    """Equal jobs, equal keys (the cache names finished runs by it)."""
    text = json.dumps(job_to_dict(job), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def describe_error(e: BaseException) -> str:
    """``DivergedError: ...``: what a failed run's reason says."""
    return f"{type(e).__name__}: {e}"


def failed_result(job_dict: Mapping, reason: str) -> dict:
    """The result of a job that did not finish: its job (as a dict), key and why."""
    try:
        key = job_key(job_from_dict(job_dict))
    except NNDLError:
        key = None
    return {"job": dict(job_dict), "key": key, "failed": reason}


def job_work(job: Job) -> float:
    """A rough measure of what ``job`` costs, to start the longest jobs first
    (so that N workers finish a batch close together): for a training, epochs
    x training images x multiply-adds per image; an RBF SVM's fit grows with
    the square of its training images."""
    from ..config import MNIST_INPUTS
    from ..memory import multiply_adds

    if isinstance(job, Baseline):
        n = job.train_size or 50_000
        return float(n) * n * MNIST_INPUTS if job.kind == "svm" else float(n)
    return float(job.epochs) * job.n_train * max(1, multiply_adds(job.build_layers(), (MNIST_INPUTS,)))


def _digits(labels: np.ndarray) -> str:
    return "".join(str(int(v)) for v in labels)


def execute(job: Job, *, data=None, data_dir=None, keep_predictions: bool = False,
            callbacks: Sequence = ()) -> dict:
    """Do one job and return its result as a JSON-ready dict.

    For a :class:`RunConfig`: ``{"job", "key", "history", "wall_seconds"}``,
    the history carrying the run configuration (plus ``"predictions"``, the
    final network's predicted test digits as a string, if asked for). For a
    :class:`Baseline`: ``{"job", "key", "validation_accuracy",
    "test_accuracy", "wall_seconds"}``.
    """
    t0 = time.perf_counter()
    if data is None:
        from ..data import load_mnist
        data = load_mnist(data_dir, progress=False)
    out: dict = {"job": job_to_dict(job), "key": job_key(job)}
    if isinstance(job, RunConfig):
        result = run(job, data=data, callbacks=callbacks)
        if result.interrupted:
            raise KeyboardInterrupt
        out["history"] = result.history.to_dict()
        if keep_predictions:
            test = data.test if job.test_size is None else data.test[:job.test_size]
            out["predictions"] = _digits(result.network.predict(test.x))
            out["labels"] = _digits(test.y)
    else:
        out.update(_baseline(job, data))
    out["wall_seconds"] = round(time.perf_counter() - t0, 3)
    return out


def without_times(result: dict) -> dict:
    """A copy of an :func:`execute` result without its clock readings (wall and
    epoch times, start time): what two runs of one job must agree on."""
    result = json.loads(json.dumps(result))
    result.pop("wall_seconds", None)
    history = result.get("history", {})
    history.pop("epoch_seconds", None)
    for key in ("started", "wall_seconds"):
        history.get("run", {}).pop(key, None)
    return result


def _baseline(job: Baseline, data) -> dict:
    train = data.training if job.train_size is None else data.training[:job.train_size]
    sets = {"validation": data.validation, "test": data.test}
    if job.eval_size is not None:
        sets = {k: v[:job.eval_size] for k, v in sets.items()}
    out = {}
    if job.kind == "svm":
        from sklearn import svm

        clf = svm.SVC(gamma=job.gamma)
        clf.fit(train.x, train.y)
    for name, ds in sets.items():
        if job.kind == "darkness":
            from ..book.mnist_average_darkness import count_correct
            correct = int(count_correct((train.x, train.y), (ds.x, ds.y)))
        else:
            correct = int(np.sum(clf.predict(ds.x) == ds.y))
        out[f"{name}_correct"], out[f"{name}_total"] = correct, len(ds.y)
        out[f"{name}_accuracy"] = correct / len(ds.y)
    return out


# -- results, as the figures and tables see them ----------------------------------------------
class Results:
    """The finished jobs of one experiment, by label."""

    def __init__(self, results: Mapping[str, dict]) -> None:
        self.raw = dict(results)
        self._histories: dict[str, History] = {}

    def __contains__(self, label: str) -> bool:
        return label in self.raw

    def labels(self, prefix: str = "") -> list[str]:
        return [k for k in self.raw if k.startswith(prefix)]

    def history(self, label: str) -> History:
        if label not in self._histories:
            try:
                self._histories[label] = History.from_dict(self.raw[label]["history"], label)
            except KeyError:
                raise HistoryError(f"no history for run {label!r}") from None
        return self._histories[label]

    def value(self, label: str, key: str) -> float:
        return self.raw[label][key]


@dataclass
class BookRow:
    """A number the book states, beside ours (one value per seed).

    ``within``: whether the book's figure lies in our run-to-run band, i.e.
    in ``[min(ours) - tol, max(ours) + tol]`` (or, with ``rel``, in
    ``[min(ours) / rel, max(ours) * rel]``)."""

    quantity: str
    book: float
    ours: list[float]
    unit: str = "%"
    tol: float = 0.5
    rel: float | None = None
    note: str = ""

    @property
    def band(self) -> tuple[float, float]:
        lo, hi = min(self.ours), max(self.ours)
        if self.rel:
            return lo / self.rel, hi * self.rel
        return lo - self.tol, hi + self.tol

    @property
    def within(self) -> bool:
        if not self.ours or any(not math.isfinite(v) for v in self.ours):
            return False
        lo, hi = self.band
        return lo <= self.book <= hi

    def to_dict(self) -> dict:
        return {"quantity": self.quantity, "book": self.book, "ours": self.ours, "unit": self.unit,
                "band": list(self.band) if self.ours else None, "within": self.within, "note": self.note}


@dataclass
class Check:
    """A qualitative result the book draws, checked on our runs."""

    claim: str
    passed: bool
    detail: str = ""

    def to_dict(self) -> dict:
        return {"claim": self.claim, "passed": bool(self.passed), "detail": self.detail}


@dataclass(frozen=True)
class Experiment:
    """One of the book's experiments.

    Args:
        name, chapter, description: how ``nndl experiment list`` shows it.
        make_jobs: ``(quick, seeds) -> {label: job}``; ``seeds`` is a tuple of ints.
        figures: ``results -> {file stem: Figure}``.
        book_rows: ``results -> [BookRow]``.
        checks: ``results -> [Check]``.
        default_seeds: how many seeds unless ``--seeds`` says otherwise.
        keep_predictions: keep each network's test predictions (ensembles).
    """

    name: str
    chapter: int
    description: str
    make_jobs: Callable[[bool, tuple[int, ...]], dict]
    figures: Callable[[Results], dict] = field(default=lambda r: {})
    book_rows: Callable[[Results], list] = field(default=lambda r: [])
    checks: Callable[[Results], list] = field(default=lambda r: [])
    default_seeds: int = 1
    keep_predictions: bool = False

    def jobs(self, quick: bool = False, seeds: int | None = None) -> dict[str, Job]:
        n = self.default_seeds if seeds is None else seeds
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"seeds must be a positive integer, got {n!r}")
        return self.make_jobs(bool(quick), tuple(range(n)))
