"""The one ``get(identifier)`` of the activation, cost and initialiser registries."""

from __future__ import annotations

import pytest

from nndl import ConfigError, Dense, Network

pytestmark = pytest.mark.usefixtures("strict_fp")   # floating-point warnings are errors


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
