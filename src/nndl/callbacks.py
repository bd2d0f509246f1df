"""Things that happen around training: evaluation, early stopping, the
learning-rate schedule, progress bars, the book's printed lines, gradient
records, the best epoch's network and checkpoints.

A callback sees the :class:`~nndl.training.Trainer` and the epoch's ``logs``
(a dict of metrics). Callbacks run in the order given, so an
:class:`Evaluation` goes before the callbacks that read its metrics. Set
``trainer.stop_training = True`` to stop.

A callback that remembers something across epochs (early stopping's best
accuracy, the schedule's patience count, the best network) returns it from
:meth:`Callback.state_dict` and takes it back in :meth:`Callback.load_state_dict`,
so that a :class:`Checkpoint` can save it and a resumed run continue exactly.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Callable, Iterable, TextIO

import numpy as np

from .errors import ConfigError, positive_int


class Callback:
    """Base class: every hook does nothing.

    ``every_batches``: when set, the trainer also calls
    :meth:`on_batches_done` every that many mini-batches (with the network's
    parameters up to date), besides its own progress points.
    """

    every_batches: int | None = None

    def on_train_begin(self, trainer) -> None: ...
    def on_epoch_begin(self, trainer, epoch: int) -> None: ...
    def on_batches_done(self, trainer, done: int, total: int) -> None: ...
    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None: ...

    def on_epoch_complete(self, trainer, epoch: int) -> None:
        """After every callback's :meth:`on_epoch_end`: the epoch is recorded
        and everything (network, optimizer, generators, callbacks) is in its
        end-of-epoch state, the state a checkpoint saves."""

    def on_train_end(self, trainer) -> None: ...

    def state_dict(self) -> dict | None:
        """What this callback carries from one epoch to the next, for a
        checkpoint (JSON-ready values and NumPy arrays); None: nothing."""
        return None

    def load_state_dict(self, state: dict) -> None:
        """Take back what :meth:`state_dict` returned (resuming a run)."""


SPLITS = ("training", "validation", "test")
METRICS = ("accuracy", "cost")


class Evaluation(Callback):
    """Accuracy and/or cost on named data sets after each epoch.

    Args:
        data: ``{"test": dataset, ...}`` with keys from ``training``,
            ``validation``, ``test``; each dataset has ``x`` and ``y``.
        metrics: ``"accuracy"``, ``"cost"`` or both. The cost includes the
            weight penalty, as the book's ``total_cost`` does.
        every: evaluate after every ``every`` epochs and after the last
            (the history holds ``None`` for the epochs in between).

    Logs ``<split>_accuracy`` (a fraction) and ``<split>_cost``, plus
    ``<split>_correct`` and ``<split>_total`` (counts) for the book-style
    report (the history leaves those two out).
    """

    def __init__(self, data: dict, metrics: Iterable[str] = ("accuracy",), every: int = 1) -> None:
        for name in data:
            if name not in SPLITS:
                raise ConfigError(f"unknown split {name!r}; valid splits: {', '.join(SPLITS)}")
        metrics = tuple(metrics)
        for m in metrics:
            if m not in METRICS:
                raise ConfigError(f"unknown metric {m!r}; valid metrics: {', '.join(METRICS)}")
        for name, ds in dict(data).items():
            if not (hasattr(ds, "x") and hasattr(ds, "y")):
                raise ConfigError(f"Evaluation: {name!r} must be a data set with x and y (e.g. nndl.data.Dataset), "
                                  f"got {type(ds).__name__}")
        self.data = dict(data)
        self.metrics = metrics
        self.every = positive_int(every, "evaluation interval")

    def on_epoch_end(self, trainer, epoch, logs):
        if (epoch + 1) % self.every and epoch != trainer.last_epoch:
            return   # evaluated every `every` epochs, and after the last
        net = trainer.network
        for name, ds in self.data.items():
            if "accuracy" in self.metrics:
                correct = net.accuracy(ds.x, ds.y)
                logs[f"{name}_correct"] = correct
                logs[f"{name}_total"] = len(ds.y)
                logs[f"{name}_accuracy"] = correct / len(ds.y)
            if "cost" in self.metrics:
                logs[f"{name}_cost"] = net.total_cost(ds.x, ds.y, trainer.optimizer.regularizers,
                                                      trainer.n_train)


#: what early stopping, the eta schedule and "keep the best epoch" watch unless
#: told otherwise: the first of these that is evaluated
DEFAULT_MONITORS = ("validation_accuracy", "test_accuracy", "training_accuracy")


def _pick_monitor(monitor: str | None, logs: dict) -> str:
    if monitor is not None:
        if monitor not in logs:
            raise ConfigError(f"cannot monitor {monitor!r}: it is not evaluated (have: {', '.join(sorted(logs))})")
        return monitor
    for key in DEFAULT_MONITORS:
        if key in logs:
            return key
    raise ConfigError("early stopping and the eta schedule need an accuracy to monitor; "
                      "evaluate accuracy on some data set")


def _number(value, what: str, *, optional: bool = False):
    """A float from a saved state (``None`` for -inf, the best of nothing yet)."""
    if value is None and optional:
        return -math.inf
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{what} must be a number, got {value!r}")
    return float(value)


def _count(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{what} must be an integer >= 0, got {value!r}")
    return value


def _saved_best(best: float):
    return None if best == -math.inf else best


def _params_state(params) -> list[dict[str, np.ndarray]]:
    if not isinstance(params, list) or not all(
            isinstance(p, dict) and all(isinstance(v, np.ndarray) for v in p.values()) for p in params):
        raise ConfigError("saved parameters must be a list of {name: array} per layer")
    return [{k: v.copy() for k, v in p.items()} for p in params]


class EarlyStopping(Callback):
    """Stop when the monitored accuracy has not improved for ``patience`` epochs
    (the book's ``early_stopping_n``).

    With ``restore_best``, stopping also puts the network back to the epoch
    with the best monitored accuracy (``best_epoch``), instead of keeping the
    last one (which is ``patience`` epochs past it).
    """

    def __init__(self, patience: int, monitor: str | None = None, restore_best: bool = False) -> None:
        self.patience = positive_int(patience, "early stopping patience")
        self.monitor = monitor
        self.restore_best = bool(restore_best)
        self.best = -math.inf
        self.wait = 0
        self.best_epoch: int | None = None
        self.best_params: list[dict[str, np.ndarray]] | None = None

    def on_epoch_end(self, trainer, epoch, logs):
        key = _pick_monitor(self.monitor, logs)
        if logs[key] > self.best:
            self.best, self.wait, self.best_epoch = logs[key], 0, epoch
            if self.restore_best:
                self.best_params = trainer.network.get_params()
        else:
            self.wait += 1
            if self.wait >= self.patience:
                trainer.stop_training = True
                trainer.stop_reason = f"no improvement in {key} for {self.patience} epochs"
                if self.restore_best and self.best_params is not None:
                    trainer.network.set_params(self.best_params)
                    trainer.stop_reason += f"; restored the network of epoch {self.best_epoch}"

    def state_dict(self):
        state = {"best": _saved_best(self.best), "wait": self.wait, "best_epoch": self.best_epoch}
        if self.restore_best:
            state["best_params"] = self.best_params
        return state

    def load_state_dict(self, state):
        self.best = _number(state["best"], "early stopping best", optional=True)
        self.wait = _count(state["wait"], "early stopping wait")
        self.best_epoch = None if state["best_epoch"] is None else _count(state["best_epoch"], "best epoch")
        if self.restore_best:
            saved = state.get("best_params")
            self.best_params = None if saved is None else _params_state(saved)


class EtaSchedule(Callback):
    """The book's schedule (ch. 3): halve eta each time the monitored accuracy
    has not improved for ``patience`` epochs; stop once eta has fallen to
    ``eta0 * min_ratio`` (1/128 in the book)."""

    def __init__(self, patience: int, factor: float = 0.5, min_ratio: float = 1 / 128,
                 monitor: str | None = None) -> None:
        patience = positive_int(patience, "schedule patience")
        for name, value in (("factor", factor), ("min_ratio", min_ratio)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
                raise ConfigError(f"schedule {name} must be a number in (0, 1), got {value!r}")
        self.patience, self.factor, self.min_ratio, self.monitor = patience, factor, min_ratio, monitor
        self.best = -math.inf
        self.wait = 0
        self.eta0: float | None = None

    def on_train_begin(self, trainer):
        if self.eta0 is None:   # a resumed run keeps its first eta
            self.eta0 = trainer.optimizer.eta

    def state_dict(self):
        return {"best": _saved_best(self.best), "wait": self.wait, "eta0": self.eta0}

    def load_state_dict(self, state):
        self.best = _number(state["best"], "schedule best", optional=True)
        self.wait = _count(state["wait"], "schedule wait")
        self.eta0 = None if state["eta0"] is None else _number(state["eta0"], "schedule eta0")

    def on_epoch_end(self, trainer, epoch, logs):
        key = _pick_monitor(self.monitor, logs)
        if logs[key] > self.best:
            self.best, self.wait = logs[key], 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.wait = 0
            trainer.optimizer.eta *= self.factor
            if trainer.optimizer.eta <= self.eta0 * self.min_ratio * (1 + 1e-9):
                trainer.stop_training = True
                trainer.stop_reason = f"eta fell to {trainer.optimizer.eta:g} (eta0 * {self.min_ratio:g})"


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython") and getattr(sys.modules["IPython"], "get_ipython", lambda: None)()
    return type(shell).__name__ == "ZMQInteractiveShell"


def _tqdm_class(notebook: bool):
    """tqdm's widget bar in a notebook with ipywidgets, else its text bar."""
    if notebook:
        try:
            import ipywidgets  # noqa: F401
            from tqdm.notebook import tqdm
            return tqdm
        except ImportError:
            pass
    from tqdm.std import tqdm
    return tqdm


class ProgressBar(Callback):
    """A tqdm bar over the mini-batches of each epoch.

    In a terminal it goes to stderr, and only when that is a terminal (unless
    ``disable=False`` is passed). In a Jupyter notebook it is tqdm's widget
    bar when ipywidgets is installed, else a text bar (no ipywidgets needed).
    """

    def __init__(self, leave: bool = False, **tqdm_kwargs) -> None:
        self.notebook = _in_notebook()
        tqdm_kwargs.setdefault("disable", False if self.notebook else None)
        self.leave = leave
        self.kwargs = tqdm_kwargs
        self.bar = None

    def on_epoch_begin(self, trainer, epoch):
        tqdm = _tqdm_class(self.notebook)
        self.bar = tqdm(total=trainer.n_batches, desc=f"Epoch {epoch}", unit="batch",
                        leave=self.leave, **self.kwargs)

    def on_batches_done(self, trainer, done, total):
        if self.bar is not None:
            self.bar.update(done - self.bar.n)

    def on_epoch_end(self, trainer, epoch, logs):
        self.close()

    def on_train_end(self, trainer):
        self.close()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class EpochPrinter(Callback):
    """The book's per-epoch lines, for a notebook or a terminal::

        Epoch 0: 9129 / 10000
          Cost on training data: 0.412
          Accuracy on validation data: 9312 / 10000

    Put it after the :class:`Evaluation` callbacks whose results it prints.

    Args:
        file: where to write (default: ``sys.stdout`` at the time of printing).
    """

    def __init__(self, file: TextIO | None = None) -> None:
        self.file = file

    def on_epoch_end(self, trainer, epoch, logs):
        out = self.file or sys.stdout
        print(format_epoch(epoch, logs), file=out, flush=True)


def format_epoch(epoch: int, logs: dict) -> str:
    """The book's lines for one epoch's logs (see :class:`EpochPrinter`)."""
    if "test_correct" in logs:
        lines = [f"Epoch {epoch}: {logs['test_correct']} / {logs['test_total']}"]
    else:
        lines = [f"Epoch {epoch} complete"]
    for split in ("training", "validation"):
        if f"{split}_cost" in logs:
            lines.append(f"  Cost on {split} data: {logs[f'{split}_cost']:.6f}")
        if f"{split}_correct" in logs:
            lines.append(f"  Accuracy on {split} data: {logs[f'{split}_correct']} / {logs[f'{split}_total']}")
    if "test_cost" in logs:
        lines.append(f"  Cost on test data: {logs['test_cost']:.6f}")
    return "\n".join(lines)


class GradientRecorder(Callback):
    """Chapter 5's "speed of learning": the norm of dC/db (and dC/dw) of every
    layer, averaged over a fixed probe set of training examples.

    The book's ``generate_gradient.py`` computes, for each layer l, the
    gradient of the cost with respect to the biases averaged over 1,000
    training images, and compares the lengths ||dC/db^l||: in deep sigmoid
    networks the earlier layers' are much smaller (the vanishing gradient).

    Args:
        probe_size: the first ``probe_size`` training examples form the probe.
        every_batches: also record every that many mini-batches (else at the
            start of training and after every epoch).

    Records go to ``trainer.history["gradients"]``: a list of
    ``{"epoch": e, "batch": b, "bias": [||dC/db^1||, ...], "weight": [...]}``
    where ``b`` mini-batches of epoch ``e`` are done (``e`` = epochs done when
    ``b`` is 0). Only layers with parameters appear, input side first.
    Computing the probe's gradient changes nothing in the network.
    """

    def __init__(self, probe_size: int = 1000, every_batches: int | None = None) -> None:
        self.probe_size = positive_int(probe_size, "gradient probe size")
        self.every_batches = None if every_batches is None else positive_int(every_batches, "gradient record interval")
        self._epoch = 0

    def on_train_begin(self, trainer):
        runner = trainer.runner
        self.x = runner.x[:self.probe_size]
        self.y = runner.y[:self.probe_size]
        records = trainer.history.data.setdefault("gradients", [])
        if not records:
            self._record(trainer, trainer.epoch, 0)

    def on_epoch_begin(self, trainer, epoch):
        self._epoch = epoch

    def on_batches_done(self, trainer, done, total):
        if self.every_batches and done < total and done % self.every_batches == 0:
            self._record(trainer, self._epoch, done)

    def on_epoch_end(self, trainer, epoch, logs):
        self._record(trainer, epoch + 1, 0)

    def _record(self, trainer, epoch: int, batch: int) -> None:
        norms = gradient_norms(trainer.network, self.x, self.y)
        trainer.history.data["gradients"].append({"epoch": epoch, "batch": batch, **norms})


def gradient_norms(network, x: np.ndarray, y: np.ndarray, chunk: int = 1000) -> dict[str, list[float]]:
    """``{"bias": [||dC/db^l||], "weight": [||dC/dw^l||]}`` for every layer with
    parameters, the gradient being the mean over the examples ``x`` ``(n, ...)``
    with labels ``y`` ``(n,)`` (unregularised). The network is unchanged."""
    layers = [layer for layer in network.layers if layer.params]
    sums = [{k: np.zeros(p.shape, dtype=np.float64) for k, p in layer.params.items()} for layer in layers]
    for start in range(0, len(x), chunk):
        network.forward(x[start:start + chunk], train=True)
        network.backward(y[start:start + chunk])
        for layer, acc in zip(layers, sums):
            for k in acc:
                acc[k] += layer.grads[k]
    n = max(len(x), 1)
    return {"bias": [float(np.linalg.norm(acc["b"]) / n) for acc in sums if "b" in acc],
            "weight": [float(np.linalg.norm(acc["w"]) / n) for acc in sums if "w" in acc]}


class LambdaCallback(Callback):
    """Call ``fn(epoch, logs)`` after each epoch (e.g. to report it)."""

    def __init__(self, on_epoch_end: Callable[[int, dict], None]) -> None:
        self.fn = on_epoch_end

    def on_epoch_end(self, trainer, epoch, logs):
        self.fn(epoch, logs)


class BestModel(Callback):
    """Keep the network of the best epoch (``--save-best``).

    Args:
        monitor: the metric that decides, e.g. ``"validation_accuracy"``
            (higher is better) or ``"validation_cost"`` (lower is better);
            default: the accuracy early stopping would watch (validation,
            else test, else training).

    After training: ``epoch`` (None if no epoch was evaluated), ``value``,
    ``monitor`` and ``params`` (as :meth:`~nndl.network.Network.get_params`
    gives); :meth:`restore` copies them into a network.
    """

    def __init__(self, monitor: str | None = None) -> None:
        if monitor is not None and (not isinstance(monitor, str) or not monitor.endswith(("_accuracy", "_cost"))):
            raise ConfigError(f"the best model is chosen by an accuracy or a cost, e.g. validation_accuracy; "
                              f"got {monitor!r}")
        self.monitor = monitor
        self.epoch: int | None = None
        self.value: float | None = None
        self.params: list[dict[str, np.ndarray]] | None = None

    def _better(self, key: str, value: float) -> bool:
        if value is None or not math.isfinite(value):
            return False
        if self.value is None:
            return True
        return value < self.value if key.endswith("_cost") else value > self.value

    def on_epoch_end(self, trainer, epoch, logs):
        if self.monitor is not None and self.monitor not in logs:
            return   # not evaluated this epoch (monitor_every)
        try:
            key = _pick_monitor(self.monitor, logs)
        except ConfigError:
            return
        self.monitor = key
        if self._better(key, logs[key]):
            self.epoch, self.value, self.params = epoch, float(logs[key]), trainer.network.get_params()

    def restore(self, network) -> None:
        """Put the best epoch's parameters into ``network``."""
        if self.params is None:
            raise ConfigError(f"no epoch has been evaluated on {self.monitor or 'an accuracy'} yet")
        network.set_params(self.params)

    def state_dict(self):
        return {"monitor": self.monitor, "epoch": self.epoch, "value": self.value, "params": self.params}

    def load_state_dict(self, state):
        monitor, epoch, value, params = state["monitor"], state["epoch"], state["value"], state["params"]
        if monitor is not None and not isinstance(monitor, str):
            raise ConfigError(f"best model monitor must be a metric name, got {monitor!r}")
        if self.monitor is not None and monitor is not None and monitor != self.monitor:
            raise ConfigError(f"the saved best model was chosen by {monitor}, not {self.monitor}")
        if (epoch is None) != (params is None) or (epoch is None) != (value is None):
            raise ConfigError("a saved best model needs its epoch, value and parameters together")
        self.monitor = monitor if monitor is not None else self.monitor
        self.epoch = None if epoch is None else _count(epoch, "best epoch")
        self.value = None if value is None else _number(value, "best value")
        self.params = None if params is None else _params_state(params)


class Checkpoint(Callback):
    """Save everything needed to continue the run into ``folder`` after every
    ``every`` epochs (and after the last completed one, however training ends).

    What is saved: the network, the optimizer's state (eta, momentum
    velocities), the shuffling generator and any layer's own generator
    (dropout), the epoch counter, the history and every callback's
    :meth:`~Callback.state_dict` (early stopping, the eta schedule, the best
    network), plus ``run``, a JSON-ready dict describing the run (e.g.
    ``{"config": RunConfig.to_dict()}``). The file, ``folder/checkpoint.npz``,
    is replaced atomically: a process killed at any moment leaves the
    previous complete checkpoint. It is also an nndl model file
    (``nndl evaluate folder/checkpoint.npz``). See :mod:`nndl.checkpoint`
    for the format and :func:`nndl.config.resume` to continue a run.

    The folder is created if missing (its parent must exist) and locked while
    training (``folder/.nndl-lock``): a second training cannot write the same
    checkpoint.

    An epoch counts as complete once the :class:`~nndl.history.History` has
    recorded it; put callbacks with a state before the history (the
    :class:`~nndl.training.Trainer` appends its own history last), so that
    an interrupt never saves a state they have not updated yet.
    """

    def __init__(self, folder, every: int = 1, run: dict | None = None) -> None:
        self.folder = Path(folder)
        self.every = positive_int(every, "checkpoint interval")
        self.run = dict(run or {})
        self.last_saved: int | None = None   # epochs done at the last save
        self._pending = None                 # the latest end-of-epoch state, until saved
        self._lock = None

    @property
    def path(self) -> Path:
        from .checkpoint import checkpoint_path
        return checkpoint_path(self.folder)

    def on_train_begin(self, trainer):
        from .checkpoint import LOCK_NAME, Lock, prepare_folder

        prepare_folder(self.folder)
        if self._lock is None:
            lock = Lock(self.folder / LOCK_NAME, what=f"checkpoint folder {self.folder}")
            lock.acquire()
            self._lock = lock

    def on_epoch_complete(self, trainer, epoch):
        # Taken now, in memory: after an interrupt the trainer itself is
        # mid-epoch, but this is still the end of the last complete epoch.
        self._pending = (trainer.epoch, trainer.state_dict(), trainer.network.config())
        if trainer.epoch % self.every == 0 or trainer.stop_training:
            self._save()

    def on_train_end(self, trainer):
        try:
            if (self._pending is None and trainer.epoch != self.last_saved and trainer.at_epoch_end
                    and trainer.history.epochs):
                # interrupted after an epoch was complete, before its state was taken
                self._pending = (trainer.epoch, trainer.state_dict(), trainer.network.config())
            if self._pending is not None:
                self._save()
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def _save(self) -> None:
        from .checkpoint import write

        epochs, state, network = self._pending
        write(self.folder, state, self.run, network)
        self.last_saved, self._pending = epochs, None


class LinearEtaDecay(Callback):
    """A learning-rate schedule fixed in advance (book ch. 3, "variable
    learning rate"): eta falls in a straight line, epoch by epoch, from its
    starting value in the first epoch to ``eta_final`` in epoch ``epochs - 1``.

    Unlike :class:`EtaSchedule` it watches no accuracy, so nothing measured
    on any data set steers training. Epoch e of E trains with
    ``eta0 + (eta_final - eta0) * e / (E - 1)``.

    Args:
        eta_final: the learning rate of the last epoch (> 0).
        epochs: the number of epochs E the decay spans (later epochs keep
            ``eta_final``).
    """

    def __init__(self, eta_final: float, epochs: int) -> None:
        eta_final = float(eta_final)
        if not math.isfinite(eta_final) or eta_final <= 0:
            raise ConfigError(f"final learning rate must be a positive number, got {eta_final}")
        self.eta_final = eta_final
        self.epochs = positive_int(epochs, "eta decay epochs")
        self.eta0: float | None = None

    def on_train_begin(self, trainer):
        if self.eta0 is None:   # a resumed run keeps its first eta
            self.eta0 = trainer.optimizer.eta

    def state_dict(self):
        return {"eta0": self.eta0}

    def load_state_dict(self, state):
        self.eta0 = None if state["eta0"] is None else _number(state["eta0"], "eta decay eta0")

    def on_epoch_begin(self, trainer, epoch):
        frac = min(epoch, self.epochs - 1) / max(self.epochs - 1, 1)
        trainer.optimizer.eta = self.eta0 + (self.eta_final - self.eta0) * frac
