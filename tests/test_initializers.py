"""Initialisers: the spread of every initialiser's draws, names and aliases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nndl import Dense, Network, initializers

pytestmark = pytest.mark.usefixtures("strict_fp")   # floating-point warnings are errors


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
