"""Hyper-parameter search with Optuna, trials trained here or on Dask workers.

The book (chapter 3, "How to choose a neural network's hyper-parameters?")
tunes eta, lambda and the rest by hand. A search automates that: a base
:class:`~nndl.config.RunConfig` (the fixed options), a :class:`Space` of the
values to vary, and an Optuna study that proposes a configuration per
trial, trains it, and keeps the one with the best **validation** accuracy
(the test data are never looked at: they are for the final report only)::

    space = Space.parse(["eta=log:0.01:10", "lmbda=log:0.01:10"])
    base = RunConfig(sizes=(784, 30, 10), cost="cross-entropy", epochs=5, train_size=10000)
    study = open_study(open_storage(parse_storage(None, "runs/search")), None, base, space)
    summary = search(study, base, space, trials=30)                   # in this process
    with connect(jobs=2) as cluster:                                   # or 2 at a time
        summary = search(study, base, space, trials=30, cluster=cluster)

The objective is the validation accuracy after the last epoch: the accuracy
of the network that ``nndl train`` with that configuration gives you.
After every epoch a trial reports its validation accuracy, and Optuna's
median pruner stops a trial whose accuracy is below the median of the
completed trials at the same epoch (from the middle epoch on, once five
trials have completed).

The study lives in Optuna storage: a journal file (the default) or an RDB
URL. Every finished trial is there as soon as it finishes, so running the
same search again resumes it: ``trials`` is the number of finished trials
the study should hold, and a trial interrupted by Ctrl-C is put back in the
queue to be run first. Several machines can run one search together by
naming the same RDB storage (``--storage postgresql://...``).

Only this module talks to Optuna; trials are plain jobs
(:func:`~nndl.experiments.job_to_dict`) trained by :mod:`nndl.parallel.worker`.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import math
import os
import socket
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..config import ConfigFieldError, RunConfig
from ..errors import ConfigError, NNDLError
from ..fileio import process_alive, signals_deferred
from . import require, worker

SYNTAX = ("NAME=KIND:LOW:HIGH with KIND float, log, int or logint (log: sampled on a log scale), "
          "or NAME=choice:A,B,...; e.g. eta=log:0.01:10, hidden=int:10:200, batch_size=choice:10,20,50")
KINDS = ("float", "log", "int", "logint", "choice")

#: what a search may vary: RunConfig fields, plus ``hidden`` (the size of every
#: hidden layer of a ``sizes`` network); the numeric ones with their type
NUMERIC = {"eta": float, "lmbda": float, "l1": float, "momentum": float, "max_degrees": float,
           "epochs": int, "batch_size": int, "max_shift": int, "hidden": int}
CATEGORICAL = ("activation", "output_activation", "cost", "init", "dropout_scale", "dtype")
ALIASES = {"lambda": "lmbda", "mini_batch_size": "batch_size"}


# -- the space -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    """One searched value: ``kind`` float/log/int/logint between ``low`` and
    ``high`` (both included), or ``choice`` among ``choices``."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple = ()

    def distribution(self):
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "choice":
            return CategoricalDistribution(self.choices)
        if self.kind in ("int", "logint"):
            return IntDistribution(int(self.low), int(self.high), log=self.kind == "logint")
        return FloatDistribution(self.low, self.high, log=self.kind == "log")

    @property
    def spec(self) -> str:
        """Back to the command-line form, ``eta=log:0.01:10``."""
        if self.kind == "choice":
            return f"{self.name}=choice:{','.join(map(str, self.choices))}"
        return f"{self.name}={self.kind}:{self.low:g}:{self.high:g}"

    def endpoints(self) -> list:
        return list(self.choices) if self.kind == "choice" else [self.low, self.high]


def _number(text: str, integer: bool):
    return int(text) if integer else float(text)


