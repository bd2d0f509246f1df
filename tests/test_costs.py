"""Costs: BP1 equals dC/dz, values by hand, finite at saturated outputs, and
the cost/output pairings refused when the network is built."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nndl import ConfigError, Dense, Network, NNDLError, activations, costs

from helpers import VALID_PAIRS

pytestmark = pytest.mark.usefixtures("strict_fp")   # floating-point warnings are errors


@pytest.mark.parametrize("cost,output", VALID_PAIRS, ids=[f"{c}+{o}" for c, o in VALID_PAIRS])
def test_cost_delta_is_dC_dz(cost, output):
    # BP1 on its own: delta^L = dC/dz^L, for C = cost.fn(sigma(z), y) summed over N.
    rng = np.random.default_rng(3)
    z = rng.standard_normal((4, 3))
    z[np.abs(z) < 1e-2] = 0.5  # keep relu off its kink
    y = np.array([0, 1, 2, 1])
    c, act = costs.get(cost), activations.get(output)
    delta = c.delta(z, act.fn(z), y, act)
    h = 1e-6
    numeric = np.zeros_like(z)
    for idx in np.ndindex(z.shape):
        zp, zm = z.copy(), z.copy()
        zp[idx] += h
        zm[idx] -= h
        numeric[idx] = (c.fn(act.fn(zp), y) - c.fn(act.fn(zm), y)) / (2 * h)
    np.testing.assert_allclose(delta, numeric, rtol=1e-6, atol=1e-9)


def test_cost_values_by_hand():
    a = np.array([[0.8, 0.2], [0.4, 0.6]])
    y = np.array([0, 1])        # one-hot: (1, 0) and (0, 1)
    # quadratic: 1/2 [(0.8-1)^2 + 0.2^2 + 0.4^2 + (0.6-1)^2] = 1/2 (0.04+0.04+0.16+0.16) = 0.2
    assert costs.get("quadratic").fn(a, y) == pytest.approx(0.2, rel=1e-12)
    # cross-entropy: -[ln 0.8 + ln(1-0.2)] - [ln(1-0.4) + ln 0.6] = -2 ln 0.8 - 2 ln 0.6
    assert costs.get("cross-entropy").fn(a, y) == pytest.approx(-2 * math.log(0.8) - 2 * math.log(0.6),
                                                                 rel=1e-12)
    # log-likelihood: -ln a_y = -ln 0.8 - ln 0.6
    assert costs.get("log-likelihood").fn(a, y) == pytest.approx(-math.log(0.8) - math.log(0.6), rel=1e-12)
    # and the fused deltas are a - y
    for name, act in (("cross-entropy", "sigmoid"), ("log-likelihood", "softmax")):
        np.testing.assert_allclose(costs.get(name).delta(None, a, y, activations.get(act)),
                                   [[-0.2, 0.2], [0.4, -0.4]], atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_costs_finite_at_saturated_outputs(dtype):
    # a exactly 0 and 1, wrong way round: ln 0 would be -inf without the clipping.
    a = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=dtype)
    y = np.array([0, 1])
    for name in ("cross-entropy", "log-likelihood", "quadratic"):
        c = costs.get(name).fn(a, y)
        assert math.isfinite(c) and c > 0, name
    # a exactly right: cost 0 (up to the clipping)
    assert costs.get("cross-entropy").fn(a[:, ::-1].copy(), y) < 1e-5
    assert costs.get("log-likelihood").fn(a[:, ::-1].copy(), y) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cost", ["cross-entropy", "log-likelihood"])
def test_saturated_network_gives_finite_cost_and_gradients(cost, dtype):
    # An output layer driven to z = +-(large): sigmoid/softmax outputs of exactly 0 and 1.
    net = Network.from_sizes([2, 3], cost=cost, rng=0, dtype=dtype)
    big = 60.0 if cost == "cross-entropy" else 1000.0
    net.set_params([{"w": np.array([[big, 0.0], [-big, 0.0], [0.0, 0.0]]), "b": np.zeros(3)}])
    x, y = np.array([[1.0, 0.0]]), np.array([1])   # label 1, but neuron 0 is saturated on
    # softmax of (1000, -1000, 0) underflows to exact zeros: that is correct, not an error
    with np.errstate(under="ignore"):
        out = net.forward(x, train=True)
        c = net.cost.fn(out, y)
        net.backward(y)
    assert math.isfinite(c) and c > 10
    for layer in net.layers:
        for g in layer.grads.values():
            assert np.all(np.isfinite(g))


INVALID_PAIRS = [("cross-entropy", "tanh", "sigmoid"), ("cross-entropy", "relu", "sigmoid"),
                 ("log-likelihood", "sigmoid", "softmax"), ("quadratic", "softmax", "sigmoid, tanh, relu, linear")]


@pytest.mark.parametrize("cost,output,allowed", INVALID_PAIRS, ids=[f"{c}+{o}" for c, o, _ in INVALID_PAIRS])
def test_invalid_cost_activation_pairs_raise_at_build(cost, output, allowed):
    with pytest.raises(ConfigError, match=f"allowed output activations: {allowed}"):
        Network([Dense(4, "sigmoid"), Dense(3, output)], cost, input_shape=(5,), rng=0)
    with pytest.raises(ConfigError):
        Network.from_sizes([5, 4, 3], output_activation=output, cost=cost, rng=0)
    assert issubclass(ConfigError, NNDLError)
