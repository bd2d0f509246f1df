"""A training run as a value: :class:`RunConfig`, and :func:`run`, which executes one.

A ``RunConfig`` holds everything that decides a run's numbers: the
architecture, cost and initialisation, the optimizer's hyper-parameters, the
epochs and mini-batch size, which data (training-set size, expansion,
augmentation), what is monitored, early stopping / the eta schedule, the seed
and the precision. It is frozen and checked once, when it is made: every
library rule about these values lives in :meth:`RunConfig.__post_init__`, and
the command line (``nndl train``), the experiments, the search and the web
page all make runs through it::

    from nndl.config import RunConfig, run
    result = run(RunConfig(sizes=(784, 30, 10), epochs=3))
    result.history["test_accuracy"]      # per-epoch fractions

``RunConfig()`` with no arguments is ``nndl train`` with no options: the
book's chapter 1 network. ``to_dict`` / ``from_dict`` round-trip through JSON
(every history records the configuration that produced it), and ``key()``
names a run by its configuration (experiments cache finished runs by it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
import platform
import time
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

import numpy as np

from . import activations, costs, initializers
from .callbacks import DEFAULT_MONITORS
from .errors import ConfigError

SPLITS = ("training", "validation", "test")
METRICS = ("accuracy", "cost")
DEFAULT_SIZES = (784, 30, 10)
MNIST_INPUTS, MNIST_CLASSES = 784, 10


class ConfigFieldError(ConfigError):
    """A bad value for one field of a :class:`RunConfig` (``field`` names it)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


def _fail(name: str, message: str):
    raise ConfigFieldError(name, message)


def _int_field(name: str, value, *, low: int = 1, optional: bool = False):
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            _fail(name, f"{name} must be an integer >= {low}, got {value!r}")
    if value < low:
        what = "a positive integer" if low == 1 else f"an integer >= {low}"
        _fail(name, f"{name} must be {what}, got {value}")
    return int(value)