def _choice_value(text: str):
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def parse_param(text: str) -> Param:
    """``"eta=log:0.01:10"`` -> ``Param("eta", "log", 0.01, 10.0)``.

    Raises ConfigError naming the malformed ``--param`` and showing the syntax."""
    def bad(why: str):
        raise ConfigError(f"--param {text!r}: {why}; expected {SYNTAX}")

    name, sep, spec = str(text).partition("=")
    name = name.strip().replace("-", "_")
    name = ALIASES.get(name, name)
    if not sep or not name or not spec:
        bad("no NAME=SPEC")
    if name not in NUMERIC and name not in CATEGORICAL:
        bad(f"cannot search {name!r} (searchable: {', '.join(list(NUMERIC) + list(CATEGORICAL))})")
    kind, _, rest = spec.partition(":")
    kind = kind.strip()
    if kind not in KINDS:
        bad(f"unknown kind {kind!r} (kinds: {', '.join(KINDS)})")
    if kind == "choice":
        choices = tuple(_choice_value(c.strip()) for c in rest.split(",") if c.strip())
        if len(choices) < 1 or len(set(map(str, choices))) != len(choices):
            bad("choice needs one or more distinct values separated by commas")
        return Param(name, kind, choices=choices)
    if name in CATEGORICAL:
        bad(f"{name} takes names: use {name}=choice:A,B")
    parts = rest.split(":")
    if len(parts) != 2:
        bad(f"{kind} needs LOW:HIGH")
    integer = kind in ("int", "logint")
    if integer and NUMERIC[name] is float:
        bad(f"{name} is a real number: use float or log")
    try:
        low, high = (_number(p.strip(), integer) for p in parts)
    except ValueError:
        bad(f"LOW and HIGH must be {'integers' if integer else 'numbers'}")
    if not (math.isfinite(low) and math.isfinite(high)) or not low < high:
        bad("LOW must be less than HIGH")
    if kind in ("log", "logint") and low <= 0:
        bad("a log scale needs LOW > 0")
    if NUMERIC[name] is int and kind == "float":
        kind = "int" if float(low).is_integer() and float(high).is_integer() else bad(f"{name} is an integer: use int")
    return Param(name, kind, low, high)


