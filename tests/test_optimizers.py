"""SGD: the vectorised mini-batch step equals the book's per-example loop
(``tests/reference.py``), with momentum and L1/L2, on full and partial batches."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import ORACLE_CASES, assert_params_close, dense_net, oracle_setup, params_of_reference, \
    reference_for, sparse_inputs
from reference import BookNetwork, as_book_data, batches

pytestmark = pytest.mark.usefixtures("strict_fp")   # floating-point warnings are errors


@pytest.mark.parametrize("name", list(ORACLE_CASES))
def test_step_equals_per_example_oracle(name):
    # forward / backward / SGD.step on mini-batches of 8, 8, 8, 8, 8 and then
    # 7, 7, 7, 7, 7, 5: after each, the summed gradients and the new
    # parameters equal the book's per-example loop.
    case = ORACLE_CASES[name]
    net, opt, ref, x, y = oracle_setup(case)
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
