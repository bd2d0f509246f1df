"""Things that happen around training: evaluation, early stopping, the
learning-rate schedule, progress bars and checkpoints.

A callback sees the :class:`~nndl.training.Trainer` and the epoch's ``logs``
(a dict of metrics). Callbacks run in the order given; an evaluation callback
should come before those that read its metrics (the trainer puts
:class:`Evaluation` first). Set ``trainer.stop_training = True`` to stop.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Iterable

from .errors import ConfigError, positive_int


class Callback:
    def on_train_begin(self, trainer) -> None: ...
    def on_epoch_begin(self, trainer, epoch: int) -> None: ...
    def on_batches_done(self, trainer, done: int, total: int) -> None: ...
    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None: ...
    def on_train_end(self, trainer) -> None: ...


SPLITS = ("training", "validation", "test")
METRICS = ("accuracy", "cost")


class Evaluation(Callback):
    """Accuracy and/or cost on named data sets after each epoch.

    Args:
        data: ``{"test": dataset, ...}`` with keys from ``training``,
            ``validation``, ``test``; each dataset has ``x`` and ``y``.
        metrics: ``"accuracy"``, ``"cost"`` or both. The cost includes the
            weight penalty, as the book's ``total_cost`` does.

    Logs ``<split>_accuracy`` (a fraction) and ``<split>_cost``, plus
    ``<split>_correct`` (a count) for the book-style report.
    """

    def __init__(self, data: dict, metrics: Iterable[str] = ("accuracy",)) -> None:
        for name in data:
            if name not in SPLITS:
                raise ConfigError(f"unknown split {name!r}; valid splits: {', '.join(SPLITS)}")
        metrics = tuple(metrics)
        for m in metrics:
            if m not in METRICS:
                raise ConfigError(f"unknown metric {m!r}; valid metrics: {', '.join(METRICS)}")
        self.data = dict(data)
        self.metrics = metrics

    def on_epoch_end(self, trainer, epoch, logs):
        net = trainer.network
        for name, ds in self.data.items():
            if "accuracy" in self.metrics:
                correct = net.accuracy(ds.x, ds.y)
                logs[f"{name}_correct"] = correct
                logs[f"{name}_accuracy"] = correct / len(ds.y)
            if "cost" in self.metrics:
                logs[f"{name}_cost"] = net.total_cost(ds.x, ds.y, trainer.optimizer.regularizers,
                                                      trainer.n_train)


def _pick_monitor(monitor: str | None, logs: dict) -> str:
    if monitor is not None:
        if monitor not in logs:
            raise ConfigError(f"cannot monitor {monitor!r}: it is not evaluated (have: {', '.join(sorted(logs))})")
        return monitor
    for key in ("validation_accuracy", "test_accuracy", "training_accuracy"):
        if key in logs:
            return key
    raise ConfigError("early stopping and the eta schedule need an accuracy to monitor; "
                      "evaluate accuracy on some data set")


class EarlyStopping(Callback):
    """Stop when the monitored accuracy has not improved for ``patience`` epochs
    (the book's ``early_stopping_n``)."""

    def __init__(self, patience: int, monitor: str | None = None) -> None:
        self.patience = positive_int(patience, "early stopping patience")
        self.monitor = monitor
        self.best = -math.inf
        self.wait = 0

    def on_epoch_end(self, trainer, epoch, logs):
        key = _pick_monitor(self.monitor, logs)
        if logs[key] > self.best:
            self.best, self.wait = logs[key], 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                trainer.stop_training = True
                trainer.stop_reason = f"no improvement in {key} for {self.patience} epochs"


class EtaSchedule(Callback):
    """The book's schedule (ch. 3): halve eta each time the monitored accuracy
    has not improved for ``patience`` epochs; stop once eta has fallen to
    ``eta0 * min_ratio`` (1/128 in the book)."""

    def __init__(self, patience: int, factor: float = 0.5, min_ratio: float = 1 / 128,
                 monitor: str | None = None) -> None:
        patience = positive_int(patience, "schedule patience")
        if not 0 < factor < 1:
            raise ConfigError(f"schedule factor must be in (0, 1), got {factor}")
        self.patience, self.factor, self.min_ratio, self.monitor = patience, factor, min_ratio, monitor
        self.best = -math.inf
        self.wait = 0

    def on_train_begin(self, trainer):
        self.eta0 = trainer.optimizer.eta

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


class ProgressBar(Callback):
    """A tqdm bar over the mini-batches of each epoch (on stderr, and only
    when that is a terminal, unless ``disable=False`` is passed)."""

    def __init__(self, leave: bool = False, **tqdm_kwargs) -> None:
        tqdm_kwargs.setdefault("disable", None)
        self.leave = leave
        self.kwargs = tqdm_kwargs
        self.bar = None

    def on_epoch_begin(self, trainer, epoch):
        from tqdm.auto import tqdm

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


class LambdaCallback(Callback):
    """Call ``fn(epoch, logs)`` after each epoch (e.g. to report it)."""

    def __init__(self, on_epoch_end: Callable[[int, dict], None]) -> None:
        self.fn = on_epoch_end

    def on_epoch_end(self, trainer, epoch, logs):
        self.fn(epoch, logs)


class Checkpoint(Callback):
    """Save the network (atomically) after every ``every`` epochs, and at the end."""

    def __init__(self, path, every: int = 1) -> None:
        self.path = Path(path)
        self.every = every

    def on_epoch_end(self, trainer, epoch, logs):
        if (epoch + 1) % self.every == 0:
            from .io import save

            save(trainer.network, self.path)