def read_space_file(path) -> list[str]:
    """The ``--param`` specs in a small text file, one per line (``#`` comments)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"--space {path}: cannot read it ({getattr(e, 'strerror', None) or e})") from None
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]


@dataclass(frozen=True)
class Space:
    """The values a search varies, applied on top of a base configuration."""

    params: tuple[Param, ...]

    @classmethod
    def parse(cls, specs: Sequence[str]) -> "Space":
        params = tuple(parse_param(s) for s in specs)
        if not params:
            raise ConfigError(f"nothing to search: give one or more --param {SYNTAX.split(' with ')[0]}")
        names = [p.name for p in params]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(f"--param {twice[0]} is given twice")
        return cls(params)

    def distributions(self) -> dict:
        return {p.name: p.distribution() for p in self.params}

    def config(self, base: RunConfig, values: dict) -> RunConfig:
        """``base`` with the searched ``values`` (``{name: value}``) put in."""
        changes = {k: v for k, v in values.items() if k != "hidden"}
        if "hidden" in values:
            changes["sizes"] = (base.sizes[0],) + (int(values["hidden"]),) * (len(base.sizes) - 2) + (base.sizes[-1],)
        return base.replace(**changes)

    def check(self, base: RunConfig) -> None:
        """Every end of every range must make a valid run with ``base``: bad
        ranges fail now, not after an hour of trials."""
        for p in self.params:
            if p.name == "hidden" and (base.layers is not None or len(base.sizes) < 3):
                raise ConfigError(f"--param {p.spec}: hidden sets the hidden layers of a --sizes network, and "
                                  "this one has none")
            for value in p.endpoints():
                try:
                    self.config(base, {p.name: value})
                except ConfigFieldError as e:
                    raise ConfigError(f"--param {p.spec}: {e}") from None

    def to_dict(self) -> dict:
        return {p.name: p.spec for p in self.params}


def trial_base(base: RunConfig) -> RunConfig:
    """What trials train: ``base`` evaluated on the validation data only
    (accuracy, every epoch: the pruner's input), never on the test data."""
    return base.replace(monitor=["validation:accuracy"], monitor_every=1)


# -- storage and study ---------------------------------------------------------------------
#: RDB URL schemes (SQLAlchemy dialects; a driver may follow, as in postgresql+psycopg2://)
RDB_SCHEMES = ("sqlite", "postgresql", "mysql", "mariadb", "oracle", "mssql")
JOURNAL = "study.journal"
#: how often the client looks for trials' reports and results
POLL_SECONDS = 0.05


def parse_storage(text: str | None, out) -> tuple[str, str]:
    """``("journal", path)`` or ``("rdb", url)`` for a ``--storage`` value
    (default: the journal file ``out/study.journal``). Raises ConfigError for
    an unknown URL scheme, before anything is opened."""
    if text is None:
        return "journal", str(Path(out) / JOURNAL)
    text = str(text).strip()
    if "://" in text:
        scheme = text.split("://", 1)[0].lower()
        if scheme.split("+", 1)[0] not in RDB_SCHEMES:
            raise ConfigError(f"--storage {text!r}: unknown storage URL scheme {scheme!r}; give a file name (an "
                              f"Optuna journal file) or an RDB URL: {', '.join(s + '://' for s in RDB_SCHEMES)}"
                              " (e.g. sqlite:///study.db, postgresql://user@host/db)")
        return "rdb", text
    if not text:
        raise ConfigError("--storage is empty: give a file name or an RDB URL")
    return "journal", text


def open_storage(spec: tuple[str, str]):
    """Optuna storage for :func:`parse_storage`'s answer; ConfigError if it cannot be opened."""
    require("nndl search", "optuna")
    import optuna

    kind, where = spec
    try:
        if kind == "journal":
            from optuna.storages.journal import JournalFileBackend

            Path(where).parent.mkdir(parents=True, exist_ok=True)
            return optuna.storages.JournalStorage(JournalFileBackend(where))
        return optuna.storages.RDBStorage(where)
    except ImportError as e:
        raise ConfigError(f"--storage {where}: its database driver is not installed ({e})") from None
    except (OSError, ValueError) as e:
        raise ConfigError(f"--storage {where}: cannot open it ({getattr(e, 'strerror', None) or e})") from None
    except Exception as e:   # SQLAlchemy's errors (bad URL, unreachable server) share no base class with ours
        raise ConfigError(f"--storage {where}: cannot open it ({type(e).__name__}: {e})") from None


def study_name(base: RunConfig, space: Space) -> str:
    """The default study name: one per (fixed options, space)."""
    text = json.dumps({"base": base.to_dict(), "space": space.to_dict()}, sort_keys=True)
    return "nndl-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def _whole(fn):
    """Run ``fn`` with Ctrl-C held back until it returns: each of these writes
    to the study's storage, and a write cut in half (inside Optuna's journal
    lock) would end the command with an error instead of a clean stop."""
    @functools.wraps(fn)
    def whole(*args, **kwargs):
        with signals_deferred():
            return fn(*args, **kwargs)
    return whole


@_whole
def open_study(storage, name: str | None, base: RunConfig, space: Space, *, seed: int = 0, prune: bool = True):
    """The study ``name`` (default :func:`study_name`) in ``storage``, made
    if new. An existing study must have the same base configuration and
    space: a search resumes, it does not mix two searches."""
    import optuna

    base = trial_base(base)
    name = name or study_name(base, space)
    # Pruning starts halfway through a trial's epochs, once 5 trials have completed: the
    # first epochs rank configurations poorly (a small eta starts slowly, then catches up)
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=base.epochs // 2) if prune
              else optuna.pruners.NopPruner())
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize", load_if_exists=True,
                                pruner=pruner)
    # The sampler's seed: ``seed`` and the number of trials the study already has. A
    # resumed search must not draw its first (random) proposals again, yet the same
    # command on the same study proposes the same values. (Several machines sharing a
    # study: give each its own seed.) The constant liar keeps trials that run at the
    # same time apart.
    n_before = len(study.get_trials(deepcopy=False))
    sampler_seed = int(np.random.SeedSequence([seed, n_before]).generate_state(1)[0])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        study.sampler = optuna.samplers.TPESampler(seed=sampler_seed, constant_liar=True)
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise ConfigError(f"study {name!r} in that storage minimises something: not an nndl search")
    mine = {"nndl_base": base.to_dict(), "nndl_space": space.to_dict()}
    have = study.user_attrs
    for key, value in mine.items():
        if key not in have:
            study.set_user_attr(key, value)
        elif have[key] != value:
            what = "fixed run options" if key == "nndl_base" else "--param space"
            raise ConfigError(f"study {name!r} in that storage was made with other {what}; resume it with the "
                              "same options, or give another --study or --storage")
    return study


