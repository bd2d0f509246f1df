"""Initialisers: one registry for every layer with weights.

* every initialiser draws, in every layer type, weights and biases with the
  spread its formula gives for that layer's connection counts (the formulas
  are written out again here, from the book's definitions);
* every initialiser can be chosen for every layer through an architecture
  spec (the command line's path), each layer keeps its book default
  otherwise, and an unknown name is refused naming the valid ones;
* ``network3`` draws like network3.py's own ConvPoolLayer and
  FullyConnectedLayer.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from nndl import ConfigError, Dense, Network, initializers
from nndl.architecture import default_cost, parse_layers
from nndl.book import network3 as book3
from nndl.layers import LAYERS, from_config
from nndl.layers.conv import Conv2D, ConvPool

pytestmark = pytest.mark.usefixtures("strict_fp")   # floating-point warnings are errors

VALID = "valid initializers: default, large, glorot, he, zeros, network3"

# std of the weights from (n_in, n_out, pool area), std of the biases
FORMULAS = {
    "default": (lambda n_in, n_out, p2: 1 / math.sqrt(n_in), 1.0),       # network2
    "large": (lambda n_in, n_out, p2: 1.0, 1.0),                          # network.py, ch. 1
    "glorot": (lambda n_in, n_out, p2: math.sqrt(2 / (n_in + n_out)), 0.0),
    "he": (lambda n_in, n_out, p2: math.sqrt(2 / n_in), 0.0),
    "zeros": (lambda n_in, n_out, p2: 0.0, 0.0),
    "network3": (lambda n_in, n_out, p2: math.sqrt(p2 / n_out), 1.0),     # network3: 1/(n_out / p^2)
}

# (layer, per-example input, n_in, n_out, pool area): n_in inputs per neuron,
# n_out neurons per input; 200,000 or 18,000 weights (sample std within
# ~0.2% / ~0.5%), 1,000 or 200 biases (within ~2.2% / ~5%).
LAYER_CASES = {
    "Dense": (lambda init: Dense(1000, "sigmoid", init), (200,), 200, 1000, 1),
    "Conv2D": (lambda init: Conv2D(200, 3, init=init), (10, 12, 12), 10 * 9, 200 * 9, 1),
    "ConvPool": (lambda init: ConvPool(200, 3, 2, init=init), (10, 14, 14), 10 * 9, 200 * 9, 4),
}


def test_the_table_covers_the_registry():
    assert list(FORMULAS) == list(initializers.INITIALIZERS)
    weighted = {name for name, cls in LAYERS.items() if cls.default_init is not None}
    assert weighted == set(LAYER_CASES)


@pytest.mark.parametrize("layer_type", list(LAYER_CASES))
@pytest.mark.parametrize("name", list(FORMULAS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_initializer_std_matches_formula(name, layer_type, dtype):
    make, input_shape, n_in, n_out, pool_area = LAYER_CASES[layer_type]
    w_std = FORMULAS[name][0](n_in, n_out, pool_area)
    b_std = FORMULAS[name][1]
    layer = make(name)
    layer.build(input_shape, np.random.default_rng(0), np.dtype(dtype))
    w, b = layer.params["w"], layer.params["b"]
    assert w.dtype == np.dtype(dtype) and b.dtype == np.dtype(dtype)
    assert w.size in (200_000, 18_000) and b.shape == (w.shape[0],)
    assert float(np.std(w)) == pytest.approx(w_std, rel=0.02, abs=1e-12)
    assert abs(float(np.mean(w))) <= 0.03 * w_std      # zero mean (standard error <= 0.008 std)
    assert float(np.std(b)) == pytest.approx(b_std, rel=0.2, abs=1e-12)
    assert layer.init.name == name and layer.config()["init"] == name


def test_each_layer_keeps_its_book_default():
    # Dense and Conv2D: network2's N(0, 1/n_in); ConvPool: network3's draws.
    assert (Dense.default_init, Conv2D.default_init, ConvPool.default_init) == ("default", "default", "network3")
    for cls in LAYERS.values():
        if cls.default_init is None:
            assert cls.init is None                  # no weights, no initialiser
    assert Dense(3).init.name == "default" and ConvPool(2, 3).init.name == "network3"
    # the default is the same draw as naming it
    for make, shape in [(lambda **kw: ConvPool(4, 3, 2, **kw), (1, 8, 8)), (lambda **kw: Dense(5, **kw), (7,))]:
        a, b = make(), make(init=type(make()).default_init)
        a.build(shape, np.random.default_rng(1), np.float64)
        b.build(shape, np.random.default_rng(1), np.float64)
        assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)


SPEC = "conv:6:5,pool:2,conv:4:3,dense:20,softmax:10"   # ConvPool, Conv2D, Dense, Dense


@pytest.mark.parametrize("name", [None] + list(initializers.INITIALIZERS))
def test_every_initializer_through_a_spec(name):
    # parse_layers is what `nndl train --layers ... --init NAME` calls
    layers = parse_layers(SPEC, activation="relu", init=name)
    net = Network(layers, default_cost(layers), input_shape=(784,), rng=0, dtype="float32")
    weighted = [layer for layer in net.layers if layer.params]
    assert [type(layer).__name__ for layer in weighted] == ["ConvPool", "Conv2D", "Dense", "Dense"]
    expected = [type(layer).default_init for layer in weighted] if name is None else [name] * 4
    assert [layer.init.name for layer in weighted] == expected
    out = net.forward(np.random.default_rng(0).random((2, 784)))
    assert out.shape == (2, 10) and np.all(np.isfinite(out))


@pytest.mark.parametrize("make", [
    lambda init: Dense(3, init=init),
    lambda init: Conv2D(2, 3, init=init),
    lambda init: ConvPool(2, 3, 2, init=init),
    lambda init: parse_layers(SPEC, init=init),
    lambda init: initializers.get(init),
], ids=["Dense", "Conv2D", "ConvPool", "spec", "get"])
@pytest.mark.parametrize("bad", ["uniform", "book", 3])
def test_unknown_initializer_is_refused_naming_the_valid_ones(make, bad):
    # "book" is refused: it meant network2's default for dense layers and
    # network3's draws for conv layers; the two now have their own names.
    with pytest.raises(ConfigError, match=VALID):
        make(bad)


def test_old_conv_model_configs_with_init_book_still_load():
    layer = from_config({"type": "ConvPool", "filters": 2, "kernel_size": 3, "pool_size": 2,
                         "activation": "sigmoid", "init": "book"})
    assert layer.init.name == "network3"


def _book3_draws(make_layer):
    """A network3.py layer's initial (w, b), drawn from a seeded global np.random."""
    state = np.random.get_state()
    try:
        np.random.seed(0)
        layer = make_layer()
    finally:
        np.random.set_state(state)
    return layer.w, layer.b


