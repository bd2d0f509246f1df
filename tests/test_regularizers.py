"""L1 and L2: gradients against finite differences of the penalty, and the book's formulas."""

from __future__ import annotations

import numpy as np
import pytest

from nndl import L1, L2

from helpers import dense_net

pytestmark = pytest.mark.usefixtures("strict_fp")   # floating-point warnings are errors


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
