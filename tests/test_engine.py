"""Tests of the dense engine, in layers (see the guide, "Tests in layers").

1. finite-difference gradient checks: every hidden activation, every valid
   cost/output pair, the costs' BP1 and the regularisers' gradients;
2. the vectorised mini-batch step equals a per-example oracle
   (``tests/reference.py``, the book's algorithm written out again);
3. the compiled kernel (``fast=True``) equals the NumPy path on real MNIST;
4. a 2-2-1 network worked out by hand;
5. seeds: same seed, same run; different seed, different run;
6. costs and configuration errors;
7. initialisers;
8. callbacks, history, Ctrl-C;
9. save / load, malformed model files, atomic saving;
10. accuracy on real MNIST subsets (``-m mnist``).

Floating-point warnings are errors in every test (``np.errstate(all="raise")``)
except where a comment says why underflow is allowed.
"""

from __future__ import annotations

import json
import math
import os
from types import SimpleNamespace

import numpy as np
import pytest

import nndl
import nndl.fileio
from nndl import (L1, L2, SGD, ConfigError, Dense, History, ModelFileError, NNDLError, Network,
                  Trainer, activations, costs, initializers)
from nndl.callbacks import Callback, EarlyStopping, Evaluation, EtaSchedule
from nndl.kernels import dense as dense_kernel

from reference import BookNetwork, ReferenceNetwork, as_book_data, batches

pytestmark = pytest.mark.usefixtures("strict_fp")


# --------------------------------------------------------------------------
# helpers

def dense_net(sizes, hidden="sigmoid", output="sigmoid", cost="quadratic", *, init="default",
              rng=0, dtype="float64") -> Network:
    layers = [Dense(n, hidden, init) for n in sizes[1:-1]] + [Dense(sizes[-1], output, init)]
    return Network(layers, cost, input_shape=(sizes[0],), rng=rng, dtype=dtype)


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


def sparse_inputs(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """MNIST-like inputs: values in [0, 1), about half of them exactly zero."""
    x = rng.random((n, d))
    x[rng.random((n, d)) < 0.5] = 0.0
    return x


def assert_params_close(a, b, *, rtol=0.0, atol=0.0, scaled=False):
    """Compare two ``get_params()`` lists; ``scaled`` multiplies atol by max|p|."""
    assert len(a) == len(b)
    for i, (pa, pb) in enumerate(zip(a, b)):
        assert pa.keys() == pb.keys()
        for k in pa:
            tol = atol * max(1.0, float(np.max(np.abs(pb[k])))) if scaled else atol
            np.testing.assert_allclose(pa[k], pb[k], rtol=rtol, atol=tol, err_msg=f"layer {i} {k}")


def params_of_reference(ref: ReferenceNetwork):
    return [{"w": w, "b": b.reshape(-1)} for w, b in zip(ref.weights, ref.biases)]


def reference_for(net: Network, *, lmbda=0.0, l1=0.0, momentum=0.0) -> ReferenceNetwork:
    p = net.get_params()
    return ReferenceNetwork([q["w"] for q in p], [q["b"] for q in p],
                            [layer.activation.name for layer in net.layers], net.cost.name,
                            lmbda=lmbda, l1=l1, momentum=momentum)


# ==========================================================================
# 1. finite-difference gradient checks

HIDDEN_ACTIVATIONS = ["sigmoid", "tanh", "relu", "linear"]
VALID_PAIRS = [("quadratic", "sigmoid"), ("quadratic", "tanh"), ("quadratic", "linear"),
               ("quadratic", "relu"), ("cross-entropy", "sigmoid"), ("log-likelihood", "softmax")]


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


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_activations_at_known_points_and_extremes(dtype):
    z = np.array([-1000.0, -50.0, -math.log(3.0), 0.0, math.log(3.0), 50.0, 1000.0], dtype=dtype)
    # exp of a very negative number underflows to 0, which is the right
    # answer; overflow, 0/0 and divide-by-zero still raise.
    with np.errstate(under="ignore"):
        s = activations.sigmoid(z)
        sm = activations.softmax(np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]], dtype=dtype))
    assert s.dtype == dtype and sm.dtype == dtype
    np.testing.assert_allclose(s, [0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0], atol=1e-6 if dtype == np.float32 else 1e-15)
    assert s[0] == 0.0 and s[-1] == 1.0 and np.all(np.diff(s) >= 0)
    np.testing.assert_allclose(sm[0], [1.0, 0.0, 0.0])
    e = np.exp([1.0, 2.0, 3.0])
    np.testing.assert_allclose(sm[1], e / e.sum(), rtol=1e-6)
    np.testing.assert_allclose(sm.sum(axis=1), 1.0, rtol=1e-6)
    # derivatives from (z, a), as the layers call them
    zz = np.array([-2.0, -0.5, 0.5, 2.0], dtype=dtype)
    for name, prime in [("sigmoid", lambda z: activations.sigmoid(z) * (1 - activations.sigmoid(z))),
                        ("tanh", lambda z: 1 / np.cosh(z) ** 2),
                        ("relu", lambda z: (z > 0).astype(z.dtype)),
                        ("linear", lambda z: np.ones_like(z))]:
        act = activations.get(name)
        np.testing.assert_allclose(act.prime(zz, act.fn(zz)), prime(zz), rtol=1e-6, err_msg=name)
    assert activations.sigmoid_prime(np.array(0.0)) == 0.25
    with pytest.raises(ConfigError, match="log-likelihood"):
        activations.get("softmax").prime(zz, zz)


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


