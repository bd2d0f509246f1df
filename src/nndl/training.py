"""The training loop: it knows nothing about the layers' insides.

:class:`EpochRunner` is the one loop over mini-batches in nndl: given an order
of the examples it cuts them into mini-batches and, for each, runs forward ->
cost delta (BP1) -> backward (BP2-BP4) -> optimizer step. Networks made only
of ``Dense`` layers trained by plain ``SGD`` go through a compiled kernel
(:mod:`nndl.kernels.dense`) that computes the same updates. :class:`Trainer`
(and the book's modules in :mod:`nndl.book`) decide the order of each epoch
and what happens around it (callbacks, printing).
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterable, Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from .callbacks import Callback
from .checks import as_labels
from .errors import ConfigError, positive_int
from .history import History
from .network import as_generator
from .kernels import dense as dense_kernel

#: how many examples the compiled kernel runs between progress updates
_KERNEL_CHUNK = 5000
#: how many mini-batches the NumPy path runs between progress updates
_NUMPY_CHUNK = 50


class EpochRunner:
    """Runs epochs of mini-batch SGD on fixed training data.

    Args:
        network: a :class:`~nndl.network.Network`.
        optimizer: an :class:`~nndl.optimizers.SGD`.
        x: inputs ``(n, *input_shape)`` (already in the network's dtype).
        y: integer labels ``(n,)``; or, with ``delta``, target rows ``(n, n_out)``.
        batch_size: the mini-batch size m.
        n: the n of lambda/n in the weight penalty (default: ``len(x)``).
        fast: use the compiled kernel when the network and options allow it.
        augment: optional ``augment(x_batch, rng) -> x_batch`` applied to every
            mini-batch, with Generator ``rng``.
        delta: optional ``delta(z, a, targets) -> dC/dz^L`` replacing the
            network's cost for BP1 (the book's own ``cost_derivative``).
        step: optional ``step(indices)`` replacing the whole update of one
            mini-batch (a book subclass's own ``update_mini_batch``).
        drop_last: drop the last, partial mini-batch (as network3 does);
            otherwise it is trained on, smaller, as in the book's network.py.
    """

    def __init__(self, network, optimizer, x: np.ndarray, y: np.ndarray, batch_size: int, *,
                 n: int | None = None, fast: bool = True, augment=None, rng=None,
                 delta: Callable | None = None, step: Callable | None = None,
                 drop_last: bool = False) -> None:
        self.network = network
        self.optimizer = optimizer
        self.x, self.y = x, y
        self.m = positive_int(batch_size, "mini-batch size")
        self.n_examples = len(x)
        self.n = self.n_examples if n is None else int(n)
        self.augment, self.rng = augment, rng
        self.delta, self.custom_step = delta, step
        self.n_batches = self.n_examples // self.m if drop_last else -(-self.n_examples // self.m)
        self.n_used = min(self.n_batches * self.m, self.n_examples)
        self.kernel = None
        if (fast and augment is None and delta is None and step is None
                and dense_kernel.supports(network, optimizer)):
            # buffers for at most the whole data set: a larger m is one mini-batch of everything
            self.kernel = dense_kernel.DenseEpochRunner(network, optimizer, x, y, min(self.m, max(len(x), 1)),
                                                        n=self.n)

    @property
    def default_marks(self) -> range:
        """Mini-batch indices between which progress is worth reporting."""
        every = max(1, _KERNEL_CHUNK // self.m) if self.kernel is not None else _NUMPY_CHUNK
        return range(every, self.n_batches, every)

    def run_epoch(self, order: np.ndarray, *, marks: Iterable[int] = (),
                  on_mark: Callable[[int], None] | None = None) -> None:
        """Train on the examples in ``order`` (a permutation of ``range(n)``),
        mini-batch b being ``order[b*m:(b+1)*m]``.

        ``on_mark(b)`` is called before mini-batch b for every b in ``marks``
        (0 <= b < n_batches), with the network's parameters up to date."""
        order = np.asarray(order, dtype=np.int64)
        if order.shape != (self.n_examples,):
            raise ConfigError(f"run_epoch needs an order of the {self.n_examples} examples, got shape {order.shape}")
        nb = self.n_batches
        marks = {int(b) for b in marks if 0 <= b < nb}
        cuts = sorted(marks | {0, nb})
        if self.kernel is not None:
            self.kernel.load()
        for lo, hi in zip(cuts, cuts[1:]):
            if on_mark is not None and lo in marks:
                if self.kernel is not None and lo > 0:
                    self.kernel.sync()
                on_mark(lo)
            self._run_batches(order, lo, hi)
        if self.kernel is not None:
            self.kernel.sync()

    def _run_batches(self, order: np.ndarray, lo: int, hi: int) -> None:
        m = self.m
        if self.kernel is not None:
            self.kernel.run(order, lo * m, min(hi * m, self.n_used))
            return
        net = self.network
        for b in range(lo, hi):                 # the loop over mini-batches
            idx = order[b * m:(b + 1) * m]
            if self.custom_step is not None:
                self.custom_step(idx)
                continue
            xb = self.x[idx]
            if self.augment is not None:
                xb = self.augment(xb, self.rng)
            net.forward(xb, train=True)
            if self.delta is None:
                net.backward(self.y[idx])                                   # BP1-BP4
            else:
                out = net.layers[-1]
                net.backward_delta(self.delta(out.z, out.a, self.y[idx]))  # the caller's BP1
            self.optimizer.step(net.layers, len(idx), self.n)


class Trainer:
    """Trains ``network`` with ``optimizer`` on ``(x, y)`` data.

    Args:
        network: a :class:`~nndl.network.Network`.
        optimizer: an :class:`~nndl.optimizers.SGD`.
        batch_size: the mini-batch size m (the last batch may be smaller,
            as in the book).
        rng: Generator or int seed for shuffling and augmentation (and nothing else).
        callbacks: evaluation, early stopping, schedule, progress... They run
            in the order given (put an :class:`~nndl.callbacks.Evaluation`
            before the callbacks that read its metrics); a
            :class:`~nndl.history.History` is appended unless one is given.
        fast: use the compiled kernel when the network allows it.
        blas_threads: threads the BLAS library may use while training
            (``None``: its own default). The book's mini-batches make tiny
            matrix products that run fastest on one thread; several threads
            contending for busy cores slowed them tenfold in our measurements.
        augment: optional ``augment(x_batch, rng) -> x_batch``, applied to
            every training mini-batch with the trainer's Generator (data
            augmentation on the fly, e.g. :func:`nndl.data.augment.random_shift_rotate`).

    After (or during) :meth:`fit`, ``history`` holds the per-epoch metrics.
    If training is interrupted (Ctrl-C), the network is put back to its
    state at the end of the last completed epoch before the
    ``KeyboardInterrupt`` propagates, so what is saved matches ``history``.
    """

    def __init__(self, network, optimizer, *, batch_size: int = 10, rng=None,
                 callbacks: Sequence[Callback] = (), fast: bool = True,
                 blas_threads: int | None = 1, augment=None) -> None:
        from .network import Network
        from .optimizers import SGD

        if not isinstance(network, Network):
            raise ConfigError(f"the network must be an nndl.Network, got {type(network).__name__}")
        if not isinstance(optimizer, SGD):
            raise ConfigError(f"the optimizer must be an nndl.SGD, got {type(optimizer).__name__}")
        self.network = network
        self.optimizer = optimizer
        self.batch_size = positive_int(batch_size, "mini-batch size")
        self.rng = as_generator(rng)
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise ConfigError(f"callbacks must be nndl.callbacks.Callback instances, got {cb!r}")
        self.history = next((cb for cb in self.callbacks if isinstance(cb, History)), None)
        if self.history is None:
            self.history = History()
            self.callbacks.append(self.history)
        self.fast = fast
        self.blas_threads = blas_threads
        self.augment = augment
        self.stop_training = False
        self.stop_reason: str | None = None
        self.epoch = 0
        self.n_train = 0
        self.n_batches = 0
        self.last_epoch = 0
        self.runner: EpochRunner | None = None

    def _call(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    def fit(self, x: np.ndarray, y: np.ndarray, epochs: int) -> History:
        """Train for ``epochs`` epochs on inputs ``x`` ``(n, *input_shape)`` and integer labels ``y`` ``(n,)``."""
        limit = (threadpool_limits(self.blas_threads, user_api="blas") if self.blas_threads
                 else contextlib.nullcontext())
        with limit:
            return self._fit(x, y, epochs)

    def _fit(self, x: np.ndarray, y: np.ndarray, epochs: int) -> History:
        epochs = positive_int(epochs, "epochs")
        x = self.network.check_input(x, name="the training inputs x")
        y = as_labels(y, len(x), self.network.output_shape[0], name="the training labels y")
        n = self.n_train = len(x)
        if n == 0:
            raise ConfigError("no training data")
        runner = self.runner = EpochRunner(self.network, self.optimizer, x, y, self.batch_size,
                                           fast=self.fast, augment=self.augment, rng=self.rng)
        self.n_batches = runner.n_batches
        marks = set(runner.default_marks)
        for cb in self.callbacks:
            if cb.every_batches:
                marks.update(range(cb.every_batches, runner.n_batches, cb.every_batches))
        self.stop_training = False
        self.last_epoch = self.epoch + epochs - 1   # the last one planned
        self._call("on_train_begin")
        # An epoch is complete once the history has recorded it. An interrupt
        # (Ctrl-C) puts the network back to the end of the last complete epoch,
        # so that what is saved matches the history.
        snapshot, recorded = self.network.get_params(), self.history.epochs
        end_of_epoch = None
        try:
            for _ in range(int(epochs)):
                epoch = self.epoch
                self._call("on_epoch_begin", epoch)
                t0 = time.perf_counter()
                order = self.rng.permutation(n)
                runner.run_epoch(order, marks=marks,
                                 on_mark=lambda b: self._call("on_batches_done", b, runner.n_batches))
                self._call("on_batches_done", runner.n_batches, runner.n_batches)
                logs = {"epoch_seconds": time.perf_counter() - t0, "eta": self.optimizer.eta}
                self.epoch += 1
                end_of_epoch = self.network.get_params()   # this epoch's result, until it is recorded
                self._call("on_epoch_end", epoch, logs)
                snapshot, recorded = self.network.get_params(), self.history.epochs
                if self.stop_training:
                    break
        except KeyboardInterrupt:
            if self.history.epochs > recorded and end_of_epoch is not None:
                snapshot = end_of_epoch   # interrupted after the history recorded this epoch
            self.network.set_params(snapshot)
            raise
        finally:
            self._call("on_train_end")
        return self.history

    def train_batch(self, x: np.ndarray, y: np.ndarray) -> None:
        """One SGD step on one mini-batch (the book's ``update_mini_batch``)."""
        self.network.forward(x, train=True)
        self.network.backward(y)
        self.optimizer.step(self.network.layers, len(x), self.n_train or len(x))


def train(network, optimizer, x, y, *, epochs: int, batch_size: int = 10, rng=None,
          callbacks: Sequence[Callback] = (), fast: bool = True, blas_threads: int | None = 1,
          augment=None) -> History:
    """Convenience wrapper: ``Trainer(...).fit(x, y, epochs)``."""
    return Trainer(network, optimizer, batch_size=batch_size, rng=rng, callbacks=callbacks,
                   fast=fast, blas_threads=blas_threads, augment=augment).fit(x, y, epochs)