def _float_field(name: str, value, *, low: float = 0.0, strict: bool = False, high: float | None = None):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        _fail(name, f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < low or (strict and value == low):
        _fail(name, f"{name} must be a number {'>' if strict else '>='} {low:g}, got {value}")
    if high is not None and value >= high:
        _fail(name, f"{name} must be in [{low:g}, {high:g}), got {value}")
    return value


def parse_monitor(items) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """What to evaluate after each epoch, in canonical form.

    Accepts a mapping ``{"test": ["accuracy"], "validation": ["accuracy", "cost"]}``
    or strings ``["test", "validation:accuracy,cost"]`` (``"none"`` for
    nothing); returns ``(("validation", ("accuracy", "cost")), ("test", ("accuracy",)))``
    in the order training, validation, test."""
    wanted: dict[str, tuple[str, ...]] = {}
    if isinstance(items, Mapping):
        pairs = list(items.items())
    elif isinstance(items, str):
        pairs = [items]
    else:
        pairs = list(items)
    for item in pairs:
        if isinstance(item, str):
            if item == "none":
                continue
            split, _, names = item.partition(":")
            metrics = tuple(m for m in names.split(",") if m) or ("accuracy",)
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            split, metrics = item
            metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
        else:
            _fail("monitor", f"monitor: cannot read {item!r}; use e.g. 'validation:accuracy,cost'")
        if split not in SPLITS:
            _fail("monitor", f"monitor: unknown split {split!r}; valid: {', '.join(SPLITS)} "
                             "(optionally with :accuracy, :cost or :accuracy,cost)")
        for m in metrics:
            if m not in METRICS:
                _fail("monitor", f"monitor {split}: unknown metric {m!r}; valid: {', '.join(METRICS)}")
        wanted[split] = tuple(dict.fromkeys(wanted.get(split, ()) + tuple(metrics)))
    return tuple((s, tuple(m for m in METRICS if m in wanted[s])) for s in SPLITS if s in wanted)


@dataclass(frozen=True)
class RunConfig:
    """One training run on MNIST, validated when made.

    Architecture:
        sizes: fully connected layer sizes, input first (784 ... 10); the
            default when ``layers`` is not given: ``(784, 30, 10)``.
        layers: any architecture as a spec, e.g.
            ``"conv:20:5,pool:2,dense:100,softmax:10"`` (see :mod:`nndl.architecture`).
        activation: hidden-layer activation; output_activation: the output
            layer's (default: softmax for log-likelihood, else ``activation``).
        cost: ``quadratic``, ``cross-entropy`` or ``log-likelihood`` (default:
            quadratic for ``sizes``; for ``layers`` log-likelihood after a
            softmax output, cross-entropy after sigmoid).
        init: weight initialiser (default: ``large``, the book's chapter 1
            N(0, 1), for ``sizes``; each layer's book default for ``layers``).
        dropout_scale: ``inverted`` or ``book`` (network3's) dropout scaling.
        dtype: ``float32`` or ``float64``.
    Optimizer (SGD):
        eta, momentum, lmbda (L2), l1.
    Training:
        epochs, batch_size, seed (one seed: initial weights, shuffling,
        expansion and augmentation draw independent streams from it).
    Data:
        train_size: train on the first N training images; validation_size,
        test_size: evaluate on the first N; expand: the book's 250,000-image
        expanded set; augment (+ max_shift, max_degrees): random shifts and
        rotations on the fly.
    Monitoring and stopping:
        monitor: what to evaluate each epoch (see :func:`parse_monitor`);
        monitor_every: evaluate only every N epochs (and after the last);
        early_stopping: stop after N epochs without improvement in accuracy;
        schedule: halve eta after N flat epochs, stop at eta/128 (ch. 3);
        eta_final: instead, lower eta in a straight line over the epochs,
        from ``eta`` in the first to ``eta_final`` in the last (fixed in advance);
        record_gradients: record each layer's gradient norm (ch. 5) after
        every epoch (0) or also every N mini-batches (N).
    Engine:
        fast: allow the compiled kernel; threads: threads while training (the
        conv kernels use up to this many, BLAS one: nndl.kernels.threads).
    """

    sizes: tuple[int, ...] | None = None
    layers: str | None = None
    activation: str = "sigmoid"
    output_activation: str | None = None
    cost: str | None = None
    init: str | None = None
    dropout_scale: str = "inverted"
    dtype: str = "float32"
    eta: float = 3.0
    momentum: float = 0.0
    lmbda: float = 0.0
    l1: float = 0.0
    epochs: int = 30
    batch_size: int = 10
    seed: int = 0
    train_size: int | None = None
    validation_size: int | None = None
    test_size: int | None = None
    expand: bool = False
    augment: bool = False
    max_shift: int = 2
    max_degrees: float = 10.0
    monitor: Any = (("test", ("accuracy",)),)
    monitor_every: int = 1
    early_stopping: int | None = None
    schedule: int | None = None
    eta_final: float | None = None
    record_gradients: int | None = None
    fast: bool = True
    threads: int = 1

    # -- validation: every rule about a run's values, once ------------------------------
    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731  (frozen)
        if self.sizes is not None and self.layers is not None:
            _fail("layers", "give either sizes or layers, not both")
        if self.layers is None:
            sizes = DEFAULT_SIZES if self.sizes is None else self.sizes
            if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence):
                _fail("sizes", f"sizes must be a list of layer sizes like [784, 30, 10], got {sizes!r}")
            sizes = tuple(_int_field("sizes", s) for s in sizes)
            if len(sizes) < 2 or sizes[0] != MNIST_INPUTS or sizes[-1] != MNIST_CLASSES:
                _fail("sizes", f"sizes {' '.join(map(str, sizes))} does not fit MNIST: the first size must be "
                               "784 (28x28 pixels) and the last 10 (one neuron per digit)")
            set_("sizes", sizes)
        else:
            spec = ",".join(t.strip() for t in self.layers.split(",") if t.strip()) \
                if isinstance(self.layers, str) else ""
            if not spec:
                _fail("layers", f"empty layer spec {self.layers!r}; e.g. conv:20:5,pool:2,dense:100,softmax:10")
            set_("layers", spec)
        for name in ("activation", "output_activation"):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, str) or value.lower() not in activations.ACTIVATIONS:
                _fail(name, f"unknown activation {value!r}; valid activations: {', '.join(activations.ACTIVATIONS)}")
            set_(name, value.lower())
        if self.cost is not None:
            try:
                set_("cost", costs.get(self.cost).name)
            except ConfigError as e:
                _fail("cost", str(e))
        if self.init is not None:
            try:
                set_("init", initializers.get(self.init).name)
            except ConfigError as e:
                _fail("init", str(e))
        if self.dropout_scale not in ("inverted", "book"):
            _fail("dropout_scale", f"dropout_scale must be 'inverted' or 'book', got {self.dropout_scale!r}")
        if self.dtype not in ("float32", "float64"):
            _fail("dtype", f"dtype must be float32 or float64, got {self.dtype!r}")
        set_("eta", _float_field("eta", self.eta, strict=True))
        set_("momentum", _float_field("momentum", self.momentum, high=1.0))
        set_("lmbda", _float_field("lmbda", self.lmbda))
        set_("l1", _float_field("l1", self.l1))
        set_("max_degrees", _float_field("max_degrees", self.max_degrees))
        if self.max_degrees > 180:
            _fail("max_degrees", f"max_degrees must be in [0, 180], got {self.max_degrees}")
        for name in ("epochs", "batch_size", "threads", "monitor_every"):
            set_(name, _int_field(name, getattr(self, name)))
        set_("seed", _int_field("seed", self.seed, low=0))
        set_("max_shift", _int_field("max_shift", self.max_shift, low=0))
        for name in ("train_size", "validation_size", "test_size", "early_stopping", "schedule"):
            set_(name, _int_field(name, getattr(self, name), optional=True))
        set_("record_gradients", _int_field("record_gradients", self.record_gradients, low=0, optional=True))
        if self.eta_final is not None:
            set_("eta_final", _float_field("eta_final", self.eta_final, strict=True))
            if self.schedule:
                _fail("eta_final", "give either schedule or eta_final, not both: each sets eta")
        for name in ("expand", "augment", "fast"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                _fail(name, f"{name} must be true or false, got {getattr(self, name)!r}")
            set_(name, bool(getattr(self, name)))
        set_("monitor", parse_monitor(self.monitor))
        if (self.early_stopping or self.schedule) and not any("accuracy" in m for _, m in self.monitor):
            _fail("early_stopping" if self.early_stopping else "schedule",
                  "early stopping and the eta schedule watch an accuracy: monitor one, e.g. monitor=['validation']")
        if (self.early_stopping or self.schedule) and self.monitor_every != 1:
            _fail("monitor_every", "early stopping and the eta schedule need an evaluation after every epoch "
                                   "(monitor_every 1)")
        # the pairing rules of the network itself (cost vs output activation, spec
        # grammar) are checked by building its layers, which allocates nothing;
        # then the memory a mini-batch needs, before anything is allocated
        from .memory import check_network_memory, check_training_memory
        layers = self.build_layers()
        n_train = self.n_train
        check_network_memory(layers, (MNIST_INPUTS,), self.dtype)
        check_training_memory(layers, min(self.batch_size, n_train), momentum=bool(self.momentum),
                              input_shape=(MNIST_INPUTS,), dtype=self.dtype)

    # -- what the run is -----------------------------------------------------------------
    @property
    def n_train(self) -> int:
        """Training images per epoch: the first ``train_size`` of the book's
        50,000, five times as many with ``expand`` (its shifted copies)."""
        return (self.train_size or 50_000) * (5 if self.expand else 1)

    @property
    def resolved_cost(self) -> str:
        if self.cost is not None:
            return self.cost
        if self.layers is None:
            return "quadratic"
        from .architecture import default_cost
        return default_cost(self.build_layers())

    @property
    def resolved_init(self) -> str | None:
        """The initialiser used (``None``: each layer's own book default)."""
        if self.init is not None:
            return self.init
        return "large" if self.layers is None else None

    def build_layers(self):
        """The network's layers, not yet built (no parameters allocated)."""
        from .architecture import parse_layers
        from .layers import Dense

        if self.layers is not None:
            layers = parse_layers(self.layers, activation=self.activation, init=self.init,
                                  dropout_scale=self.dropout_scale)
            if layers[-1].n_out != MNIST_CLASSES:
                _fail("layers", f"layers ends in {layers[-1].n_out} outputs; MNIST needs 10 (one per digit)")
        else:
            cost = costs.get(self.cost or "quadratic")
            out_act = self.output_activation or ("softmax" if cost.name == "log-likelihood" else self.activation)
            init = self.resolved_init
            layers = [Dense(n, self.activation, init) for n in self.sizes[1:-1]]
            layers.append(Dense(self.sizes[-1], out_act, init))
        cost = costs.get(self.cost) if self.cost is not None else None
        if cost is not None:
            try:
                cost.check(layers[-1].activation)
            except ConfigError as e:
                _fail("cost", str(e))
        return layers

    def build_network(self, rng=None):
        """The network with its initial parameters drawn from ``rng`` (default:
        the configuration's own initialisation stream)."""
        from .network import Network

        layers = self.build_layers()
        return Network(layers, self.resolved_cost, input_shape=(MNIST_INPUTS,),
                       rng=self.streams()["init"] if rng is None else rng, dtype=self.dtype)

    def streams(self) -> dict[str, np.random.Generator]:
        """Independent random streams drawn from ``seed``: ``init`` (initial
        weights) and ``shuffle`` (mini-batch order and augmentation)."""
        init_seed, shuffle_seed = np.random.SeedSequence(self.seed).spawn(2)
        return {"init": np.random.default_rng(init_seed), "shuffle": np.random.default_rng(shuffle_seed)}

    def describe(self) -> str:
        """The header line: ``[784, 30, 10] sigmoid network (quadratic cost, init large) ...``."""
        init = self.resolved_init or "/".join(dict.fromkeys(
            layer.init.name for layer in self.build_layers() if getattr(layer, "init", None) is not None))
        if self.layers is None:
            cost = costs.get(self.resolved_cost)
            out = self.output_activation or ("softmax" if cost.name == "log-likelihood" else self.activation)
            act = self.activation if out == self.activation else f"{self.activation}/{out}"
            net = f"{list(self.sizes)} {act} network"
        else:
            net = f"{self.layers} network of {self.activation} hidden layers"
        parts = [f"{net} ({self.resolved_cost} cost, init {init})",
                 f"{self.epochs} epoch{'' if self.epochs == 1 else 's'}, mini-batch {self.batch_size}, eta {self.eta}"
                 + (f" down to {self.eta_final}" if self.eta_final is not None else "")]
        for name, label in (("lmbda", "lambda"), ("l1", "L1"), ("momentum", "momentum")):
            if getattr(self, name):
                parts.append(f"{label} {getattr(self, name)}")
        parts.append(f"seed {self.seed}")
        return ", ".join(parts)

    # -- as data -------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """JSON-ready: lists for tuples, ``monitor`` as ``{split: [metrics]}``."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "monitor":
                value = {split: list(metrics) for split, metrics in value}
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> "RunConfig":
        """The inverse of :meth:`to_dict`; unknown keys are refused by name."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"a run configuration must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown run configuration field(s) {', '.join(map(repr, unknown))}; "
                              f"valid fields: {', '.join(sorted(known))}")
        return cls(**dict(data))

    def replace(self, **changes) -> "RunConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def key(self) -> str:
        """A short name for this configuration: equal configurations, equal keys."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# -- running one -------------------------------------------------------------------------
@dataclass
class RunResult:
    """What :func:`run` returns: the trained network and its history.

    ``stop_reason`` says why training ended before ``config.epochs`` (early
    stopping, the schedule, an interrupt, divergence), else ``None``.
    ``interrupted``: Ctrl-C (or a signal handled as one) ended it;
    ``diverged``: the divergence guard did (``stop_reason`` says where). In
    both cases ``network`` and ``history`` are those of the last complete
    epoch. ``best`` is the :class:`~nndl.callbacks.BestModel` when ``keep_best``
    was asked for (``best.epoch``, ``best.value``, ``best.params``).
    ``resumed_from``: the epoch a resumed run started from (else ``None``)."""

    config: RunConfig
    network: Any
    history: Any
    stop_reason: str | None = None
    interrupted: bool = False
    wall_seconds: float = 0.0
    data_sizes: dict = field(default_factory=dict)
    diverged: bool = False
    best: Any = None
    resumed_from: int | None = None


def select_data(config: RunConfig, splits) -> dict:
    """The training, validation and test :class:`~nndl.data.Dataset` that
    ``config`` asks for, from the book's split ``splits``."""
    out = {"training": splits.training, "validation": splits.validation, "test": splits.test}
    for split, size in (("training", config.train_size), ("validation", config.validation_size),
                        ("test", config.test_size)):
        if size is not None:
            if size > len(out[split]):
                _fail(f"{'train' if split == 'training' else split}_size",
                      f"{'train' if split == 'training' else split}_size {size} exceeds the "
                      f"{len(out[split])} {split} images")
            out[split] = out[split][:size]
    if config.expand:
        from .data.augment import expanded_training_set
        out["training"] = expanded_training_set(out["training"], seed=config.seed, dtype=config.dtype)
    return out


def run_info(config: RunConfig) -> dict:
    """What a history records about its run besides the metrics."""
    from . import __version__

    return {"config": config.to_dict(), "key": config.key(), "nndl": __version__, "numpy": np.__version__,
            "python": platform.python_version(),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def monitored_metrics(config: RunConfig) -> list[str]:
    """The per-epoch metrics ``config`` evaluates, e.g. ``["validation_accuracy", "test_accuracy"]``."""
    return [f"{split}_{metric}" for split, metrics in config.monitor for metric in metrics]


def best_metric(config: RunConfig, metric: str | bool | None = True) -> str:
    """The metric that chooses the best epoch: ``metric`` if it is monitored;
    for ``True``/``None`` the accuracy early stopping watches (validation,
    else test, else training). ConfigError when it is not evaluated."""
    have = monitored_metrics(config)
    if metric is True or metric is None:
        for key in DEFAULT_MONITORS:
            if key in have:
                return key
        raise ConfigError("keeping the best epoch needs an accuracy to compare epochs by: monitor one, "
                          "e.g. validation")
    if not isinstance(metric, str) or metric not in have:
        raise ConfigError(f"cannot choose the best epoch by {metric!r}: it is not evaluated; evaluated: "
                          f"{', '.join(have) or 'nothing'} (see monitor)")
    return metric


def _checkpoint_config(data) -> "RunConfig":
    from .errors import CheckpointError

    stored = data.run.get("config") if isinstance(data.run, dict) else None
    try:
        return RunConfig.from_dict(stored)
    except ConfigError as e:
        raise CheckpointError(f"{data.path} holds no valid run configuration: {e}") from None


def run(config: RunConfig, *, data=None, data_dir=None, callbacks: Sequence = (),
        progress: bool = False, checkpoint=None, keep_best: str | bool | None = None,
        notes: Mapping | None = None) -> RunResult:
    """Train the network ``config`` describes and return it with its history.

    Args:
        config: the run.
        data: the book's MNIST split (:func:`nndl.data.load_mnist`'s result) to
            use instead of loading it (several runs can share one load).
        data_dir: where MNIST is (see :func:`nndl.data.load_mnist`).
        callbacks: more callbacks, run after the run's own (evaluation,
            stopping, gradient records, history): e.g.
            :class:`~nndl.callbacks.EpochPrinter`, :class:`~nndl.callbacks.ProgressBar`.
        progress: show download/expansion progress while loading data.
        checkpoint: a folder to checkpoint into after every epoch (see
            :class:`~nndl.callbacks.Checkpoint`). If it already holds a
            checkpoint of this same configuration, the run continues from
            it (the result is the same as running from the start); a
            checkpoint of another configuration is refused (CheckpointError).
        keep_best: keep the network of the best epoch in ``result.best``:
            a metric name (``"validation_accuracy"``, ``"validation_cost"``...)
            or True for the default (see :func:`best_metric`).
        notes: JSON-ready notes stored in the checkpoint (the command line
            keeps its output paths there); ``resume`` returns them.

    An interrupt (Ctrl-C) ends training after the last completed epoch: the
    result holds that network and history, with ``interrupted=True``. So does
    divergence (a NaN/infinite or blown-up weight or cost: ``diverged=True``,
    ``stop_reason`` saying where; see :class:`~nndl.training.Trainer`).
    """
    if not isinstance(config, RunConfig):
        raise ConfigError(f"run() takes a RunConfig, got {type(config).__name__}")
    state = None
    if checkpoint is not None:
        from . import checkpoint as ckpt
        from .errors import CheckpointError

        if ckpt.exists(checkpoint):
            state = ckpt.read(checkpoint)
            saved = _checkpoint_config(state)
            if saved.replace(epochs=config.epochs) != config:
                raise CheckpointError(f"{checkpoint} holds a checkpoint of another run (epoch {state.epoch} of "
                                      f"{saved.epochs}: {saved.describe()}); resume it, or choose another folder")
            if state.epoch > config.epochs:
                raise CheckpointError(f"{checkpoint} holds {state.epoch} epochs of this run, more than the "
                                      f"{config.epochs} asked for")
            if keep_best is None:
                keep_best = state.run.get("keep_best")
            notes = state.run.get("notes") if notes is None else notes
    return _execute(config, data=data, data_dir=data_dir, callbacks=callbacks, progress=progress,
                    checkpoint=checkpoint, keep_best=keep_best, notes=notes, state=state)


def resume(folder, *, epochs: int | None = None, data=None, data_dir=None, callbacks: Sequence = (),
           progress: bool = False, checkpoint="same", notes: Mapping | None = None) -> RunResult:
    """Continue the run checkpointed in ``folder`` with its own configuration.

    The result equals the uninterrupted run's exactly (weights and history,
    apart from timings), on either engine path, with momentum, dropout,
    augmentation, early stopping and the eta schedule.

    Args:
        folder: a folder written by :class:`~nndl.callbacks.Checkpoint` through
            :func:`run` (``nndl train --checkpoint DIR``), or what
            :func:`nndl.checkpoint.read` read from one.
        epochs: train up to this many epochs in all instead of the
            configuration's (not fewer than are done). Only the evaluation
            ``monitor_every`` makes after the last epoch differs from a run
            planned that long from the start.
        data, data_dir, callbacks, progress: as for :func:`run`. Callbacks
            with a state of their own must be the same as the first time.
        checkpoint: where to go on checkpointing: ``"same"`` (``folder``),
            another folder, or None (nowhere).
        notes: replace the notes stored in the checkpoint (see :func:`run`).

    A run that already did all its epochs, or that early stopping or the
    schedule ended, is returned as it is, without training.
    """
    from . import checkpoint as ckpt
    from .errors import CheckpointError

    state = folder if isinstance(folder, ckpt.CheckpointData) else ckpt.read(folder)
    folder = state.path.parent
    config = _checkpoint_config(state)
    if epochs is not None:
        if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < state.epoch:
            raise ConfigError(f"epochs: the run in {folder} has done {state.epoch} epoch(s); it can continue "
                              f"to a larger total, not to {epochs!r}")
        if epochs != config.epochs:
            config = config.replace(epochs=int(epochs))
    if state.epoch > config.epochs:
        raise CheckpointError(f"{state.path}: {state.epoch} epochs done of a run of {config.epochs}")
    return _execute(config, data=data, data_dir=data_dir, callbacks=callbacks, progress=progress,
                    checkpoint=folder if checkpoint == "same" else checkpoint,
                    keep_best=state.run.get("keep_best"), notes=state.run.get("notes") if notes is None else notes,
                    state=state)


def _execute(config: RunConfig, *, data, data_dir, callbacks, progress, checkpoint, keep_best, notes,
             state) -> RunResult:
    from . import callbacks as cb
    from .errors import CheckpointError, DivergedError, NNDLError
    from .history import History
    from .optimizers import SGD
    from .regularizers import L1, L2
    from .training import Trainer

    t0 = time.perf_counter()
    best_key = None if keep_best in (None, False) else best_metric(config, keep_best)
    streams = config.streams()
    net = config.build_network(streams["init"])
    regs = ([L2(config.lmbda)] if config.lmbda else []) + ([L1(config.l1)] if config.l1 else [])
    optimizer = SGD(config.eta, momentum=config.momentum, regularizers=regs)
    if data is None:
        from .data import load_mnist
        data = load_mnist(data_dir, progress=progress)
    sets = select_data(config, data)
    augment = None
    if config.augment:
        from .data.augment import random_shift_rotate
        augment = random_shift_rotate(config.max_shift, config.max_degrees)

    own: list = [cb.Evaluation({split: sets[split]}, metrics, every=config.monitor_every)
                 for split, metrics in config.monitor]
    if config.early_stopping:
        own.append(cb.EarlyStopping(config.early_stopping))
    if config.schedule:
        own.append(cb.EtaSchedule(config.schedule))
    if config.eta_final is not None:
        own.append(cb.LinearEtaDecay(config.eta_final, config.epochs))
    if config.record_gradients is not None:
        own.append(cb.GradientRecorder(every_batches=config.record_gradients or None))
    best = None
    if best_key is not None:
        best = cb.BestModel(best_key)
        own.append(best)
    # Last of the run's own: an epoch counts as recorded once the history has
    # it, so the callbacks with a state to checkpoint come before it.
    history = History(run=run_info(config))
    own.append(history)
    more = list(callbacks)
    if checkpoint is not None:
        more.append(cb.Checkpoint(checkpoint, run={"config": config.to_dict(), "keep_best": best_key,
                                                   "notes": dict(notes or {})}))
    trainer = Trainer(net, optimizer, batch_size=config.batch_size, rng=streams["shuffle"],
                      callbacks=own + more, fast=config.fast, blas_threads=config.threads, augment=augment)
    resumed_from = None
    if state is not None:
        try:
            trainer.load_state_dict(state.state)
        except NNDLError as e:
            raise CheckpointError(f"cannot resume from {state.path}: {e}") from None
        resumed_from = state.epoch
        history.run.update(config=config.to_dict(), key=config.key())
        history.run.setdefault("resumed", []).append(
            {"epoch": state.epoch, "at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    interrupted = diverged = False
    stop = trainer.stop_reason
    remaining = config.epochs - trainer.epoch
    if remaining > 0 and not trainer.stop_training:
        try:
            trainer.fit(sets["training"].x, sets["training"].y, remaining)
            stop = trainer.stop_reason
        except KeyboardInterrupt:
            interrupted, stop = True, "interrupted"
        except DivergedError as e:
            diverged, stop = True, str(e)
    wall = time.perf_counter() - t0
    history.run.update(wall_seconds=round(wall, 3), epochs_done=history.epochs, stop_reason=stop)
    return RunResult(config, net, history, stop, interrupted, wall,
                     {k: len(v) for k, v in sets.items()}, diverged, best, resumed_from)