@pytest.mark.parametrize("reg", [L2(0.7), L1(0.7)], ids=["L2", "L1"])
def test_regularizer_grad_matches_finite_differences_of_penalty(reg):
    rng = np.random.default_rng(5)
    weights = [rng.standard_normal((4, 3)), rng.standard_normal((2, 4))]
    for w in weights:  # L1: stay away from the kink of |w| at 0
        w[np.abs(w) < 1e-2] = 0.3
    n, h = 50, 1e-6
    for w in weights:
        numeric = np.zeros_like(w)
        for idx in np.ndindex(w.shape):
            old = w[idx]
            w[idx] = old + h
            plus = reg.penalty(weights, n)
            w[idx] = old - h
            minus = reg.penalty(weights, n)
            w[idx] = old
            numeric[idx] = (plus - minus) / (2 * h)
        np.testing.assert_allclose(reg.grad(w, n), numeric, rtol=1e-6, atol=1e-10)


def test_penalties_follow_the_books_formulas():
    w = [np.array([[1.0, -2.0]]), np.array([[3.0]])]
    assert L2(0.5).penalty(w, 10) == pytest.approx(0.5 * 0.5 / 10 * (1 + 4 + 9))   # eq. 85
    assert L1(0.5).penalty(w, 10) == pytest.approx(0.5 / 10 * (1 + 2 + 3))         # eq. 95
    net = dense_net([2, 1], cost="quadratic")
    net.set_params([{"w": np.array([[1.0, -2.0]]), "b": np.array([0.0])}])
    x, y = np.zeros((4, 2)), np.zeros(4, dtype=int)
    # total_cost = mean of C_x + (lmbda / 2n) sum w^2 with n = len(data) by default
    base = 0.5 * (0.5 - 1.0) ** 2
    assert net.total_cost(x, y, [L2(2.0)]) == pytest.approx(base + 0.5 * 2.0 / 4 * 5)
    assert net.total_cost(x, y, [L2(2.0)], n=100) == pytest.approx(base + 0.5 * 2.0 / 100 * 5)


# ==========================================================================
# 2. the vectorised mini-batch step equals the per-example oracle

ORACLE_CASES = {
    "quadratic+sigmoid": dict(hidden="sigmoid", output="sigmoid", cost="quadratic", eta=3.0),
    "cross-entropy+sigmoid+L2": dict(hidden="sigmoid", output="sigmoid", cost="cross-entropy",
                                     eta=0.5, lmbda=5.0),
    "quadratic+sigmoid+momentum": dict(hidden="sigmoid", output="sigmoid", cost="quadratic",
                                       eta=1.0, momentum=0.9),
    "cross-entropy+L2+momentum": dict(hidden="sigmoid", output="sigmoid", cost="cross-entropy",
                                      eta=0.3, lmbda=5.0, momentum=0.5),
    "relu+softmax+log-likelihood+L1+momentum": dict(hidden="relu", output="softmax",
                                                    cost="log-likelihood", eta=0.1, l1=2.0,
                                                    momentum=0.9),
    "tanh+linear+quadratic+L1+L2": dict(hidden="tanh", output="linear", cost="quadratic",
                                        eta=0.05, lmbda=1.0, l1=0.5),
}


def _oracle_setup(case, sizes=(12, 7, 5, 4), n=40, seed=11):
    rng = np.random.default_rng(seed)
    net = dense_net(list(sizes), case["hidden"], case["output"], case["cost"], rng=rng)
    x = sparse_inputs(rng, n, sizes[0])
    y = rng.integers(0, sizes[-1], n)
    regs = ([L2(case["lmbda"])] if case.get("lmbda") else []) + ([L1(case["l1"])] if case.get("l1") else [])
    opt = SGD(case["eta"], momentum=case.get("momentum", 0.0), regularizers=regs)
    ref = reference_for(net, lmbda=case.get("lmbda", 0.0), l1=case.get("l1", 0.0),
                        momentum=case.get("momentum", 0.0))
    return net, opt, ref, x, y


@pytest.mark.parametrize("name", list(ORACLE_CASES))
def test_step_equals_per_example_oracle(name):
    # forward / backward / SGD.step on mini-batches of 8, 8, 8, 8, 8 and then
    # 7, 7, 7, 7, 7, 5: after each, the summed gradients and the new
    # parameters equal the book's per-example loop.
    case = ORACLE_CASES[name]
    net, opt, ref, x, y = _oracle_setup(case)
    initial = net.get_params()
    n = len(x)
    data = as_book_data(x, y, net.output_shape[0])
    order = np.random.default_rng(0).permutation(n)
    for m in (8, 7):
        for start in range(0, n, m):
            idx = order[start:start + m]
            net.forward(x[idx], train=True)
            net.backward(y[idx])
            nabla_b, nabla_w = ref.gradients([data[i] for i in idx])
            for layer, nb, nw in zip(net.layers, nabla_b, nabla_w):
                np.testing.assert_allclose(layer.grads["b"], nb.reshape(-1), rtol=1e-10, atol=1e-13)
                np.testing.assert_allclose(layer.grads["w"], nw, rtol=1e-10, atol=1e-13)
            opt.step(net.layers, len(idx), n)
            ref.update_mini_batch([data[i] for i in idx], case["eta"], n)
            assert_params_close(net.get_params(), params_of_reference(ref), rtol=1e-10, atol=1e-13)
    # the run moved the parameters: the comparison was not vacuous
    assert not np.allclose(net.layers[0].params["w"], initial[0]["w"])


@pytest.mark.parametrize("name", ["quadratic+sigmoid", "cross-entropy+sigmoid+L2",
                                  "cross-entropy+L2+momentum"])
