"""The network: a stack of layers and a cost, checked when it is built."""

from __future__ import annotations

import pytest

from nndl import SGD, ConfigError, Dense, Network, NNDLError

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