# -- running it ----------------------------------------------------------------------------
@dataclass
class TrialOutcome:
    """One trial as it ended: ``state`` complete, pruned, failed or interrupted."""

    number: int
    params: dict
    state: str
    value: float | None = None
    epochs: int = 0
    reason: str | None = None
    wall_seconds: float = 0.0


@dataclass
class SearchSummary:
    """What :func:`search` did: the trials it ran, and the study's totals."""

    study: Any
    outcomes: list[TrialOutcome] = field(default_factory=list)
    resumed: int = 0          # finished trials the study held before this call
    requeued: list[int] = field(default_factory=list)   # trials of a killed search, queued to run again
    seconds: float = 0.0

    def count(self, state: str) -> int:
        return sum(o.state == state for o in self.outcomes)

    @property
    def failed(self) -> list[TrialOutcome]:
        return [o for o in self.outcomes if o.state == "failed"]


def finished_trials(study) -> list:
    """Trials that count against the budget: complete, pruned or failed
    (not those interrupted by Ctrl-C, which are queued to run again)."""
    from optuna.trial import TrialState

    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return [t for t in study.get_trials(deepcopy=False, states=states) if not t.user_attrs.get("interrupted")]


def search(study, base: RunConfig, space: Space, *, trials: int | None = None, timeout: float | None = None,
           cluster=None, data=None, data_dir=None,
           on_trial: Callable[[TrialOutcome], None] | None = None) -> SearchSummary:
    """Run trials until the study holds ``trials`` finished ones and/or
    ``timeout`` seconds have passed (no new trial starts after that; the
    running ones finish).

    Args:
        study: from :func:`open_study`.
        base: the fixed options (trials are evaluated on validation data only).
        space: what varies.
        cluster: a :class:`~nndl.parallel.cluster.Cluster`: as many trials at
            a time as it has worker threads; ``None``: one at a time here.
        data: MNIST splits to train on here (default: loaded from ``data_dir``);
            workers load their own.
        on_trial: called with each :class:`TrialOutcome` as it ends.

    Ctrl-C: the running trials are marked failed, queued to run first when
    the search is resumed, and KeyboardInterrupt is raised. Trials a killed
    search of this machine left running are queued the same way when the
    search starts (:func:`requeue_orphans`).
    """
    if trials is None and timeout is None:
        raise ConfigError("give a trial budget (--trials N), a time budget (--timeout SECONDS), or both")
    if trials is not None and (isinstance(trials, bool) or not isinstance(trials, int) or trials < 1):
        raise ConfigError(f"--trials must be a positive integer, got {trials!r}")
    if timeout is not None and not timeout > 0:
        raise ConfigError(f"--timeout must be a positive number of seconds, got {timeout!r}")
    base = trial_base(base)
    space.check(base)
    t0 = time.monotonic()
    summary = SearchSummary(study, resumed=len(finished_trials(study)), requeued=requeue_orphans(study))

    def more(running: int) -> bool:
        if timeout is not None and time.monotonic() - t0 >= timeout:
            return False
        return trials is None or len(finished_trials(study)) + running < trials

    def done(outcome: TrialOutcome) -> None:
        summary.outcomes.append(outcome)
        if on_trial:
            on_trial(outcome)

    with warnings.catch_warnings():
        import optuna

        # "the reported value is ignored because this step is already reported": a
        # trial rerun after its worker died reports its epochs again, with equal values
        warnings.filterwarnings("ignore", category=UserWarning, module="optuna")
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        if cluster is None:
            _search_here(study, base, space, more, done, data, data_dir)
        else:
            _search_on(cluster, study, base, space, more, done, data_dir)
    summary.seconds = time.monotonic() - t0
    return summary


