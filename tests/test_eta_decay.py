"""LinearEtaDecay (a learning-rate schedule fixed in advance) and nndl train --eta-final."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import MNIST_DIR, needs_mnist
from nndl import SGD, Network, Trainer, cli
from nndl.callbacks import LinearEtaDecay
from nndl.errors import ConfigError


def _tiny_problem(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((40, 6)).astype(np.float32)
    y = (x[:, 0] > x[:, 1]).astype(np.int64)
    return Network.from_sizes([6, 5, 2], rng=seed), x, y


@pytest.mark.parametrize("fast", [False, True], ids=["numpy", "kernel"])
def test_eta_falls_in_a_straight_line_to_eta_final(fast):
    net, x, y = _tiny_problem()
    trainer = Trainer(net, SGD(0.5), batch_size=8, rng=0, fast=fast,
                      callbacks=[LinearEtaDecay(0.1, epochs=5)])
    history = trainer.fit(x, y, epochs=7)
    # epoch e of 5 trains with 0.5 + (0.1 - 0.5) e / 4; later epochs keep 0.1
    assert history["eta"] == pytest.approx([0.5, 0.4, 0.3, 0.2, 0.1, 0.1, 0.1])


def test_the_decayed_eta_is_the_one_training_uses():
    # Two runs from the same start: one with the schedule, one re-creating it by
    # hand with a new optimizer each epoch, give the same weights.
    net_a, x, y = _tiny_problem()
    Trainer(net_a, SGD(0.5), batch_size=8, rng=3, fast=False,
            callbacks=[LinearEtaDecay(0.2, epochs=3)]).fit(x, y, epochs=3)
    net_b, _, _ = _tiny_problem()
    rng = np.random.default_rng(3)
    for eta in (0.5, 0.35, 0.2):
        Trainer(net_b, SGD(eta), batch_size=8, rng=rng, fast=False).fit(x, y, epochs=1)
    for pa, pb in zip(net_a.get_params(), net_b.get_params()):
        for k in pa:
            np.testing.assert_allclose(pa[k], pb[k], rtol=1e-6)


@pytest.mark.parametrize("bad", [dict(eta_final=0.0, epochs=3), dict(eta_final=-1, epochs=3),
                                 dict(eta_final=float("nan"), epochs=3), dict(eta_final=0.1, epochs=0)])
def test_bad_arguments(bad):
    with pytest.raises(ConfigError):
        LinearEtaDecay(**bad)


def test_cli_refuses_two_schedules(capsys):
    code = cli.main(["train", "--eta-final", "0.1", "--schedule", "2", "--monitor", "validation"])
    err = capsys.readouterr().err
    assert code != 0 and err.startswith("nndl: error:") and "--eta-final" in err


@needs_mnist
def test_cli_eta_final_decays_eta(tmp_path, capsys):
    hist = tmp_path / "h.json"
    code = cli.main(["train", "--data-dir", str(MNIST_DIR), "--train-size", "500", "--epochs", "3",
                     "--eta", "3.0", "--eta-final", "1.0", "--history", str(hist), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert json.loads(hist.read_text())["eta"] == pytest.approx([3.0, 2.0, 1.0])
