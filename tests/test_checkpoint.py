"""Checkpoints, exact resume and the divergence guard, in the library, on
synthetic data (seconds): a trainer stopped after epoch k, saved, read back
and continued equals the uninterrupted one bit for bit, on both engine
paths, with momentum, dropout, augmentation and every stateful callback;
a diverging run keeps its last finite epoch; a broken or foreign checkpoint
is refused with a message saying what is wrong. The same through the command
line, with real processes killed, is in ``test_cli_resume.py``."""

from __future__ import annotations

import json
import re
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest

import nndl
from nndl import SGD, L2, ConfigError, Network, Trainer
from nndl import checkpoint as ckpt
from nndl.callbacks import (BestModel, Callback, Checkpoint, EarlyStopping, EtaSchedule, Evaluation,
                            GradientRecorder)
from nndl.config import RunConfig, resume, run
from nndl.data.mnist import Dataset, MnistSplits
from nndl.errors import CheckpointError, DivergedError
from nndl.layers import Dense, Dropout

from helpers import sparse_inputs

RNG = np.random.default_rng(5)
X, Y = sparse_inputs(RNG, 240, 12), RNG.integers(0, 4, 240)
VAL = SimpleNamespace(x=X[:60], y=Y[:60])


def _noise(xb, rng):
    """Augmentation on the fly: it draws from the trainer's Generator."""
    return xb + 0.01 * rng.standard_normal(xb.shape)


def _trainer(kind: str, extra=()) -> Trainer:
    if kind == "dropout":   # a layer with a generator of its own; the NumPy path
        layers = [Dense(10, "relu"), Dropout(0.3), Dense(4, "softmax")]
        net = Network(layers, "log-likelihood", input_shape=(12,), rng=0, dtype="float64")
    else:
        net = Network.from_sizes([12, 10, 4], cost="cross-entropy", rng=0, dtype="float64")
    momentum = 0.0 if kind == "kernel" else 0.7
    callbacks = [Evaluation({"validation": VAL}, ("accuracy", "cost")), EarlyStopping(50, restore_best=True),
                 EtaSchedule(1), GradientRecorder(probe_size=30, every_batches=5), BestModel("validation_cost"),
                 *extra]
    return Trainer(net, SGD(0.3, momentum=momentum, regularizers=[L2(0.5)]), batch_size=7, rng=1,
                   fast=kind != "numpy", callbacks=callbacks, augment=_noise if kind == "dropout" else None)


def _same_state(a: Trainer, b: Trainer) -> None:
    for pa, pb in zip(a.network.get_params(), b.network.get_params()):
        for k in pa:
            assert pa[k].dtype == pb[k].dtype and np.array_equal(pa[k], pb[k]), k
    ha = {k: v for k, v in a.history.data.items() if k != "epoch_seconds"}
    hb = {k: v for k, v in b.history.data.items() if k != "epoch_seconds"}
    assert ha == hb
    sa, sb = a.optimizer.state_dict(), b.optimizer.state_dict()
    assert sa["eta"] == sb["eta"] and sa["velocity"].keys() == sb["velocity"].keys()
    assert all(np.array_equal(sa["velocity"][k], sb["velocity"][k]) for k in sa["velocity"])
    assert a.rng.bit_generator.state == b.rng.bit_generator.state


@pytest.mark.parametrize("kind", ["kernel", "numpy", "dropout"])
def test_resumed_run_equals_the_uninterrupted_one_bit_for_bit(kind, tmp_path):
    whole = _trainer(kind)
    whole.fit(X, Y, 5)
    first = _trainer(kind, [Checkpoint(tmp_path / "ck")])
    first.fit(X, Y, 2)
    saved = ckpt.read(tmp_path / "ck")
    assert saved.epoch == 2
    later = _trainer(kind)
    later.load_state_dict(saved.state)
    later.fit(X, Y, 3)
    _same_state(whole, later)
    assert later.history.epochs == 5 and later.epoch == 5
    # the state callbacks carry over, e.g. the schedule's halvings and the best epoch
    assert whole.history["eta"] == later.history["eta"]
    assert whole.callbacks[4].epoch == later.callbacks[4].epoch
    assert whole.callbacks[4].state_dict()["value"] == later.callbacks[4].state_dict()["value"]


