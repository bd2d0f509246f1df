"""The compiled dense kernel (``nndl.kernels.dense``) equals the NumPy path
(``Trainer(fast=False)``: ``Dense`` layers, the costs' BP1 and ``SGD.step``).

* on synthetic MNIST-like data (80% zeros, some rows all zero), always: every
  hidden activation with every cost and output activation, L1, L2, momentum,
  several layers, mini-batches of 1, 10 and 64 with a smaller last one, in
  float64 and float32;
* on real MNIST when it is present.

Both paths start from the same initial weights and see the same mini-batches
(the same shuffle seed), for two epochs, so that the kernel's velocities and
parameters also cross an epoch boundary (``load``/``sync``).
"""

from __future__ import annotations

import numpy as np
import pytest

from nndl import L1, L2, SGD, Trainer
from nndl.kernels import dense as dense_kernel

from helpers import HIDDEN_ACTIVATIONS, VALID_PAIRS, assert_params_close, dense_net, sparse_inputs

pytestmark = [
    pytest.mark.usefixtures("strict_fp"),   # floating-point warnings are errors
    pytest.mark.skipif(not dense_kernel.AVAILABLE, reason="numba is not installed"),
]

# Tolerances, as a fraction of max|p|. float64: the two paths differ only by
# summation order (observed up to 3e-15 on the synthetic cases, 3e-14 on
# MNIST). float32 accumulates rounding over the steps (observed up to 1.5e-6
# and 2e-6). With L1, a weight that crosses 0 one step earlier in one path
# than in the other gets sgn(w) of the other sign once, a difference of
# 2 eta lambda / n that then persists: L1 cases get that much more in float32
# (l1_allowance; seen on MNIST, on 1 weight of 15,680).
KERNEL_TOL = {"float64": 1e-10, "float32": 1e-4}


def velocities(opt: SGD, n_layers: int):
    """The optimizer's momentum velocities per layer, from its checkpoint
    state (None without momentum)."""
    if not opt.momentum:
        return None
    state = opt.state_dict()["velocity"]
    return [{k: state[f"{i}.{k}"] for k in ("w", "b")} for i in range(n_layers)]


def l1_allowance(case: dict, n: int) -> float:
    """2 eta lambda_1 / n: one step of sgn(w) of the other sign (see KERNEL_TOL)."""
    return sum(2 * case["eta"] * r.lmbda / n for r in case.get("regs", ()) if isinstance(r, L1))


def assert_kernel_equals_numpy(case: dict, x: np.ndarray, y: np.ndarray, dtype: str) -> None:
    """Train ``case`` by both paths from the same start; parameters (and
    velocities) must agree within KERNEL_TOL, scaled by max|p|."""

    def network():
        return dense_net(case["sizes"], case["hidden"], case["output"], case["cost"],
                         init=case.get("init", "default"), rng=7, dtype=dtype)

    results = {}
    for fast in (False, True):
        net = network()
        opt = SGD(case["eta"], momentum=case.get("momentum", 0.0), regularizers=case.get("regs", ()))
        assert dense_kernel.supports(net, opt)  # or the "fast" run would be the NumPy path again
        # Underflow (exp of a very negative number -> 0) is the right answer in
        # softmax/sigmoid of a large |z|; over/invalid/divide still raise.
        with np.errstate(under="ignore"):
            Trainer(net, opt, batch_size=case.get("batch_size", 10), rng=3, fast=fast).fit(
                x, y, epochs=case.get("epochs", 1))
        results[fast] = (net.get_params(), velocities(opt, len(net.layers)))
    start = network().get_params()
    for i, p in enumerate(results[False][0]):   # training moved every layer's weights
        assert not np.allclose(p["w"], start[i]["w"]), f"layer {i} did not train"
    assert all(v.dtype == np.dtype(dtype) for p in results[True][0] for v in p.values())
    tol = KERNEL_TOL[dtype]
    if dtype == "float32":
        tol = case.get("f32_atol", tol + l1_allowance(case, len(x)))
    assert_params_close(results[True][0], results[False][0], atol=tol, scaled=True)
    if results[False][1] is not None:
        assert_params_close(results[True][1], results[False][1], atol=tol, scaled=True)


# --------------------------------------------------------------------------
# synthetic data: always runs

N_SYNTH, D_SYNTH, K_SYNTH = 203, 40, 6    # 203 = 20 batches of 10 and a last one of 3


@pytest.fixture(scope="module")
def synthetic():
    """MNIST-like training data: 203 inputs of 40 values, 80% of them zero,
    two rows all zero (empty rows of the kernel's sparse input); 6 classes."""
    rng = np.random.default_rng(2024)
    x = sparse_inputs(rng, N_SYNTH, D_SYNTH, zeros=0.8)
    x[[5, 150]] = 0.0
    y = rng.permutation(np.arange(N_SYNTH) % K_SYNTH)
    return x, y


def _eta(*activations: str) -> float:
    # bounded activations learn at a book-like rate; relu/linear ones would
    # blow up (and raise, under strict_fp) at that rate
    return 0.05 if {"relu", "linear"} & set(activations) else 0.5