def test_numpy_trainer_equals_oracle_over_epochs(name):
    # Trainer(fast=False).fit, 2 epochs, batch 7 (n = 40: the last batch has 5).
    # The trainer shuffles with rng.permutation(n) once per epoch; the oracle
    # uses the same orders (the book's random.shuffle, made reproducible).
    case = ORACLE_CASES[name]
    net, opt, ref, x, y = _oracle_setup(case)
    data = as_book_data(x, y, net.output_shape[0])
    trainer = Trainer(net, opt, batch_size=7, rng=123, fast=False)
    trainer.fit(x, y, epochs=2)
    orders = np.random.default_rng(123)
    for _ in range(2):
        for mb in batches(data, orders.permutation(len(x)), 7):
            ref.update_mini_batch(mb, case["eta"], len(x))
    assert_params_close(net.get_params(), params_of_reference(ref), rtol=1e-10, atol=1e-13)


def test_reference_network_is_the_books_network_py():
    # The generalised oracle reduces to network.py for sigmoid + quadratic.
    rng = np.random.default_rng(2)
    net = dense_net([6, 5, 3], rng=rng)
    x, y = sparse_inputs(rng, 20, 6), rng.integers(0, 3, 20)
    data = as_book_data(x, y, 3)
    ref = reference_for(net)
    p = net.get_params()
    book = BookNetwork([q["w"] for q in p], [q["b"] for q in p])
    mbs = batches(data, rng.permutation(20), 6)
    book.SGD_epoch(mbs, 3.0)
    for mb in mbs:
        ref.update_mini_batch(mb, 3.0, 20)
    for a, b in zip(book.weights + book.biases, ref.weights + ref.biases):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


# ==========================================================================
# 3. the compiled kernel equals the NumPy path (real MNIST)

KERNEL_CASES = {
    "784-30-10 sigmoid quadratic": dict(sizes=[784, 30, 10], hidden="sigmoid", output="sigmoid",
                                        cost="quadratic", eta=3.0, init="large"),
    "784-20-10 tanh/sigmoid cross-entropy L2+L1": dict(sizes=[784, 20, 10], hidden="tanh",
                                                       output="sigmoid", cost="cross-entropy",
                                                       eta=0.5, regs=(L2(5.0), L1(1.0)),
                                                       # float32: see KERNEL_TOL
                                                       f32_atol=5e-3),
    "784-30-10 relu/softmax log-likelihood momentum": dict(sizes=[784, 30, 10], hidden="relu",
                                                           output="softmax", cost="log-likelihood",
                                                           eta=0.01, momentum=0.9, init="he",
                                                           epochs=2),
    "784-30-20-15-10 sigmoid cross-entropy": dict(sizes=[784, 30, 20, 15, 10], hidden="sigmoid",
                                                  output="sigmoid", cost="cross-entropy", eta=0.5),
    "batch 7 (last batch smaller)": dict(sizes=[784, 30, 10], hidden="sigmoid", output="sigmoid",
                                         cost="quadratic", eta=3.0, batch_size=7),
    "784-16-10 linear/tanh quadratic L2+L1 momentum": dict(sizes=[784, 16, 10], hidden="linear",
                                                           output="tanh", cost="quadratic", eta=0.02,
                                                           momentum=0.5, regs=(L2(1.0), L1(0.5)),
                                                           f32_atol=5e-3),
}
# float64: the two paths differ only by summation order (observed ~3e-14 of
# max|p|). float32 accumulates rounding over 50 steps (observed < 2e-6 of
# max|p| without L1). With L1, a weight that crosses 0 one step earlier in one
# path than in the other gets sgn(w) of the other sign once, a difference of
# 2 eta lambda / n (= 2e-3 here) that then persists: observed on 1 weight of
# 15,680, so that case is allowed 5e-3 in float32.
KERNEL_TOL = {"float64": 1e-9, "float32": 5e-4}


@pytest.mark.skipif(not dense_kernel.AVAILABLE, reason="numba is not installed")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(KERNEL_CASES))
def test_kernel_equals_numpy_path(name, dtype, mnist):
    case = KERNEL_CASES[name]
    x, y = mnist["train_x"][:500], mnist["train_y"][:500]
    results = {}
    for fast in (False, True):
        net = dense_net(case["sizes"], case["hidden"], case["output"], case["cost"],
                        init=case.get("init", "default"), rng=7, dtype=dtype)
        opt = SGD(case["eta"], momentum=case.get("momentum", 0.0), regularizers=case.get("regs", ()))
        assert dense_kernel.supports(net, opt)  # or the "fast" run would be the NumPy path again
        # Underflow (exp of a very negative number -> 0) is the right answer in
        # softmax/sigmoid of a large |z|; over/invalid/divide still raise.
        with np.errstate(under="ignore"):
            Trainer(net, opt, batch_size=case.get("batch_size", 10), rng=3, fast=fast).fit(
                x, y, epochs=case.get("epochs", 1))
        velocity = [{k: opt.velocity[(i, k)].copy() for k in ("w", "b")} for i in range(len(net.layers))] \
            if opt.momentum else None
        results[fast] = (net.get_params(), velocity)
    start = dense_net(case["sizes"], case["hidden"], case["output"], case["cost"],
                      init=case.get("init", "default"), rng=7, dtype=dtype).get_params()
    assert not np.allclose(results[False][0][0]["w"], start[0]["w"])  # training happened
    assert results[True][0][0]["w"].dtype == np.dtype(dtype)
    tol = case.get("f32_atol", KERNEL_TOL[dtype]) if dtype == "float32" else KERNEL_TOL[dtype]
    assert_params_close(results[True][0], results[False][0], atol=tol, scaled=True)
    if results[False][1] is not None:
        assert_params_close(results[True][1], results[False][1], atol=tol, scaled=True)


# ==========================================================================
# 4. a 2-2-1 network worked out by hand

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


