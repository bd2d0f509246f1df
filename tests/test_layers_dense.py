"""The dense layer, where BP1-BP4 live: finite-difference gradient checks of
every hidden activation and every valid cost/output pair, and a 2-2-1 network
worked out by hand (forward, backward, one SGD step by three paths)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nndl import SGD, Dense, Network, Trainer
from nndl.kernels import dense as dense_kernel

from helpers import HIDDEN_ACTIVATIONS, VALID_PAIRS, assert_params_close, dense_net

pytestmark = pytest.mark.usefixtures("strict_fp")   # floating-point warnings are errors


def cost_of(net: Network, x, y) -> float:
    """The summed cost C = sum_x C_x that ``backward`` differentiates."""
    return net.cost.fn(net.forward(x), y)


def numerical_grads(net: Network, x, y, h: float = 1e-6) -> list[dict[str, np.ndarray]]:
    """Central differences (C(p + h) - C(p - h)) / 2h for every parameter."""
    out = []
    for layer in net.layers:
        g = {}
        for key, p in layer.params.items():
            gk = np.zeros_like(p)
            for idx in np.ndindex(p.shape):
                old = p[idx]
                p[idx] = old + h
                c_plus = cost_of(net, x, y)
                p[idx] = old - h
                c_minus = cost_of(net, x, y)
                p[idx] = old
                gk[idx] = (c_plus - c_minus) / (2 * h)
            g[key] = gk
        out.append(g)
    return out


def analytic_grads(net: Network, x, y) -> list[dict[str, np.ndarray]]:
    net.forward(x, train=True)
    net.backward(y)
    return [{k: v.copy() for k, v in layer.grads.items()} for layer in net.layers]


def relu_safe(net: Network, x, margin: float = 1e-3) -> bool:
    """True when every ReLU's z is at least ``margin`` from the kink and some
    are positive, so that finite differences do not straddle it."""
    net.forward(x)
    for layer in net.layers:
        if layer.activation.name == "relu":
            if np.min(np.abs(layer.z)) < margin or not np.any(layer.z > 0):
                return False
    return True


@pytest.mark.parametrize("sizes", [[5, 4, 3], [5, 4, 4, 3]], ids=["5-4-3", "5-4-4-3"])
@pytest.mark.parametrize("cost,output", VALID_PAIRS, ids=[f"{c}+{o}" for c, o in VALID_PAIRS])
@pytest.mark.parametrize("hidden", HIDDEN_ACTIVATIONS)
def test_backprop_matches_finite_differences(hidden, cost, output, sizes):
    # float64, N = 3 examples, one of each class; relu nets are drawn until
    # no z lies within 1e-3 of the kink (h = 1e-6 then never crosses it).
    x = y = net = None
    for seed in range(200):
        rng = np.random.default_rng(seed)
        net = dense_net(sizes, hidden, output, cost, rng=rng)
        x = rng.standard_normal((3, sizes[0]))
        y = np.array([0, 1, 2])
        if relu_safe(net, x):
            break
    else:  # pragma: no cover
        pytest.fail("no seed kept the ReLUs away from 0")
    analytic = analytic_grads(net, x, y)
    numeric = numerical_grads(net, x, y)
    for layer, ga, gn in zip(net.layers, analytic, numeric):
        assert ga.keys() == layer.params.keys()  # the layer contract: grads share params' keys
        for k in ga:
            assert ga[k].shape == layer.params[k].shape
            np.testing.assert_allclose(ga[k], gn[k], rtol=1e-6, atol=1e-8, err_msg=k)
    assert any(np.any(g["w"] != 0) for g in analytic)


LN3 = math.log(3.0)


def hand_network() -> Network:
    # Sigmoid everywhere, quadratic cost. Book numbering: layer 2 is the
    # hidden layer, layer 3 the output.
    #   w2 = [[1, -1], [0.5, 0.5]],  b2 = [ln 3, -1]
    #   w3 = [[1, -1]],              b3 = [-0.25]
    net = Network([Dense(2, "sigmoid"), Dense(1, "sigmoid")], "quadratic", input_shape=(2,),
                  rng=0, dtype="float64")
    net.set_params([{"w": np.array([[1.0, -1.0], [0.5, 0.5]]), "b": np.array([LN3, -1.0])},
                    {"w": np.array([[1.0, -1.0]]), "b": np.array([-0.25])}])
    return net


# one example x = (1, 1) with label 0 of the single output neuron: y = (1)
HAND_X, HAND_Y = np.array([[1.0, 1.0]]), np.array([0])


# feedforward:
#   z2 = w2 x + b2 = (1 - 1 + ln 3, 0.5 + 0.5 - 1) = (ln 3, 0)
#   a2 = sigma(z2) = (1 / (1 + 1/3), 1/2) = (0.75, 0.5)
#   z3 = w3 a2 + b3 = 0.75 - 0.5 - 0.25 = 0
#   a3 = sigma(0) = 0.5;   C = 1/2 (0.5 - 1)^2 = 0.125
# backward:
#   BP1: delta3 = (a3 - y) sigma'(z3) = (0.5 - 1)(0.5)(1 - 0.5) = -0.125
#   BP2: delta2 = (w3^T delta3) * sigma'(z2)
#             = (1 * -0.125 * 0.75 * 0.25, -1 * -0.125 * 0.5 * 0.5) = (-0.0234375, 0.03125)
#   BP3: dC/db3 = delta3 = -0.125;  dC/db2 = delta2
#   BP4: dC/dw3 = delta3 a2^T = -0.125 * (0.75, 0.5) = [[-0.09375, -0.0625]]
#        dC/dw2 = delta2 x^T = [[-0.0234375, -0.0234375], [0.03125, 0.03125]]
# one SGD step, eta = 2, m = 1: p <- p - 2 dC/dp
#   w3' = [[1 + 0.1875, -1 + 0.125]] = [[1.1875, -0.875]];  b3' = -0.25 + 0.25 = 0
#   w2' = [[1 + 0.046875, -1 + 0.046875], [0.5 - 0.0625, 0.5 - 0.0625]]
#       = [[1.046875, -0.953125], [0.4375, 0.4375]]
#   b2' = (ln 3 + 0.046875, -1 - 0.0625) = (ln 3 + 0.046875, -1.0625)
HAND_UPDATED = [{"w": np.array([[1.046875, -0.953125], [0.4375, 0.4375]]),
                 "b": np.array([LN3 + 0.046875, -1.0625])},
                {"w": np.array([[1.1875, -0.875]]), "b": np.array([0.0])}]


def test_hand_worked_forward_and_backward():
    net = hand_network()
    out = net.forward(HAND_X, train=True)
    hidden, output = net.layers
    np.testing.assert_allclose(hidden.z, [[LN3, 0.0]], rtol=0, atol=1e-15)
    np.testing.assert_allclose(hidden.a, [[0.75, 0.5]], rtol=0, atol=1e-15)
    np.testing.assert_allclose(output.z, [[0.0]], rtol=0, atol=1e-15)
    np.testing.assert_allclose(out, [[0.5]], rtol=0, atol=1e-15)
    assert net.cost.fn(out, HAND_Y) == pytest.approx(0.125, abs=1e-15)
    delta3 = net.cost.delta(output.z, output.a, HAND_Y, output.activation)          # BP1
    np.testing.assert_allclose(delta3, [[-0.125]], rtol=0, atol=1e-15)
    net.backward(HAND_Y)
    np.testing.assert_allclose(output.grads["b"], [-0.125], rtol=0, atol=1e-15)      # BP3
    np.testing.assert_allclose(output.grads["w"], [[-0.09375, -0.0625]], rtol=0, atol=1e-15)  # BP4
    # BP2 shows in the hidden layer's bias gradient, which is delta2 (BP3)
    np.testing.assert_allclose(hidden.grads["b"], [-0.0234375, 0.03125], rtol=0, atol=1e-15)
    np.testing.assert_allclose(hidden.grads["w"], [[-0.0234375, -0.0234375], [0.03125, 0.03125]],
                               rtol=0, atol=1e-15)


@pytest.mark.parametrize("path", ["step", "numpy-trainer", "kernel"])
def test_hand_worked_update(path):
    net = hand_network()
    if path == "step":
        net.forward(HAND_X, train=True)
        net.backward(HAND_Y)
        SGD(2.0).step(net.layers, 1, 1)
    else:
        fast = path == "kernel"
        if fast and not dense_kernel.AVAILABLE:
            pytest.skip("numba is not installed")
        Trainer(net, SGD(2.0), batch_size=1, rng=0, fast=fast).fit(HAND_X, HAND_Y, epochs=1)
    assert_params_close(net.get_params(), HAND_UPDATED, atol=1e-14)