ACTIVATION_CASES = {
    f"{hidden} hidden, {output} output, {cost}": dict(
        sizes=[D_SYNTH, 12, K_SYNTH], hidden=hidden, output=output, cost=cost,
        eta=_eta(hidden, output), epochs=2)
    for hidden in HIDDEN_ACTIVATIONS for cost, output in VALID_PAIRS
}

OPTIMIZER_CASES = {
    "L2": dict(hidden="sigmoid", output="sigmoid", cost="cross-entropy", eta=0.5, regs=(L2(3.0),)),
    "L1": dict(hidden="tanh", output="softmax", cost="log-likelihood", eta=0.5, regs=(L1(1.0),)),
    "L1+L2": dict(hidden="relu", output="linear", cost="quadratic", eta=0.05, init="he",
                  regs=(L2(2.0), L1(0.5))),
    "momentum": dict(hidden="sigmoid", output="sigmoid", cost="quadratic", eta=0.5, momentum=0.9),
    "momentum+L2": dict(hidden="tanh", output="sigmoid", cost="cross-entropy", eta=0.3, momentum=0.5,
                        regs=(L2(3.0),)),
    "momentum+L1": dict(hidden="relu", output="softmax", cost="log-likelihood", eta=0.05, momentum=0.9,
                        init="he", regs=(L1(1.0),)),
    "momentum+L1+L2": dict(hidden="linear", output="tanh", cost="quadratic", eta=0.02, momentum=0.5,
                           regs=(L2(1.0), L1(0.5))),
    "four layers": dict(sizes=[D_SYNTH, 12, 10, 8, K_SYNTH], hidden="sigmoid", output="sigmoid",
                        cost="cross-entropy", eta=0.5),
    "mini-batches of 1": dict(hidden="sigmoid", output="sigmoid", cost="quadratic", eta=0.5, batch_size=1),
    "mini-batches of 64 (last 11), momentum": dict(hidden="tanh", output="softmax", cost="log-likelihood",
                                                   eta=0.5, momentum=0.9, batch_size=64),
}
for _case in OPTIMIZER_CASES.values():
    _case.setdefault("sizes", [D_SYNTH, 12, K_SYNTH])
    _case.setdefault("epochs", 2)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(ACTIVATION_CASES))
def test_kernel_equals_numpy_path_for_every_activation_and_cost(name, dtype, synthetic):
    assert_kernel_equals_numpy(ACTIVATION_CASES[name], *synthetic, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(OPTIMIZER_CASES))
def test_kernel_equals_numpy_path_with_penalties_momentum_and_batches(name, dtype, synthetic):
    assert_kernel_equals_numpy(OPTIMIZER_CASES[name], *synthetic, dtype)


def test_synthetic_cases_cover_what_the_kernel_supports():
    # every activation code, both BP1 forms, both penalties and momentum
    cases = list(ACTIVATION_CASES.values()) + list(OPTIMIZER_CASES.values())
    assert {c["hidden"] for c in cases} | {c["output"] for c in cases} == set(dense_kernel.ACT_CODES)
    assert {c["cost"] for c in cases} == {"quadratic", "cross-entropy", "log-likelihood"}
    regs = {type(r) for c in cases for r in c.get("regs", ())}
    assert regs == {L1, L2}
    assert any(c.get("momentum") for c in cases)
    assert any(N_SYNTH % c.get("batch_size", 10) for c in cases)



@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sparse_copy_of_the_inputs_holds_every_non_zero_in_order(dtype, synthetic):
    x = synthetic[0].astype(dtype)
    x[3] = 0                    # a row of zeros
    x[4, :5] = [-0.0, 0.0, -2.5, 1e-30, 0.0]
    indptr, indices, values = dense_kernel.to_csr(x)
    assert indptr[0] == 0 and len(indptr) == len(x) + 1
    assert indices.dtype == np.int32 and values.dtype == x.dtype
    for i, row in enumerate(x):
        cols = np.flatnonzero(row)
        assert np.array_equal(indices[indptr[i]:indptr[i + 1]], cols)
        assert np.array_equal(values[indptr[i]:indptr[i + 1]], row[cols])
    # the rows rebuilt from the CSR copy are the inputs
    rebuilt = np.zeros_like(x)
    rows = np.repeat(np.arange(len(x)), np.diff(indptr))
    rebuilt[rows, indices] = values
    assert np.array_equal(rebuilt, x)


# --------------------------------------------------------------------------
# real MNIST: runs when it is present

KERNEL_CASES = {
    "784-30-10 sigmoid quadratic": dict(sizes=[784, 30, 10], hidden="sigmoid", output="sigmoid",
                                        cost="quadratic", eta=3.0, init="large"),
    "784-20-10 tanh/sigmoid cross-entropy L2+L1": dict(sizes=[784, 20, 10], hidden="tanh",
                                                       output="sigmoid", cost="cross-entropy",
                                                       eta=0.5, regs=(L2(5.0), L1(1.0)),
                                                       # float32: 2 eta lambda_1 / n = 2e-3 (KERNEL_TOL)
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


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(KERNEL_CASES))
def test_kernel_equals_numpy_path(name, dtype, mnist):
    assert_kernel_equals_numpy(KERNEL_CASES[name], mnist["train_x"][:500], mnist["train_y"][:500], dtype)