class _InterruptAt(Callback):
    """Ctrl-C in the middle of an epoch."""

    every_batches = 4

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_batches_done(self, trainer, done, total):
        if trainer.epoch == self.epoch and 0 < done < total:
            raise KeyboardInterrupt


def test_an_interrupt_mid_epoch_leaves_the_checkpoint_of_the_last_complete_epoch(tmp_path):
    whole = _trainer("numpy")
    whole.fit(X, Y, 4)
    first = _trainer("numpy", [_InterruptAt(2), Checkpoint(tmp_path / "ck", every=5)])
    with pytest.raises(KeyboardInterrupt):
        first.fit(X, Y, 4)
    # every=5 wrote nothing on the way; the end of training wrote epoch 2's state,
    # taken when it was complete (not the half-trained one of the interrupt)
    saved = ckpt.read(tmp_path / "ck")
    assert saved.epoch == 2 and first.history.epochs == 2 and first.epoch == 2
    later = _trainer("numpy")
    later.load_state_dict(saved.state)
    later.fit(X, Y, 2)
    _same_state(whole, later)


def test_a_failed_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    t = _trainer("kernel", [Checkpoint(tmp_path / "ck")])
    t.fit(X, Y, 1)
    before = (tmp_path / "ck" / ckpt.FILENAME).read_bytes()

    def half_written(f, **arrays):
        f.write(b"PK\x03\x04 half an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", half_written)
    with pytest.raises(nndl.NNDLError, match=r"cannot write .*checkpoint.npz: No space left on device"):
        t.fit(X, Y, 1)
    assert (tmp_path / "ck" / ckpt.FILENAME).read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == [ckpt.LOCK_NAME, ckpt.FILENAME]
    assert ckpt.read(tmp_path / "ck").epoch == 1


def test_the_checkpoint_is_also_a_model_file_and_holds_the_run(tmp_path):
    t = _trainer("kernel", [Checkpoint(tmp_path / "ck", run={"config": {"note": "mine"}})])
    t.fit(X, Y, 2)
    net = nndl.load(tmp_path / "ck" / ckpt.FILENAME)
    np.testing.assert_array_equal(net.feedforward(X), t.network.feedforward(X))
    saved = ckpt.read(tmp_path / "ck")
    assert saved.run == {"config": {"note": "mine"}}
    with zipfile.ZipFile(tmp_path / "ck" / ckpt.FILENAME) as z:
        meta = json.loads(np.lib.format.read_array(z.open("checkpoint.json.npy")).tobytes())
    assert meta["format"] == "nndl-checkpoint" and meta["epoch"] == 2
    # -inf (no best yet) and NaN are written as valid JSON, not as bare NaN
    with zipfile.ZipFile(tmp_path / "ck" / ckpt.FILENAME) as z:
        assert b"NaN" not in z.read("checkpoint.json.npy") and b"Infinity" not in z.read("checkpoint.json.npy")


def test_loading_a_state_into_another_trainer_says_what_differs(tmp_path):
    t = _trainer("kernel")
    t.fit(X, Y, 1)
    state = t.state_dict()
    other = Trainer(Network.from_sizes([12, 9, 4], rng=0, dtype="float64"), SGD(0.3), callbacks=[])
    with pytest.raises(ConfigError, match=r"parameters: layer 0 'w' should be float64 \(9, 12\), "
                                          r"got float64 \(10, 12\)"):
        other.load_state_dict(state)
    fewer = Trainer(Network.from_sizes([12, 10, 4], cost="cross-entropy", rng=0, dtype="float64"), SGD(0.3))
    before = fewer.network.get_params()
    with pytest.raises(ConfigError, match=r"saved state is for the callbacks \['EarlyStopping', 'EtaSchedule', "
                                          r"'BestModel', 'History'\], but this trainer has \['History'\]"):
        fewer.load_state_dict(state)
    assert all(np.array_equal(a[k], b[k]) for a, b in zip(before, fewer.network.get_params()) for k in a)