@pytest.mark.parametrize("book_layer,engine_layer,input_shape", [
    (lambda: book3.ConvPoolLayer(filter_shape=(200, 10, 3, 3), image_shape=(10, 10, 14, 14), poolsize=(2, 2)),
     lambda: ConvPool(200, 3, 2, init="network3"), (10, 14, 14)),
    (lambda: book3.FullyConnectedLayer(n_in=200, n_out=1000),
     lambda: Dense(1000, init="network3"), (200,)),
], ids=["ConvPoolLayer", "FullyConnectedLayer"])
def test_network3_init_draws_like_network3(book_layer, engine_layer, input_shape):
    w_book, b_book = _book3_draws(book_layer)
    layer = engine_layer()
    layer.build(input_shape, np.random.default_rng(0), np.float64)
    assert float(np.std(layer.params["w"])) == pytest.approx(float(np.std(w_book)), rel=0.03)
    assert float(np.std(layer.params["b"])) == pytest.approx(float(np.std(b_book)), rel=0.25)


def test_initializer_aliases_and_instances():
    assert initializers.get("xavier").name == "glorot"
    assert initializers.get("Normal").name == "large"
    init = initializers.He()
    assert initializers.get(init) is init
    assert isinstance(initializers.get(initializers.Network3), initializers.Network3)