# ==========================================================================
# 5. seeds

def _seeded_run(net_seed, shuffle_seed, fast, dtype="float64"):
    rng = np.random.default_rng(99)  # the data is fixed; only the seeds vary
    x, y = sparse_inputs(rng, 300, 20), rng.integers(0, 4, 300)
    test = SimpleNamespace(x=x[:100], y=y[:100])
    net = Network.from_sizes([20, 8, 4], cost="cross-entropy", rng=net_seed, dtype=dtype)
    trainer = Trainer(net, SGD(0.5, regularizers=[L2(1.0)]), batch_size=10, rng=shuffle_seed,
                      fast=fast, callbacks=[Evaluation({"test": test}, ("accuracy", "cost"))])
    history = trainer.fit(x, y, epochs=3)
    metrics = {k: v for k, v in history.data.items() if k != "epoch_seconds"}
    return net.get_params(), metrics


@pytest.mark.parametrize("fast", [False, True], ids=["numpy", "kernel"])
def test_same_seed_same_weights_and_history(fast):
    p1, h1 = _seeded_run(1, 2, fast)
    p2, h2 = _seeded_run(1, 2, fast)
    for a, b in zip(p1, p2):
        for k in a:
            assert np.array_equal(a[k], b[k])
    assert h1 == h2
    assert set(h1) >= {"test_accuracy", "test_cost", "eta"} and len(h1["test_cost"]) == 3


@pytest.mark.parametrize("fast", [False, True], ids=["numpy", "kernel"])
def test_different_seeds_differ(fast):
    p, h = _seeded_run(1, 2, fast)
    p_init, _ = _seeded_run(5, 2, fast)      # another initialisation
    p_shuffle, h_shuffle = _seeded_run(1, 6, fast)   # same start, another shuffle
    assert not np.allclose(p[0]["w"], p_init[0]["w"])
    assert not np.allclose(p[0]["w"], p_shuffle[0]["w"])
    assert h["test_cost"] != h_shuffle["test_cost"]
    # and the initial weights themselves: a seed fixes them
    a = Network.from_sizes([20, 8, 4], rng=3).get_params()
    b = Network.from_sizes([20, 8, 4], rng=np.random.default_rng(3)).get_params()
    c = Network.from_sizes([20, 8, 4], rng=4).get_params()
    assert np.array_equal(a[0]["w"], b[0]["w"]) and not np.array_equal(a[0]["w"], c[0]["w"])


# ==========================================================================
# 6. costs and configuration errors

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


def test_softmax_in_a_hidden_layer_raises():
    with pytest.raises(ConfigError, match="softmax is only allowed in the output layer"):
        Network([Dense(4, "softmax"), Dense(3, "softmax")], "log-likelihood", input_shape=(5,), rng=0)
    with pytest.raises(ConfigError, match="only allowed in the output layer"):
        Network.from_sizes([5, 4, 3], activation="softmax", cost="log-likelihood", rng=0)


@pytest.mark.parametrize("make,listed", [
    (lambda: Dense(3, "swish"), "valid activations: sigmoid, tanh, relu, linear, softmax"),
    (lambda: Network.from_sizes([5, 3], activation="gelu"), "valid activations: sigmoid"),
    (lambda: Network.from_sizes([5, 3], cost="hinge"), "valid costs: quadratic, cross-entropy, log-likelihood"),
    (lambda: Network([Dense(3)], cost="mae", input_shape=(5,)), "valid costs: quadratic"),
    (lambda: Dense(3, init="uniform"), "valid initializers: default, large, glorot, he, zeros"),
    (lambda: Network.from_sizes([5, 3], init="orthogonal"), "valid initializers: default"),
], ids=["activation", "activation-from-sizes", "cost", "cost-network", "init", "init-from-sizes"])
def test_unknown_names_list_the_valid_ones(make, listed):
    with pytest.raises(ConfigError, match=listed):
        make()


def _tiny_problem():
    rng = np.random.default_rng(0)
    net = Network.from_sizes([6, 4, 3], rng=0, dtype="float64")
    return net, rng.random((20, 6)), rng.integers(0, 3, 20)


def _train(net, x, y, fast, **kw):
    kw.setdefault("epochs", 1)
    return nndl.train(net, SGD(1.0), x, y, fast=fast, **kw)