#: user attribute of a trial: the search process that asked for it
OWNER = "nndl_owner"


def requeue_orphans(study) -> list[int]:
    """Trials left running by a search process of this machine that no longer
    runs (killed with SIGKILL, a power cut): marked failed, and their
    parameters queued to run first, as after Ctrl-C. Returns their numbers.

    Running trials of a live process, or of another machine sharing the
    study, are left alone: they may still be running."""
    from optuna.trial import TrialState

    host, requeued = socket.gethostname(), []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = t.user_attrs.get(OWNER)
        if not isinstance(owner, dict) or owner.get("host") != host or not isinstance(owner.get("pid"), int):
            continue
        if process_alive(owner["pid"]):   # (this process counts as alive)
            continue
        with signals_deferred():
            study.tell(t.number, state=TrialState.FAIL)
            study.enqueue_trial(dict(t.params))
        requeued.append(t.number)
    return requeued


def _ask(study, base, space):
    trial = study.ask(space.distributions())
    trial.set_user_attr(OWNER, {"host": socket.gethostname(), "pid": os.getpid()})   # see requeue_orphans
    config = space.config(base, trial.params)
    from ..experiments.base import job_to_dict

    return trial, job_to_dict(config)


def _tell(study, trial, result: dict) -> TrialOutcome:
    """Record a trial's result in the study."""
    from optuna.trial import TrialState

    params = dict(trial.params)
    wall = float(result.get("wall_seconds", 0.0))
    if result.get("failed"):
        trial.set_user_attr("failed", result["failed"])
        study.tell(trial, state=TrialState.FAIL)
        return TrialOutcome(trial.number, params, "failed", reason=result["failed"], wall_seconds=wall)
    trial.set_user_attr("epochs", result["epochs"])
    trial.set_user_attr("wall_seconds", wall)
    if result["pruned"] is not None:
        study.tell(trial, state=TrialState.PRUNED)
        return TrialOutcome(trial.number, params, "pruned", result["value"], result["epochs"],
                            f"pruned after epoch {result['pruned']}", wall)
    study.tell(trial, result["value"])
    return TrialOutcome(trial.number, params, "complete", result["value"], result["epochs"], None, wall)


@_whole
def _report(trial, epoch: int, value: float) -> bool:
    """Record an epoch's validation accuracy; whether the pruner stops the trial."""
    trial.report(value, epoch)
    return trial.should_prune()


@_whole
def _interrupted(study, trial) -> TrialOutcome:
    """A trial stopped by Ctrl-C: failed, and its parameters queued to run first next time."""
    from optuna.trial import TrialState

    trial.set_user_attr("interrupted", True)
    study.tell(trial, state=TrialState.FAIL)
    study.enqueue_trial(dict(trial.params))
    return TrialOutcome(trial.number, dict(trial.params), "interrupted", reason="interrupted (queued to run again)")


def _interrupted_unless_told(study, trial, done) -> None:
    import optuna

    try:
        done(_interrupted(study, trial))
    except optuna.exceptions.UpdateFinishedTrialError:   # Ctrl-C came just after it was recorded
        pass


def _search_here(study, base, space, more, done, data, data_dir) -> None:
    if data is None:
        from ..data import load_mnist

        data = load_mnist(data_dir, progress=False)
    while more(0):
        trial = None
        try:
            with signals_deferred():   # Ctrl-C after the trial is known (and its record whole)
                trial, job = _ask(study, base, space)

            def report(epoch: int, value: float) -> bool:
                return _report(trial, epoch, value)

            result = worker.run_trial(job, report, data=data)
            with signals_deferred():
                outcome = _tell(study, trial, result)
                trial = None           # told: Ctrl-C from here on leaves it as it is
                done(outcome)
        except KeyboardInterrupt:
            if trial is not None:
                _interrupted_unless_told(study, trial, done)
            raise


