"""Sizes are bounded before allocating: nndl.memory works out parameter
shapes without building, and absurd networks and mini-batches are refused
with the figures."""

from __future__ import annotations

import re
import time
import tracemalloc

import numpy as np
import pytest

import nndl
from nndl import ConfigError, Network, cli, memory
from nndl.architecture import parse_layers
from nndl.layers import Dense, Flatten, Reshape
from nndl.layers.conv import Conv2D, MaxPool2D

SPECS = [
    "dense:30,sigmoid:10",
    "conv:20:5,pool:2,dense:100,softmax:10",
    "conv:20:5,pool:2,conv:40:5,pool:2,dense:100,softmax:10",
    "conv:8:3,conv:4:3,pool:2,dense:20,dropout:0.5,dense:20,softmax:10",
    "conv:6:5,pool:4,dropout:0.2,softmax:10",
]


@pytest.mark.parametrize("spec", SPECS)
def test_param_shapes_match_what_build_makes(spec):
    layers = parse_layers(spec, activation="relu")
    predicted = memory.param_shapes(layers, (784,))
    net = Network(layers, "log-likelihood" if spec.endswith("softmax:10") else "quadratic", rng=0)
    assert predicted == [{k: v.shape for k, v in layer.params.items()} for layer in net.layers]
    assert memory.parameter_count(net.layers, net.input_shape) == net.n_params


def test_param_shapes_of_hand_built_stacks():
    layers = [Reshape((2, 8, 8)), Conv2D(3, 3), MaxPool2D(2), Flatten(), Dense(4)]
    assert memory.param_shapes(layers, (128,)) == [{}, {"w": (3, 2, 3, 3), "b": (3,)}, {}, {}, {"w": (4, 27), "b": (4,)}]
    assert memory.param_shapes([Dense(4), Conv2D(3, 3)], (10,)) is None   # build will refuse this


def test_training_memory_worked_by_hand():
    net = Network.from_sizes([4, 3, 2], rng=0, dtype="float32")
    # 23 parameters (4*3 + 3 + 3*2 + 2); training keeps them, their gradients and the
    # trainer's copy: 3 * 23 = 69 numbers (+23 velocities with momentum).
    # Per example, training: the input (4), then per layer z, a, delta and the
    # gradient for the layer below: 3*3 + 4 = 13 and 3*2 + 3 = 9; 26 in all.
    # Per example, inference: 4 + 2*3 + 2*2 = 14; evaluation runs chunks of 1000.
    # Batch 10: max(10 * 26, 1000 * 14) = 14000. Batch 10000: 260000.
    assert memory.estimate_training_memory(net, 10) == 4 * (69 + 14_000)
    assert memory.estimate_training_memory(net, 10, momentum=True) == 4 * (92 + 14_000)
    assert memory.estimate_training_memory(net, 10_000) == 4 * (69 + 260_000)
    # the same from unbuilt layers
    layers = [Dense(3), Dense(2)]
    assert memory.estimate_training_memory(layers, 10_000, input_shape=(4,), dtype="float32") == 4 * (69 + 260_000)


def test_format_bytes():
    assert [memory.format_bytes(n) for n in (0, 999, 1000, 15_300, 318e9, 1.9e12, 5e18)] == \
        ["0 B", "999 B", "1.0 kB", "15 kB", "318 GB", "1.9 TB", "5000 PB"]


def test_available_memory_is_plausible():
    avail = memory.available_memory()
    assert avail is None or 10 * 2**20 < avail < 2**50


def _timed_peak(fn):
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        fn()
    finally:
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return elapsed, peak


@pytest.mark.parametrize("make", [
    lambda: Network.from_sizes([784, 100_000_000, 10]),
    lambda: Network(parse_layers("dense:100000000,softmax:10"), "log-likelihood"),
    lambda: Network(parse_layers("conv:10000000:28,softmax:10"), "log-likelihood", dtype="float64"),
])
def test_absurd_networks_are_refused_before_allocating(make):
    with pytest.raises(ConfigError) as e:
        elapsed, peak = _timed_peak(make)
    msg = str(e.value)
    assert re.match(r"this network needs [\d.]+ [GT]B for its [\d,]+ weights and biases", msg), msg
    assert "of memory is available; use smaller layers" in msg
    elapsed, peak = _timed_peak(lambda: pytest.raises(ConfigError, make))
    assert elapsed < 1.0 and peak < 2**20


def test_the_refusal_follows_the_available_memory(monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda: 5_000_000)
    # 784*1000 + 1000 + 1000*10 + 10 = 795,010 float32 parameters: 3.2 MB, and
    # 2 * 4 * 795,010 + 16 * 784,000 = 18.9 MB to build with gradients and draws.
    with pytest.raises(ConfigError, match=r"^this network needs 3.2 MB for its 795,010 weights and biases as "
                                          r"float32 \(about 19 MB to build them, with their gradients\), but "
                                          r"only 5.0 MB of memory is available; use smaller layers$"):
        Network.from_sizes([784, 1000, 10])
    Network.from_sizes([784, 30, 10])                  # 0.3 MB: fits
    monkeypatch.setattr(memory, "available_memory", lambda: None)
    Network.from_sizes([784, 1000, 10])                # unknown: no refusal


def test_a_huge_mini_batch_is_refused():
    net = Network.from_sizes([784, 30, 10], rng=0)
    assert memory.check_training_memory(net, 10) == memory.estimate_training_memory(net, 10)
    with pytest.raises(ConfigError, match=r"^training with mini-batches of 1,000,000,000 examples needs about "
                                          r"[\d.]+ TB of memory, but only .* is available; use a smaller mini-batch size"):
        memory.check_training_memory(net, 1_000_000_000)


@pytest.mark.parametrize("argv", [
    ["--sizes", "784", "100000000", "10"],
    ["--layers", "dense:100000000,softmax:10"],
])
def test_cli_refuses_absurd_sizes_in_one_line(tmp_path, capsys, argv):
    save = tmp_path / "net.npz"
    save.write_bytes(b"a good model")
    t0 = time.perf_counter()
    code = cli.main(["train", *argv, "--data-dir", str(tmp_path), "--save", str(save), "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 1 and time.perf_counter() - t0 < 2
    assert err.count("\n") == 1 and err.startswith("nndl: error: this network needs 318 GB for its "
                                                   "79,500,000,010 weights and biases as float32")
    assert save.read_bytes() == b"a good model"