@pytest.mark.parametrize("fast", [False, True], ids=["numpy", "kernel"])
@pytest.mark.parametrize("bad,match", [
    (lambda net, x, y, fast: SGD(0.0), "eta must be a positive number"),
    (lambda net, x, y, fast: SGD(-1.0), "eta must be a positive number"),
    (lambda net, x, y, fast: SGD(float("nan")), "eta must be a positive number"),
    (lambda net, x, y, fast: SGD(1.0, momentum=1.0), r"momentum must be in \[0, 1\)"),
    (lambda net, x, y, fast: SGD(1.0, momentum=1.5), r"momentum must be in \[0, 1\)"),
    (lambda net, x, y, fast: SGD(1.0, momentum=-0.1), r"momentum must be in \[0, 1\)"),
    (lambda net, x, y, fast: L2(-0.1), "lambda must be >= 0"),
    (lambda net, x, y, fast: L1(-0.1), "lambda must be >= 0"),
    (lambda net, x, y, fast: _train(net, x, y, fast, batch_size=0), "mini-batch size must be a positive integer"),
    (lambda net, x, y, fast: _train(net, x, y, fast, batch_size=-3), "mini-batch size must be a positive integer"),
    (lambda net, x, y, fast: _train(net, x, y, fast, batch_size=2.5), "mini-batch size must be a positive integer"),
    (lambda net, x, y, fast: _train(net, x, y, fast, epochs=0), "epochs must be a positive integer"),
    (lambda net, x, y, fast: _train(net, x, y, fast, epochs=-1), "epochs must be a positive integer"),
    (lambda net, x, y, fast: _train(net, x, y, fast, epochs=1.5), "epochs must be a positive integer"),
    (lambda net, x, y, fast: net.forward(x[:, :5]), r"per-example shape \(5,\), but the network expects \(6,\)"),
    (lambda net, x, y, fast: net.predict(x.reshape(20, 2, 3)), "per-example shape"),
    (lambda net, x, y, fast: _train(net, x[:, :5], y, fast), "per-example shape"),
    (lambda net, x, y, fast: _train(net, x, np.where(y == 0, 3, y), fast), "labels must be integers in 0..2"),
    (lambda net, x, y, fast: _train(net, x, np.where(y == 0, -1, y), fast), "labels must be integers in 0..2"),
    (lambda net, x, y, fast: _train(net, x, y.astype(float), fast), "labels must be integers"),
    (lambda net, x, y, fast: _train(net, x, y[:10], fast), r"labels must have shape \(20,\)"),
    (lambda net, x, y, fast: _train(net, x[:0], y[:0], fast), "no training data"),
    (lambda net, x, y, fast: costs.one_hot(np.array([0, 3]), 3), "labels must lie in 0..2"),
], ids=["eta0", "eta-neg", "eta-nan", "mu1", "mu1.5", "mu-neg", "L2-neg", "L1-neg", "batch0", "batch-neg",
        "batch-float", "epochs0", "epochs-neg", "epochs-float", "input-shape", "input-rank",
        "train-input-shape", "label-high", "label-neg", "label-float", "label-count", "empty",
        "one-hot-range"])
def test_bad_hyperparameters_raise_config_error(bad, match, fast):
    net, x, y = _tiny_problem()
    before = net.get_params()
    with pytest.raises(ConfigError, match=match):
        bad(net, x, y, fast)
    assert_params_close(net.get_params(), before)   # a rejected call changes nothing


def test_config_errors_are_value_errors_and_nndl_errors():
    with pytest.raises(ValueError):
        SGD(0)
    with pytest.raises(NNDLError):
        Dense(0)


# ==========================================================================
# 7. initialisers

@pytest.mark.parametrize("name,w_std,b_std", [
    ("default", 1 / math.sqrt(200), 1.0),          # N(0, 1/n_in) weights, N(0, 1) biases (network2)
    ("large", 1.0, 1.0),                            # N(0, 1) both (network.py)
    ("glorot", math.sqrt(2 / (200 + 1000)), 0.0),   # N(0, 2/(n_in + n_out)), zero biases
    ("he", math.sqrt(2 / 200), 0.0),                # N(0, 2/n_in), zero biases
    ("zeros", 0.0, 0.0),
])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_initializer_std_matches_formula(name, w_std, b_std, dtype):
    # n_in = 200, n_out = 1000: 200,000 weights (sample std within ~0.2%),
    # 1,000 biases (within ~2.2%).
    net = Network([Dense(1000, "sigmoid", name)], "quadratic", input_shape=(200,), rng=0, dtype=dtype)
    w, b = net.layers[0].params["w"], net.layers[0].params["b"]
    assert w.shape == (1000, 200) and b.shape == (1000,)
    assert w.dtype == np.dtype(dtype) and b.dtype == np.dtype(dtype)
    assert float(np.std(w)) == pytest.approx(w_std, rel=0.02, abs=1e-12)
    assert abs(float(np.mean(w))) <= 0.02 * w_std      # zero mean (standard error ~0.002 std)
    assert float(np.std(b)) == pytest.approx(b_std, rel=0.1, abs=1e-12)
    assert initializers.get(name).name == name


def test_initializer_aliases_and_instances():
    assert initializers.get("xavier").name == "glorot"
    init = initializers.He()
    assert initializers.get(init) is init


# ==========================================================================
# 8. callbacks, history, Ctrl-C

def _fake_trainer(eta=1.0):
    return SimpleNamespace(stop_training=False, stop_reason=None, optimizer=SimpleNamespace(eta=eta))


def test_early_stopping_after_patience_epochs_without_improvement():
    cb, tr = EarlyStopping(patience=3), _fake_trainer()
    accuracies = [0.50, 0.60, 0.60, 0.55, 0.59, 0.70]
    stopped_at = None
    for epoch, acc in enumerate(accuracies):
        cb.on_epoch_end(tr, epoch, {"validation_accuracy": acc, "test_accuracy": 1.0})
        if tr.stop_training:
            stopped_at = epoch
            break
    # best 0.60 at epoch 1; epochs 2, 3, 4 do not beat it -> stop after epoch 4
    assert stopped_at == 4
    assert "validation_accuracy" in tr.stop_reason and "3 epochs" in tr.stop_reason


def test_early_stopping_resets_on_improvement_and_needs_an_accuracy():
    cb, tr = EarlyStopping(patience=2, monitor="test_accuracy"), _fake_trainer()
    for epoch, acc in enumerate([0.1, 0.1, 0.2, 0.2, 0.3, 0.3]):
        cb.on_epoch_end(tr, epoch, {"test_accuracy": acc})
        assert not tr.stop_training
    with pytest.raises(ConfigError):
        EarlyStopping(patience=1).on_epoch_end(tr, 0, {"eta": 1.0})
    with pytest.raises(ConfigError):
        EarlyStopping(patience=0)


