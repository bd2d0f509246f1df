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

import copy
import math
import time
from typing import Callable, Iterable, Sequence

import numpy as np

from .callbacks import Callback
from .checks import as_labels
from .errors import ConfigError, DivergedError, positive_int
from .history import History
from .network import as_generator
from .kernels import dense as dense_kernel
from .kernels.threads import limit as kernel_threads_limit

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
        if step is None:   # checked once here (shape, dtype, labels), not every mini-batch
            x = network.check_input(x, name="the training inputs x", finite=False)
            if delta is None:
                y = as_labels(y, len(x), network.output_shape[0], name="the training labels y")
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
            net.forward(xb, train=True, check=self.augment is not None)   # x was checked in __init__
            if self.delta is None:
                net.backward(self.y[idx], check=False)                      # BP1-BP4
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
        blas_threads: threads training may use (``None``: the libraries'
            own defaults): the compiled conv kernels run on up to this many,
            BLAS on one (:func:`nndl.kernels.threads.limit`: the products of
            training-sized mini-batches are too small to share, and two pools
            of threads on the same cores slow each other down).
        augment: optional ``augment(x_batch, rng) -> x_batch``, applied to
            every training mini-batch with the trainer's Generator (data
            augmentation on the fly, e.g. :func:`nndl.data.augment.random_shift_rotate`).
        max_weight: the divergence guard's limit on any weight or bias
            magnitude (``None``: only non-finite values count as divergence).

    After (or during) :meth:`fit`, ``history`` holds the per-epoch metrics.
    An epoch is complete once every callback has seen its end; what is kept
    when training ends early is always the state at the end of the last
    complete epoch, so that a saved network matches ``history``:

    * **Interrupt** (Ctrl-C): the network is put back to that state and the
      ``KeyboardInterrupt`` propagates.
    * **Divergence**: after every epoch's mini-batches (and at each progress
      point within it) every parameter is checked; a NaN or infinite value,
      or one beyond ``max_weight`` (default :data:`MAX_WEIGHT`), or a
      non-finite evaluated cost, puts the network back to that state, drops
      the diverged epoch from the history and raises
      :class:`~nndl.errors.DivergedError` (saying which epoch and which
      quantity). The book's networks keep every weight below about 10 (we
      measured chapters 1 and 3 runs of up to 100 epochs, without
      regularisation); weights beyond ``MAX_WEIGHT`` come from a learning
      rate far too large (``eta 1e6``: 1e12 within the first epoch). Such
      a run rarely reaches NaN: its sigmoids saturate and its ReLUs die, its
      clipped cost stays finite, and it would report chance accuracy as if
      it were a result.

    :meth:`state_dict` / :meth:`load_state_dict` hold everything that decides
    how training continues (see :class:`~nndl.callbacks.Checkpoint`): a
    trainer loaded with a state saved after epoch k and fitted for the
    remaining epochs gives exactly the uninterrupted run's weights and history.
    """

    #: default limit of the divergence guard on any weight or bias magnitude
    #: (three orders of magnitude above what healthy networks reach)
    MAX_WEIGHT = 1e4

    def __init__(self, network, optimizer, *, batch_size: int = 10, rng=None,
                 callbacks: Sequence[Callback] = (), fast: bool = True,
                 blas_threads: int | None = 1, augment=None, max_weight: float | None = MAX_WEIGHT) -> None:
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
        if max_weight is not None and not (isinstance(max_weight, (int, float)) and max_weight > 0):
            raise ConfigError(f"max_weight must be a positive number or None, got {max_weight!r}")
        self.max_weight = max_weight
        self.stop_training = False
        self.stop_reason: str | None = None
        self.epoch = 0
        self.n_train = 0
        self.n_batches = 0
        self.last_epoch = 0
        self.runner: EpochRunner | None = None
        self._trained = 0   # epochs whose mini-batches have all been trained on (0: none in this fit)
        self._mid_epoch = False

    def _call(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    def fit(self, x: np.ndarray, y: np.ndarray, epochs: int) -> History:
        """Train for ``epochs`` epochs on inputs ``x`` ``(n, *input_shape)`` and integer labels ``y`` ``(n,)``."""
        with kernel_threads_limit(self.blas_threads or None):   # kernels on n threads, BLAS on one
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
        self._trained, self._mid_epoch = self.epoch, False
        self._call("on_train_begin")
        # The end of the last complete epoch: the network, the history's
        # length and the epoch counter, put back if training ends mid-epoch.
        snapshot, recorded, done = self.network.get_params(), self.history.epochs, self.epoch
        end_of_epoch = None
        try:
            for _ in range(int(epochs)):
                epoch = self.epoch
                self._call("on_epoch_begin", epoch)
                t0 = time.perf_counter()
                self._mid_epoch = True
                order = self.rng.permutation(n)

                def on_mark(b, epoch=epoch):
                    self._check_params(epoch)
                    self._call("on_batches_done", b, runner.n_batches)

                runner.run_epoch(order, marks=marks, on_mark=on_mark)
                self._check_params(epoch)   # before anything reads this epoch's result
                self._trained, self._mid_epoch = epoch + 1, False
                self._call("on_batches_done", runner.n_batches, runner.n_batches)
                logs = {"epoch_seconds": time.perf_counter() - t0, "eta": self.optimizer.eta}
                self.epoch += 1
                end_of_epoch = self.network.get_params()   # this epoch's result, until it is recorded
                self._call("on_epoch_end", epoch, logs)
                self._check_logs(epoch, logs)
                snapshot, recorded, done = self.network.get_params(), self.history.epochs, self.epoch
                self._call("on_epoch_complete", epoch)
                if self.stop_training:
                    break
        except KeyboardInterrupt:
            if self.history.epochs > recorded and end_of_epoch is not None:
                # interrupted after the history recorded this epoch
                snapshot, done = end_of_epoch, done + 1
            self.network.set_params(snapshot)
            self.epoch = done
            raise
        except DivergedError:
            self.network.set_params(snapshot)
            self.history.truncate(recorded)
            self.epoch = done
            self.stop_reason = "diverged"
            raise
        finally:
            self._call("on_train_end")
        return self.history

    # -- the divergence guard ---------------------------------------------------------
    def _diverged(self, epoch: int, quantity: str, what: str) -> DivergedError:
        return DivergedError(f"the run diverged in epoch {epoch}: the {quantity} {what}; the learning rate "
                             f"(eta {self.optimizer.eta:g}) is probably too large: try a smaller one",
                             epoch, quantity)

    def _check_params(self, epoch: int) -> None:
        """One pass over each parameter: NaN, infinite or beyond ``max_weight``."""
        for i, layer in enumerate(self.network.layers):
            for key, p in layer.params.items():
                if not p.size:
                    continue
                largest = float(np.max(np.abs(p)))   # NaN if any is NaN
                quantity = f"{'biases' if key == 'b' else 'weights'} of layer {i}"
                if not math.isfinite(largest):
                    raise self._diverged(epoch, quantity, "became NaN or infinite")
                if self.max_weight is not None and largest > self.max_weight:
                    raise self._diverged(epoch, quantity, f"reached {largest:.3g} in magnitude (the guard's "
                                                          f"limit is {self.max_weight:g})")

    def _check_logs(self, epoch: int, logs: dict) -> None:
        for key, value in logs.items():
            if key.endswith("_cost") and isinstance(value, (int, float)) and not math.isfinite(value):
                raise self._diverged(epoch, key.replace("_", " "), f"became {value}")

    # -- state, for checkpoints -------------------------------------------------------
    @property
    def at_epoch_end(self) -> bool:
        """Whether the trainer's whole state (not only the network) is that of
        the end of its last complete epoch: false after an interrupt in the
        middle of an epoch, or after the mini-batches of an epoch that was
        then not recorded. :class:`~nndl.callbacks.Checkpoint` saves only such
        a state."""
        return not self._mid_epoch and self._trained == self.epoch

    def state_dict(self) -> dict:
        """Everything that decides how training continues from here, as copies:
        ``epoch`` (epochs done), ``params``, ``optimizer`` (its
        :meth:`~nndl.optimizers.SGD.state_dict`), ``rng`` (the shuffling
        generator's ``bit_generator.state``; augmentation draws from it too),
        ``layer_rngs`` (each layer's own generator state or None: dropout),
        ``callbacks`` (``[{"type": name, "state": ...}]`` for every callback
        with a state, the history included, in order) and ``stopped`` /
        ``stop_reason`` (whether a callback ended training)."""
        return {
            "epoch": self.epoch,
            "params": self.network.get_params(),
            "optimizer": self.optimizer.state_dict(),
            "rng": copy.deepcopy(self.rng.bit_generator.state),
            "layer_rngs": [None if layer.rng is None else copy.deepcopy(layer.rng.bit_generator.state)
                           for layer in self.network.layers],
            "callbacks": [{"type": type(cb).__name__, "state": st} for cb in self.callbacks
                          if (st := cb.state_dict()) is not None],
            "stopped": bool(self.stop_training),
            "stop_reason": self.stop_reason,
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict`'s result (before :meth:`fit`).

        The network, optimizer, generators and stateful callbacks must be the
        same kinds as when it was saved (same layers and shapes, the same
        stateful callbacks in the same order); otherwise ConfigError, saying
        what differs. The network, optimizer and generators are checked
        before anything is changed."""
        try:
            epoch = state["epoch"]
            if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
                raise ConfigError(f"epoch must be an integer >= 0, got {epoch!r}")
            params = state["params"]
            self._check_saved_params(params, "parameters")
            optimizer = state["optimizer"]
            velocity = optimizer["velocity"]
            if not isinstance(velocity, dict):
                raise ConfigError("optimizer velocity must be a dict of arrays")
            shapes = {f"{i}.{k}": p[k] for i, p in enumerate(params) for k in p}
            for name, v in velocity.items():
                if name not in shapes or not isinstance(v, np.ndarray) or v.shape != shapes[name].shape \
                        or v.dtype != shapes[name].dtype:
                    raise ConfigError(f"optimizer velocity {name!r} does not fit the network's parameters")
            rng = self._generator_like(self.rng, state["rng"], "the shuffling generator")
            layer_states = state["layer_rngs"]
            if not isinstance(layer_states, list) or len(layer_states) != len(self.network.layers):
                raise ConfigError(f"layer generators: expected one entry per layer ({len(self.network.layers)})")
            layer_rngs = []
            for i, (layer, st) in enumerate(zip(self.network.layers, layer_states)):
                if (layer.rng is None) != (st is None):
                    raise ConfigError(f"layer {i} ({type(layer).__name__}) "
                                      f"{'has no' if layer.rng is None else 'has a'} generator of its own, "
                                      "unlike the saved one")
                layer_rngs.append(None if st is None else self._generator_like(layer.rng, st, f"layer {i}'s generator"))
            saved = state["callbacks"]
            ours = [cb for cb in self.callbacks if cb.state_dict() is not None]
            if not isinstance(saved, list) or [s.get("type") if isinstance(s, dict) else s for s in saved] != \
                    [type(cb).__name__ for cb in ours]:
                names = [s.get("type") if isinstance(s, dict) else repr(s) for s in saved] \
                    if isinstance(saved, list) else saved
                raise ConfigError(f"the saved state is for the callbacks {names}, but this trainer has "
                                  f"{[type(cb).__name__ for cb in ours]}")
            stopped, stop_reason = bool(state["stopped"]), state["stop_reason"]
            # everything checked that can be: change the trainer
            self.network.set_params(params)
            self.optimizer.load_state_dict(optimizer)
            self.rng.bit_generator.state = rng.bit_generator.state
            for layer, g in zip(self.network.layers, layer_rngs):
                if g is not None:
                    layer.rng.bit_generator.state = g.bit_generator.state
            for cb, s in zip(ours, saved):
                cb.load_state_dict(s["state"])
            self.epoch = epoch
            self.stop_training, self.stop_reason = stopped, stop_reason
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            if isinstance(e, ConfigError):
                raise
            raise ConfigError(f"not a trainer state ({type(e).__name__}: {e})") from None

    def _check_saved_params(self, params, what: str) -> None:
        layers = self.network.layers
        if not isinstance(params, list) or len(params) != len(layers):
            raise ConfigError(f"{what}: expected one entry per layer ({len(layers)})")
        for i, (layer, p) in enumerate(zip(layers, params)):
            if not isinstance(p, dict) or set(p) != set(layer.params):
                raise ConfigError(f"{what}: layer {i} should have {sorted(layer.params)}")
            for k, v in p.items():
                ref = layer.params[k]
                if not isinstance(v, np.ndarray) or v.shape != ref.shape or v.dtype != ref.dtype:
                    got = f"{v.dtype} {v.shape}" if isinstance(v, np.ndarray) else type(v).__name__
                    raise ConfigError(f"{what}: layer {i} {k!r} should be {ref.dtype} {ref.shape}, got {got}")
                if not np.isfinite(v).all():
                    raise ConfigError(f"{what}: layer {i} {k!r} holds values that are not finite")

    @staticmethod
    def _generator_like(rng: np.random.Generator, state, what: str) -> np.random.Generator:
        g = np.random.Generator(type(rng.bit_generator)())
        try:
            g.bit_generator.state = state
        except (TypeError, ValueError, KeyError) as e:
            raise ConfigError(f"{what}: not a {type(rng.bit_generator).__name__} state ({e})") from None
        return g

    def train_batch(self, x: np.ndarray, y: np.ndarray) -> None:
        """One SGD step on one mini-batch (the book's ``update_mini_batch``)."""
        self.network.forward(x, train=True)
        self.network.backward(y)
        self.optimizer.step(self.network.layers, len(x), self.n_train or len(x))


def train(network, optimizer, x, y, *, epochs: int, batch_size: int = 10, rng=None,
          callbacks: Sequence[Callback] = (), fast: bool = True, blas_threads: int | None = 1,
          augment=None, max_weight: float | None = Trainer.MAX_WEIGHT) -> History:
    """Convenience wrapper: ``Trainer(...).fit(x, y, epochs)``."""
    return Trainer(network, optimizer, batch_size=batch_size, rng=rng, callbacks=callbacks,
                   fast=fast, blas_threads=blas_threads, augment=augment, max_weight=max_weight).fit(x, y, epochs)