def _search_on(cluster, study, base, space, more, done, data_dir) -> None:
    """As many trials at a time as the cluster has threads; epochs' validation
    accuracies come back through a Dask queue and the pruner answers each."""
    from distributed import Queue

    client = cluster.client
    channel = f"nndl-search-{uuid.uuid4().hex[:12]}"
    reports = Queue(channel, client=client)
    answers: dict[int, Any] = {}
    running: dict = {}                 # future -> (trial, job)
    by_number: dict[int, Any] = {}
    slots = cluster.n_threads          # asked of the scheduler again as trials end, not every poll
    try:
        while True:
            while len(running) < slots and more(len(running)):
                with signals_deferred():   # Ctrl-C once the trial is in `running`
                    trial, job = _ask(study, base, space)
                    fut = client.submit(worker.run_trial_on_worker, job, channel, trial.number, data_dir,
                                        key=f"nndl-trial-{trial.number}-{channel}", pure=False)
                    running[fut] = (trial, job)
                    by_number[trial.number] = trial
            if not running:
                break
            # (polled: a Dask queue's get with a timeout logs an error on the scheduler each time it expires)
            items = reports.get(batch=True)
            for number, epoch, value in items:
                prune = _report(by_number[number], epoch, value)
                if number not in answers:
                    answers[number] = Queue(f"{channel}-{number}", client=client)
                answers[number].put((epoch, prune))
            finished = [f for f in running if f.done()]
            if not items and not finished:
                time.sleep(POLL_SECONDS)
            for fut in finished:
                trial, job = running[fut]
                result = worker.result_of(fut, job)
                with signals_deferred():   # told and out of `running` together
                    outcome = _tell(study, trial, result)
                    del running[fut]
                    fut.release()
                    done(outcome)
            if finished:
                slots = cluster.n_threads
    except KeyboardInterrupt:
        client.cancel(list(running))
        for trial, _ in running.values():
            _interrupted_unless_told(study, trial, done)
        raise


# -- after the search --------------------------------------------------------------------
def best_config(study, base: RunConfig, space: Space) -> RunConfig:
    """The best trial's configuration, evaluated on validation and test data.

    Raises NNDLError if no trial has completed."""
    try:
        best = study.best_trial
    except ValueError:
        raise NNDLError("no trial of the search has completed, so there is no best configuration") from None
    return space.config(base, best.params).replace(monitor=["validation", "test"], monitor_every=1)


def write_study_figures(study, folder) -> list[Path]:
    """Draw the study's figures as PNG files in ``folder``:
    ``optimization_history.png``, ``param_importances.png``, ``slice.png``
    (those that can be drawn: importances need two completed trials).

    Optuna draws them with pyplot; each figure is closed once written."""
    import matplotlib.pyplot as plt
    import optuna
    from matplotlib.ticker import NullFormatter
    from optuna.visualization import matplotlib as vm

    from ..fileio import atomic_write

    written = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        importances = functools.partial(   # fANOVA fits a random forest: seeded, the same figure each time
            vm.plot_param_importances, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
        for stem, plot in (("optimization_history", vm.plot_optimization_history),
                           ("param_importances", importances), ("slice", vm.plot_slice)):
            try:
                axes = plot(study)
            except (ValueError, RuntimeError, ZeroDivisionError):
                continue
            fig = np.atleast_1d(axes).flat[0].figure
            for ax in fig.axes:   # a log axis's minor labels (2x10^-1, 3x10^-1, ...) overlap
                if ax.get_xscale() == "log":
                    ax.xaxis.set_minor_formatter(NullFormatter())
                if ax.get_ylabel() == "Objective Value":
                    ax.set_ylabel("Validation accuracy")
            try:   # tight: Optuna puts some legends outside the axes
                buf = io.BytesIO()
                fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
                path = Path(folder) / f"{stem}.png"
                atomic_write(path, lambda f: f.write(buf.getvalue()))
                written.append(path)
            finally:
                plt.close(fig)
    return written