def test_eta_schedule_halves_and_stops_at_eta0_over_128():
    cb, tr = EtaSchedule(patience=2), _fake_trainer(eta=0.8)
    cb.on_train_begin(tr)
    etas = []
    for epoch in range(100):
        cb.on_epoch_end(tr, epoch, {"validation_accuracy": 0.9})   # never improves after epoch 0
        etas.append(tr.optimizer.eta)
        if tr.stop_training:
            break
    # epoch 0 sets the best; every 2 epochs without improvement halve eta;
    # the 7th halving reaches 0.8/128 and stops training (epoch 14).
    assert epoch == 14
    assert etas[-1] == pytest.approx(0.8 / 128)
    assert etas[:3] == [0.8, 0.8, 0.4]
    assert sorted(set(etas), reverse=True) == pytest.approx([0.8 / 2 ** k for k in range(8)])
    assert "eta fell" in tr.stop_reason


class _ConstantAccuracy(Callback):
    """Writes a fixed validation accuracy into the logs (before the callbacks that read it)."""

    def on_epoch_end(self, trainer, epoch, logs):
        logs["validation_accuracy"] = 0.5


@pytest.mark.parametrize("fast", [False, True], ids=["numpy", "kernel"])
def test_callbacks_stop_a_real_training_run(fast):
    net, x, y = _tiny_problem()
    t = Trainer(net, SGD(0.8), batch_size=5, rng=0, fast=fast,
                callbacks=[_ConstantAccuracy(), EtaSchedule(patience=1)])
    h = t.fit(x, y, epochs=50)
    # eta is logged before the schedule acts: eta0 twice, then halves down to
    # eta0/64; halving to eta0/128 after epoch 7 stops training.
    assert h.epochs == 8
    assert h["eta"] == pytest.approx([0.8, 0.8] + [0.8 / 2 ** k for k in range(1, 7)])
    assert h["validation_accuracy"] == [0.5] * 8
    net2, x, y = _tiny_problem()
    t2 = Trainer(net2, SGD(0.8), batch_size=5, rng=0, fast=fast,
                 callbacks=[_ConstantAccuracy(), EarlyStopping(patience=2)])
    assert t2.fit(x, y, epochs=50).epochs == 3 and t2.stop_reason


def test_history_json_round_trip(tmp_path):
    h = History()
    h.append({"epoch_seconds": 0.25, "eta": 0.5, "test_accuracy": 0.9, "test_cost": 0.31})
    h.append({"epoch_seconds": 0.5, "eta": 0.25, "test_accuracy": 0.925, "test_cost": 0.29})
    path = tmp_path / "sub" / "history.json"
    h.to_json(path)
    back = History.from_json(path)
    assert back.data == h.data and back.epochs == 2
    assert back.best("test_accuracy") == (1, 0.925)
    assert os.listdir(path.parent) == ["history.json"]
    (tmp_path / "bad.json").write_text("[1, 2")
    with pytest.raises(NNDLError):
        History.from_json(tmp_path / "bad.json")
    (tmp_path / "bad2.json").write_text('{"test_accuracy": 3}')
    with pytest.raises(NNDLError):
        History.from_json(tmp_path / "bad2.json")


class _Interrupt(Callback):
    """Raises KeyboardInterrupt from on_batches_done part-way through epoch 2."""

    def __init__(self):
        self.epoch = None
        self.raised_at = None
        self.end_of_epoch_1 = None

    def on_epoch_begin(self, trainer, epoch):
        self.epoch = epoch

    def on_batches_done(self, trainer, done, total):
        if self.epoch == 1 and done < total:
            self.raised_at = (done, total)
            self.params_when_raised = trainer.network.get_params()
            raise KeyboardInterrupt

    def on_epoch_end(self, trainer, epoch, logs):
        if epoch == 0:
            self.end_of_epoch_1 = trainer.network.get_params()


@pytest.mark.parametrize("fast", [False, True], ids=["numpy", "kernel"])
def test_ctrl_c_restores_the_last_completed_epoch(fast):
    # 6,000 examples in batches of 10: the NumPy path reports every 50 batches,
    # the kernel every 5,000 examples, so both are interrupted mid-epoch.
    rng = np.random.default_rng(0)
    x, y = sparse_inputs(rng, 6000, 12), rng.integers(0, 3, 6000)
    net = Network.from_sizes([12, 6, 3], rng=0, dtype="float64")
    cb = _Interrupt()
    trainer = Trainer(net, SGD(1.0), batch_size=10, rng=0, fast=fast, callbacks=[cb])
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(x, y, epochs=5)
    assert cb.raised_at is not None and cb.raised_at[0] < cb.raised_at[1]
    if not fast:  # the NumPy path had already changed the weights when it was interrupted
        assert not np.allclose(cb.params_when_raised[0]["w"], cb.end_of_epoch_1[0]["w"])
    assert_params_close(net.get_params(), cb.end_of_epoch_1)
    assert trainer.history.epochs == 1 and trainer.epoch == 1


# ==========================================================================
# 9. save / load

def _net_for_files(dtype="float64"):
    return Network([Dense(7, "relu", "he"), Dense(5, "tanh"), Dense(3, "softmax", "glorot")],
                   "log-likelihood", input_shape=(6,), rng=4, dtype=dtype)


def _book_net(cost="cross-entropy"):
    return Network.from_sizes([6, 5, 3], cost=cost, rng=4, dtype="float64")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_npz_round_trip(tmp_path, dtype):
    net = _net_for_files(dtype)
    x = np.random.default_rng(1).random((50, 6))
    path = nndl.save(net, tmp_path / "model.npz")
    back = nndl.load(path)
    assert back.config() == net.config() and back.dtype == net.dtype
    assert np.array_equal(back.feedforward(x), net.feedforward(x))
    assert np.array_equal(back.predict(x), net.predict(x))
    # the format does not depend on the name
    nndl.save(net, tmp_path / "model.bin", format="nndl")
    assert np.array_equal(nndl.load(tmp_path / "model.bin").feedforward(x), net.feedforward(x))


