"""The network: a stack of layers and a cost, checked when it is built, and
the layer contract it relies on (declared on ``nndl.layers.base.Layer``)."""

from __future__ import annotations

import numpy as np
import pytest

from nndl import SGD, ConfigError, Dense, Network, NNDLError
from nndl.activations import Activation
from nndl.architecture import parse_layers
from nndl.layers import LAYERS, Layer
from nndl.layers.conv import Conv2D, ConvPool, MaxPool2D
from nndl.layers.dropout import Dropout
from nndl.layers.reshape import Flatten, Reshape

pytestmark = pytest.mark.usefixtures("strict_fp")   # floating-point warnings are errors


def test_softmax_in_a_hidden_layer_raises():
    with pytest.raises(ConfigError, match="softmax is only allowed in the output layer"):
        Network([Dense(4, "softmax"), Dense(3, "softmax")], "log-likelihood", input_shape=(5,), rng=0)
    with pytest.raises(ConfigError, match="only allowed in the output layer"):
        Network.from_sizes([5, 4, 3], activation="softmax", cost="log-likelihood", rng=0)


def test_config_errors_are_value_errors_and_nndl_errors():
    with pytest.raises(ValueError):
        SGD(0)
    with pytest.raises(NNDLError):
        Dense(0)


# one of each layer type, with the per-example input it is built for
EVERY_LAYER = {
    "Dense": (lambda: Dense(4, "tanh"), (6,)),
    "Conv2D": (lambda: Conv2D(3, 3, "relu"), (2, 6, 6)),
    "ConvPool": (lambda: ConvPool(3, 3, 2, "sigmoid"), (2, 6, 6)),
    "MaxPool2D": (lambda: MaxPool2D(2), (2, 6, 6)),
    "Dropout": (lambda: Dropout(0.5), (2, 6, 6)),
    "Flatten": (lambda: Flatten(), (2, 6, 6)),
    "Reshape": (lambda: Reshape((-1,)), (2, 6, 6)),
}


def test_every_registered_layer_is_checked():
    assert set(EVERY_LAYER) == set(LAYERS)


@pytest.mark.parametrize("name", list(EVERY_LAYER))
def test_every_layer_follows_the_declared_contract(name):
    make, input_shape = EVERY_LAYER[name]
    layer = make()
    assert isinstance(layer, Layer) and type(layer).__name__ == name
    # declared with defaults before build
    assert layer.activation is None or isinstance(layer.activation, Activation)
    assert layer.z is None and layer.a is None
    assert layer.input_grad is True and layer.spec is None
    assert isinstance(layer.regularized, tuple)
    assert (layer.init is None) == (type(layer).default_init is None)
    rng = np.random.default_rng(0)
    layer.build(input_shape, rng, np.float64)
    assert set(layer.regularized) <= set(layer.params) and set(layer.grads) == set(layer.params)
    x = rng.standard_normal((3, *input_shape))
    out = layer.forward(x, train=True)
    delta = np.ones_like(out)
    if layer.activation is None:
        with pytest.raises(ConfigError, match="has no activation"):
            layer.backward_delta(delta)
        return
    assert layer.z.shape == out.shape and layer.a is out
    dx = layer.backward_delta(delta)
    assert dx.shape == x.shape
    grads = {k: g.copy() for k, g in layer.grads.items()}
    layer.input_grad = False          # what the network sets on its first layer with parameters
    assert layer.backward_delta(delta) is None
    for k in grads:                   # the parameter gradients are the same without dC/dx
        np.testing.assert_array_equal(layer.grads[k], grads[k])


def test_output_layer_must_have_an_activation():
    with pytest.raises(ConfigError, match="output layer must have an activation"):
        Network([Dense(4), Dropout(0.5)], "quadratic", input_shape=(5,), rng=0)


def test_first_layer_with_parameters_skips_its_input_gradient():
    net = Network(parse_layers("conv:2:3,pool:2,dense:5,softmax:3"), "log-likelihood",
                  input_shape=(784,), rng=0)
    assert [layer.input_grad for layer in net.layers] == [True, False, True, True, True]  # Reshape, ConvPool, ...
    net = Network([Dense(4), Dense(3)], "quadratic", input_shape=(5,), rng=0)
    assert [layer.input_grad for layer in net.layers] == [False, True]


def test_build_errors_name_the_spec_token():
    layers = parse_layers("conv:4:5,pool:2,dense:10,softmax:10", image_shape=(1, 9, 9))
    assert [layer.spec for layer in layers] == [None, "conv:4:5,pool:2", None, "dense:10", "softmax:10"]
    with pytest.raises(ConfigError, match=r"layer spec 'conv:4:5,pool:2': .*not divisible by pool size 2"):
        Network(layers, "log-likelihood", input_shape=(81,), rng=0)
    with pytest.raises(ConfigError, match=r"layer 0 \(Conv2D\)"):   # no spec: named by position
        Network([Conv2D(2, 9), Flatten(), Dense(3)], "quadratic", input_shape=(1, 8, 8), rng=0)
