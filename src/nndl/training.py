"""The training loop: it knows nothing about the layers' insides.

Each epoch: shuffle with the trainer's Generator, run the mini-batches
(forward -> cost delta -> backward -> optimizer step), then report to the
callbacks. Networks made only of ``Dense`` layers trained by plain ``SGD``
run through a compiled kernel (:mod:`nndl.kernels.dense`) that computes the
same updates; ``fast=False`` forces the NumPy path.
"""

from __future__ import annotations

import contextlib
import time
from typing import Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from .callbacks import Callback, Evaluation
from .errors import ConfigError, positive_int
from .history import History
from .network import as_generator
from .kernels import dense as dense_kernel

#: how many examples the compiled kernel runs between progress updates
_CHUNK = 5000


class Trainer:
    """Trains ``network`` with ``optimizer`` on ``(x, y)`` data.

    Args:
        network: a :class:`~nndl.network.Network`.
        optimizer: an :class:`~nndl.optimizers.SGD`.
        batch_size: the mini-batch size m (the last batch may be smaller,
            as in the book).
        rng: Generator or int seed for shuffling (and nothing else).
        callbacks: evaluation, early stopping, schedule, progress...
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
        batch_size = positive_int(batch_size, "mini-batch size")
        self.network = network
        self.optimizer = optimizer
        self.batch_size = int(batch_size)
        self.rng = as_generator(rng)
        # evaluation first, so that the callbacks after it can read its metrics
        self.callbacks = sorted(callbacks, key=lambda c: not isinstance(c, Evaluation))
        self.fast = fast
        self.blas_threads = blas_threads
        self.augment = augment
        self.history = History()
        self.stop_training = False
        self.stop_reason: str | None = None
        self.epoch = 0
        self.n_train = 0
        self.n_batches = 0

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
        x = self.network._check_input(x)
        y = np.asarray(y)
        if y.shape != (len(x),):
            raise ConfigError(f"labels must have shape ({len(x)},) to match the inputs, got {y.shape}")
        n_out = self.network.output_shape[0]
        if len(y) and (y.min() < 0 or y.max() >= n_out or not np.issubdtype(y.dtype, np.integer)):
            raise ConfigError(f"labels must be integers in 0..{n_out - 1} for {n_out} output neurons")
        n = self.n_train = len(x)
        if n == 0:
            raise ConfigError("no training data")
        m = self.batch_size
        self.n_batches = -(-n // m)
        runner = None
        if self.fast and self.augment is None and dense_kernel.supports(self.network, self.optimizer):
            runner = dense_kernel.DenseEpochRunner(self.network, self.optimizer, x, y, m)
        self.stop_training = False
        self._call("on_train_begin")
        snapshot = self.network.get_params()
        try:
            for _ in range(int(epochs)):
                epoch = self.epoch
                self._call("on_epoch_begin", epoch)
                t0 = time.perf_counter()
                order = self.rng.permutation(n)
                if runner is not None:
                    runner.load()
                    for start in range(0, n, _CHUNK):
                        stop = min(start + _CHUNK, n)
                        runner.run(order, start, stop)
                        self._call("on_batches_done", -(-stop // m), self.n_batches)
                    runner.sync()
                else:
                    for b, start in enumerate(range(0, n, m)):
                        idx = order[start:start + m]
                        xb = x[idx] if self.augment is None else self.augment(x[idx], self.rng)
                        self.train_batch(xb, y[idx])
                        if b % 50 == 49 or start + m >= n:
                            self._call("on_batches_done", b + 1, self.n_batches)
                logs = {"epoch_seconds": time.perf_counter() - t0, "eta": self.optimizer.eta}
                self.epoch += 1
                self._call("on_epoch_end", epoch, logs)
                self.history.append({k: v for k, v in logs.items() if not k.endswith("_correct")})
                # An epoch is complete once it is in the history; an interrupt
                # before this line rolls back to the previous one.
                snapshot = self.network.get_params()
                if self.stop_training:
                    break
        except KeyboardInterrupt:
            self.network.set_params(snapshot)
            raise
        finally:
            self._call("on_train_end")
        return self.history

    def train_batch(self, x: np.ndarray, y: np.ndarray) -> None:
        """One SGD step on one mini-batch (the book's ``update_mini_batch``)."""
        self.network.forward(x, train=True)
        self.network.backward(y)
        self.optimizer.step(self.network.layers, len(x), self.n_train)


def train(network, optimizer, x, y, *, epochs: int, batch_size: int = 10, rng=None,
          callbacks: Sequence[Callback] = (), fast: bool = True, blas_threads: int | None = 1,
          augment=None) -> History:
    """Convenience wrapper: ``Trainer(...).fit(x, y, epochs)``."""
    return Trainer(network, optimizer, batch_size=batch_size, rng=rng, callbacks=callbacks,
                   fast=fast, blas_threads=blas_threads, augment=augment).fit(x, y, epochs)