# -- the divergence guard -------------------------------------------------------------
class _Corrupt(Callback):
    """Puts a NaN into the weights as epoch ``epoch`` begins (a stand-in for an
    overflow): the NaN spreads through training from there."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_begin(self, trainer, epoch):
        if epoch == self.epoch:
            trainer.network.layers[1].params["w"][0, 0] = np.nan


@pytest.mark.parametrize("fast", [False, True], ids=["numpy", "kernel"])
def test_a_nan_weight_stops_the_run_keeping_the_last_finite_epoch(fast, tmp_path):
    reference = _trainer("kernel" if fast else "numpy")
    reference.fit(X, Y, 2)
    t = _trainer("kernel" if fast else "numpy", [_Corrupt(2), Checkpoint(tmp_path / "ck")])
    with pytest.raises(DivergedError) as e:
        t.fit(X, Y, 4)
    assert re.fullmatch(r"the run diverged in epoch 2: the (weights|biases) of layer \d became NaN or infinite; "
                        rf"the learning rate \(eta {t.optimizer.eta:g}\) is probably too large: try a smaller one",
                        str(e.value)), str(e.value)
    assert e.value.epoch == 2 and e.value.quantity in str(e.value)
    _same_state(reference, SimpleNamespace(network=t.network, history=t.history, optimizer=reference.optimizer,
                                           rng=reference.rng))
    assert t.epoch == 2 and ckpt.read(tmp_path / "ck").epoch == 2


def test_weights_blown_up_count_as_divergence_unless_the_limit_is_lifted():
    net = Network.from_sizes([12, 10, 4], activation="relu", cost="log-likelihood", rng=0, dtype="float64")
    with pytest.raises(DivergedError, match=r"^the run diverged in epoch 0: the (weights|biases) of layer \d "
                                            r"reached [0-9.e+]+ in magnitude \(the guard's limit is 10000\)"):
        Trainer(net, SGD(1e6), batch_size=7, rng=1).fit(X, Y, 3)
    assert net.get_params()[0]["w"].max() < 10   # the initial network: no epoch was complete
    net = Network.from_sizes([12, 10, 4], activation="relu", cost="log-likelihood", rng=0, dtype="float64")
    Trainer(net, SGD(1e6), batch_size=7, rng=1, max_weight=None).fit(X, Y, 1)
    assert np.abs(net.get_params()[0]["w"]).max() > 1e4


def test_a_non_finite_evaluated_cost_drops_that_epoch_from_the_history():
    # a linear output on inputs near the float64 limit: finite weights, infinite cost
    net = Network.from_sizes([12, 4], activation="linear", cost="quadratic", rng=0, dtype="float64")
    huge = SimpleNamespace(x=np.full((5, 12), 1e300), y=np.zeros(5, dtype=np.int64))
    t = Trainer(net, SGD(0.01), batch_size=7, rng=1, callbacks=[Evaluation({"validation": huge}, ("cost",))])
    with np.errstate(over="ignore", invalid="ignore"), pytest.raises(DivergedError) as e:
        t.fit(X, Y, 2)
    assert str(e.value).startswith("the run diverged in epoch 0: the validation cost became inf;")
    assert t.history.epochs == 0 and t.history["epoch_seconds"] == [] and t.epoch == 0
    json.dumps(t.history.to_dict(), allow_nan=False)


# -- run() and resume() --------------------------------------------------------------------
def _splits() -> MnistSplits:
    rng = np.random.default_rng(11)
    make = lambda n: Dataset(sparse_inputs(rng, n, 784, zeros=0.8).astype(np.float32),  # noqa: E731
                             rng.integers(0, 10, n))
    return MnistSplits(make(300), make(100), make(100))


DATA = _splits()
CONFIG = RunConfig(sizes=(784, 16, 10), epochs=4, eta=0.5, momentum=0.5, monitor=["validation:accuracy,cost", "test"],
                   schedule=1, dtype="float64")


def _metrics(history):
    return {k: v for k, v in history.data.items() if k != "epoch_seconds"}


@pytest.mark.parametrize("fast", [True, False], ids=["kernel", "numpy"])
def test_run_and_resume_from_a_checkpoint_folder(fast, tmp_path):
    config = CONFIG.replace(fast=fast)
    whole = run(config, data=DATA, keep_best=True)
    part = run(config.replace(epochs=2), data=DATA, checkpoint=tmp_path / "ck", keep_best=True,
               notes={"save": "net.npz"})
    rest = resume(tmp_path / "ck", epochs=4, data=DATA)
    assert rest.resumed_from == 2 and rest.config == config and rest.history.epochs == 4
    assert all(np.array_equal(a[k], b[k]) for a, b in zip(whole.network.get_params(), rest.network.get_params())
               for k in a)
    assert _metrics(whole.history) == _metrics(rest.history)
    assert rest.best.epoch == whole.best.epoch and rest.best.monitor == "validation_accuracy"
    assert rest.history.run["resumed"][0]["epoch"] == 2 and rest.history.run["config"]["epochs"] == 4
    assert part.history.epochs == 2 and ckpt.read(tmp_path / "ck").run["notes"] == {"save": "net.npz"}
    # run() with the same folder and configuration continues instead of starting over: nothing left to do
    again = run(config, data=DATA, checkpoint=tmp_path / "ck")
    assert again.resumed_from == 4 and _metrics(again.history) == _metrics(whole.history)


def test_run_refuses_a_checkpoint_of_another_configuration(tmp_path):
    run(CONFIG.replace(epochs=1), data=DATA, checkpoint=tmp_path / "ck")
    with pytest.raises(CheckpointError, match=r"ck holds a checkpoint of another run \(epoch 1 of 1: "
                                              r"\[784, 16, 10\] sigmoid network"):
        run(CONFIG.replace(eta=0.1), data=DATA, checkpoint=tmp_path / "ck")
    with pytest.raises(ConfigError, match="has done 1 epoch"):
        resume(tmp_path / "ck", epochs=0, data=DATA)


def test_a_diverged_run_returns_its_last_finite_epoch(tmp_path):
    result = run(CONFIG.replace(sizes=(784, 10), activation="relu", cost="log-likelihood", eta=1e6,
                                schedule=None, momentum=0.0), data=DATA, checkpoint=tmp_path / "ck")
    assert result.diverged and not result.interrupted and result.history.epochs == 0
    assert result.stop_reason.startswith("the run diverged in epoch 0: the ")
    assert result.history.run["stop_reason"] == result.stop_reason
    json.dumps(result.history.to_dict(), allow_nan=False)
    assert not ckpt.exists(tmp_path / "ck")   # nothing complete to checkpoint


# -- broken and foreign checkpoints ------------------------------------------------------------
def _good(tmp_path):
    run(CONFIG.replace(epochs=1), data=DATA, checkpoint=tmp_path / "ck")
    return tmp_path / "ck"


def _rewrite(folder, change):
    """Rewrite checkpoint.npz with ``change(arrays)`` applied (arrays by name)."""
    path = folder / ckpt.FILENAME
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _meta(change):
    def edit(arrays):
        meta = json.loads(arrays["checkpoint.json"].tobytes())
        change(meta)
        arrays["checkpoint.json"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    return edit


BROKEN = {
    "missing": (lambda d: d / "nope", r"nope: no such checkpoint folder"),
    "a file": (lambda d: (d / "file").write_text("x") and d / "file",
               r"file is a file, not a checkpoint folder"),
    "empty": (lambda d: (d / "empty").mkdir() or d / "empty", r"empty holds no checkpoint \(checkpoint.npz\)"),
    "truncated": (lambda d: _truncate(_good(d)), r"checkpoint.npz is not a readable checkpoint \(corrupt"),
    "a model": (lambda d: _model_in(d), r"checkpoint.npz is an nndl model file, not a checkpoint"),
    "not json": (lambda d: _edit(d, lambda a: a.__setitem__("checkpoint.json", np.frombuffer(b"{", np.uint8))),
                 r"checkpoint.json is not valid JSON"),
    "other format": (lambda d: _edit(d, _meta(lambda m: m.__setitem__("format", "keras"))),
                     r"checkpoint.npz is not an nndl checkpoint"),
    "newer": (lambda d: _edit(d, _meta(lambda m: m.__setitem__("version", 99))),
              r"written by a newer nndl \(checkpoint version 99\); upgrade nndl"),
    "string version": (lambda d: _edit(d, _meta(lambda m: m.__setitem__("version", "1"))),
                       r"checkpoint version must be an integer, got '1'"),
    "missing array": (lambda d: _edit(d, lambda a: a.pop("state/0")), r"the array 'state/0' it refers to is missing"),
    "bad weights": (lambda d: _edit(d, lambda a: a.__setitem__("layer0/w", np.zeros((3, 3)))),
                    r"cannot resume from .*: parameters: layer 0 'w' should be float64 \(16, 784\), "
                    r"got float64 \(3, 3\)"),
    "nan weights": (lambda d: _edit(d, lambda a: a["layer1/b"].__setitem__(0, np.nan)),
                    r"layer 1 'b' holds values that are not finite"),
    "bad config": (lambda d: _edit(d, _meta(lambda m: m["run"]["config"].__setitem__("eta", -1))),
                   r"holds no valid run configuration: eta must be a number > 0, got -1.0"),
    "bad generator": (lambda d: _edit(d, _meta(lambda m: m["state"].__setitem__("rng", {"bit_generator": "MT19937"}))),
                      r"the shuffling generator: not a PCG64 state"),
    "compressed": (lambda d: _compress(_good(d)), r"is not a checkpoint written by nndl \(compressed member"),
}


def _truncate(folder):
    path = folder / ckpt.FILENAME
    path.write_bytes(path.read_bytes()[:300])
    return folder


def _model_in(tmp_path):
    (tmp_path / "m").mkdir()
    nndl.save(Network.from_sizes([784, 10]), tmp_path / "m" / ckpt.FILENAME)
    return tmp_path / "m"


def _edit(tmp_path, change):
    folder = _good(tmp_path)
    _rewrite(folder, change)
    return folder


def _compress(folder):
    path = folder / ckpt.FILENAME
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez_compressed(path, **arrays)
    return folder


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_or_foreign_checkpoint_is_refused_saying_why(case, tmp_path):
    make, message = BROKEN[case]
    folder = make(tmp_path)
    listing = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises((CheckpointError, ConfigError), match=message):
        resume(folder, data=DATA)
    assert sorted(p.name for p in tmp_path.rglob("*")) == listing   # nothing written or created


def test_an_array_header_claiming_more_than_it_holds_is_refused_before_allocating(tmp_path):
    folder = _good(tmp_path)
    path = folder / ckpt.FILENAME
    raw = path.read_bytes()
    # the first layer's weights claim 10^8 rows (627 GB); the header keeps its length
    small = b"'shape': (16, 784), }      "
    assert raw.count(small) == 2                  # the weights, then their momentum velocity
    path.write_bytes(raw.replace(small, b"'shape': (99999999, 784), }", 1))
    with pytest.raises(CheckpointError, match=r"checkpoint.npz is corrupt \(layer0/w.npy declares more data "
                                              r"than it holds\)"):
        ckpt.read(folder)