@pytest.mark.parametrize("cost", ["quadratic", "cross-entropy"])
def test_book_json_round_trip(tmp_path, cost):
    net = _book_net(cost)
    x = np.random.default_rng(1).random((50, 6))
    path = nndl.save(net, tmp_path / "model.json")
    data = json.loads(path.read_text())
    assert set(data) == {"sizes", "weights", "biases", "cost"}
    assert data["sizes"] == [6, 5, 3]
    assert np.array(data["biases"][0]).shape == (5, 1)          # the book's column biases
    assert data["cost"] == {"quadratic": "QuadraticCost", "cross-entropy": "CrossEntropyCost"}[cost]
    back = nndl.load(path)
    assert back.cost.name == cost
    assert np.array_equal(back.feedforward(x), net.feedforward(x))
    assert np.array_equal(back.predict(x), net.predict(x))


def test_book_json_refuses_what_it_cannot_store(tmp_path):
    with pytest.raises(ConfigError):
        nndl.save(_net_for_files(), tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists() and os.listdir(tmp_path) == []
    with pytest.raises(ConfigError, match="valid formats"):
        nndl.save(_book_net(), tmp_path / "m.npz", format="pickle")


def _book_dict():
    from nndl.io import to_book_dict
    return to_book_dict(_book_net())


def _write_npz(path, arrays: dict, config: dict | None):
    if config is not None:
        arrays = {**arrays, "config.json": np.frombuffer(json.dumps(config).encode(), dtype=np.uint8)}
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _npz_parts():
    net = _net_for_files()
    config = {"format": "nndl", "version": 1, **net.config()}
    arrays = {f"layer{i}/{k}": v for i, layer in enumerate(net.layers) for k, v in layer.params.items()}
    return arrays, config


def _bad_json(mutate):
    d = _book_dict()
    mutate(d)
    return json.dumps(d).encode()


def _bad_npz(tmp_path, mutate):
    arrays, config = _npz_parts()
    config = mutate(arrays, config)
    p = tmp_path / "_src.npz"
    _write_npz(p, arrays, config)
    raw = p.read_bytes()
    p.unlink()
    return raw


def _truncated_npz(tmp_path):
    p = nndl.save(_net_for_files(), tmp_path / "_full.npz")
    raw = p.read_bytes()
    p.unlink()
    return raw[: len(raw) // 2]


def _set(d, key, value):
    d[key] = value


MALFORMED = {
    "garbage bytes": (lambda tmp: b"\x00\x01\x02garbage\xff\xfe", "not a JSON model file or an nndl .npz archive"),
    "empty file": (lambda tmp: b"", "not a JSON model file"),
    "truncated npz": (_truncated_npz, "corrupt .npz archive"),
    "npz without config": (lambda tmp: _bad_npz(tmp, lambda a, c: None), "without config.json"),
    "npz config not nndl": (lambda tmp: _bad_npz(tmp, lambda a, c: {**c, "format": "keras"}),
                            "does not describe an nndl network"),
    "npz config missing layers": (lambda tmp: _bad_npz(tmp, lambda a, c: {k: v for k, v in c.items()
                                                                         if k != "layers"}), "layers"),
    "npz wrong cost": (lambda tmp: _bad_npz(tmp, lambda a, c: {**c, "cost": "hinge"}), "unknown cost 'hinge'"),
    "npz missing array": (lambda tmp: _bad_npz(tmp, lambda a, c: (a.pop("layer1/w"), c)[1]),
                          r"layer 1 parameters \['w'\] are missing"),
    "npz wrong shape": (lambda tmp: _bad_npz(tmp, lambda a, c: (_set(a, "layer0/w", np.zeros((6, 7))), c)[1]),
                        r"layer 0 parameter 'w': expected shape \(7, 6\), got \(6, 7\)"),
    "npz newer version": (lambda tmp: _bad_npz(tmp, lambda a, c: {**c, "version": 99}), "newer nndl"),
    "json not an object": (lambda tmp: b"[1, 2, 3]", "expected a JSON object"),
    "json missing keys": (lambda tmp: _bad_json(lambda d: (d.pop("weights"), d.pop("cost"))),
                          r"lacks weights, cost"),
    "json wrong cost": (lambda tmp: _bad_json(lambda d: _set(d, "cost", "HingeCost")), "unknown cost 'HingeCost'"),
    "json wrong weight shape": (lambda tmp: _bad_json(lambda d: _set(d, "weights", [np.zeros((5, 5)).tolist(),
                                                                                    d["weights"][1]])),
                                r"weights\[0\] has shape \(5, 5\), but sizes \[6, 5, 3\] need \(5, 6\)"),
    "json wrong bias shape": (lambda tmp: _bad_json(lambda d: _set(d, "biases", [[[0.0]] * 4, d["biases"][1]])),
                              r"biases\[0\] has shape \(4, 1\), but sizes \[6, 5, 3\] need \(5, 1\)"),
    "json layer count": (lambda tmp: _bad_json(lambda d: _set(d, "weights", d["weights"][:1])),
                         "need 2 weights arrays, got 1"),
    "json bad sizes": (lambda tmp: _bad_json(lambda d: _set(d, "sizes", [6, -5, 3])), r"bad sizes: sizes\[1\] must be a positive integer, got -5"),
    "json non-numeric": (lambda tmp: _bad_json(lambda d: _set(d, "weights", [[["a"] * 6] * 5, d["weights"][1]])),
                         r"weights\[0\] is not a numeric matrix"),
    "json NaN weights": (lambda tmp: _bad_json(lambda d: d["weights"][1][0].__setitem__(0, float("nan"))),
                         "not finite"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_model_files_raise_model_file_error(tmp_path, case):
    make, match = MALFORMED[case]
    path = tmp_path / "model.bin"
    path.write_bytes(make(tmp_path))
    with pytest.raises(ModelFileError, match=match) as info:
        nndl.load(path)
    assert str(path) in str(info.value)            # the message names the file ...
    assert isinstance(info.value, NNDLError)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_npz_with_non_finite_weights_raises(tmp_path, bad):
    def mutate(a, c):
        a["layer0/w"] = a["layer0/w"].copy()
        a["layer0/w"][0, 0] = bad
        return c
    path = tmp_path / "model.npz"
    path.write_bytes(_bad_npz(tmp_path, mutate))
    with pytest.raises(ModelFileError, match="not finite"):
        nndl.load(path)


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        nndl.load(tmp_path / "nope.npz")


def _listing(folder):
    return sorted(os.listdir(folder))


def test_npz_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    old = _net_for_files()
    nndl.save(old, path)
    before = path.read_bytes()

    def failing_savez(f, **arrays):     # writes part of an archive, then the disk fills up
        f.write(b"PK\x03\x04" + b"\x00" * 100)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", failing_savez)
    new = Network([Dense(7, "relu", "he"), Dense(5, "tanh"), Dense(3, "softmax", "glorot")],
                  "log-likelihood", input_shape=(6,), rng=99, dtype="float64")
    with pytest.raises(OSError, match="No space"):
        nndl.save(new, path)
    with pytest.raises(OSError):
        nndl.save(new, tmp_path / "fresh.npz")
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert _listing(tmp_path) == ["model.npz"]        # no temporary file, no half-written fresh.npz
    x = np.random.default_rng(0).random((10, 6))
    assert np.array_equal(nndl.load(path).feedforward(x), old.feedforward(x))


def test_json_save_is_atomic_even_on_ctrl_c(tmp_path, monkeypatch):
    path = tmp_path / "model.json"
    nndl.save(_book_net(), path)
    before = path.read_text()

    def interrupted_fsync(fd):          # the text is written; Ctrl-C arrives before the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(nndl.fileio.os, "fsync", interrupted_fsync)
    other = Network.from_sizes([6, 5, 3], cost="cross-entropy", rng=123, dtype="float64")
    with pytest.raises(KeyboardInterrupt):
        nndl.save(other, path)
    monkeypatch.undo()
    assert path.read_text() == before
    assert _listing(tmp_path) == ["model.json"]


# ==========================================================================
# 10. accuracy on real MNIST subsets

@pytest.mark.mnist
@pytest.mark.parametrize("init,threshold", [
    # Measured with these seeds (float32, compiled kernel): 93.08% with the
    # network2 default init; 88.13% with chapter 1's N(0, 1) "large" init (the
    # book's own network.py, tests/reference.py, reaches the same 8813/10000
    # from the same initial weights and mini-batches).
    ("default", 0.90),
    ("large", 0.86),
])
def test_chapter1_network_on_10000_images(mnist, init, threshold):
    x, y = mnist["train_x"][:10_000], mnist["train_y"][:10_000]
    net = Network.from_sizes([784, 30, 10], activation="sigmoid", cost="quadratic", init=init,
                             rng=0, dtype="float32")
    # sigmoid of a large negative z underflows to 0 in float32: correct, allowed
    with np.errstate(under="ignore"):
        nndl.train(net, SGD(3.0), x, y, epochs=3, batch_size=10, rng=0)
        accuracy = net.accuracy(mnist["test_x"], mnist["test_y"]) / 10_000
    assert accuracy >= threshold, f"{accuracy:.2%}"


@pytest.mark.mnist
def test_cross_entropy_l2_on_1000_images(mnist):
    # network2 setup of ch. 3 (overfitting section), shortened: [784, 30, 10],
    # cross-entropy, eta 0.5, lambda 0.1, 1,000 training images, 10 epochs, the
    # NumPy path. Measured: 87.5% on the 10,000 test images with these seeds.
    x, y = mnist["train_x"][:1000], mnist["train_y"][:1000]
    net = Network.from_sizes([784, 30, 10], cost="cross-entropy", rng=0, dtype="float32")
    test = SimpleNamespace(x=mnist["test_x"], y=mnist["test_y"])
    with np.errstate(under="ignore"):
        h = nndl.train(net, SGD(0.5, regularizers=[L2(0.1)]), x, y, epochs=10, batch_size=10, rng=0,
                       fast=False, callbacks=[Evaluation({"test": test}, ("accuracy",))])
    assert h.epochs == 10
    assert h["test_accuracy"][-1] >= 0.84, h["test_accuracy"]
    assert h["test_accuracy"][-1] > h["test_accuracy"][0]


def test_checkpoint_saves_the_network_after_each_epoch(tmp_path):
    rng = np.random.default_rng(3)
    x, y = rng.random((60, 6)), rng.integers(0, 3, 60)
    path = tmp_path / "ckpt.npz"
    seen = []

    class Spy(nndl.callbacks.Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            seen.append(nndl.load(path).feedforward(x))   # runs after the checkpoint of this epoch

    net = nndl.Network.from_sizes([6, 5, 3], rng=0, dtype="float64")
    nndl.train(net, nndl.SGD(0.5), x, y, epochs=2, batch_size=7, rng=1,
               callbacks=[nndl.callbacks.Checkpoint(path), Spy()])
    assert len(seen) == 2 and not np.allclose(seen[0], seen[1])
    np.testing.assert_array_equal(seen[1], net.feedforward(x))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.npz"]    # no temporary files left
