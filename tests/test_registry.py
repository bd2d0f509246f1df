"""The one ``get(identifier)`` of the activation, cost and initialiser registries."""

from __future__ import annotations

import pytest

from nndl import ConfigError, Dense, Network, activations, costs, initializers

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


REGISTRIES = {
    # module, registry, base class, a name, how to write it otherwise, the noun in messages
    "activations": (activations, activations.ACTIVATIONS, activations.Activation, "relu", "ReLU", "activation"),
    "costs": (costs, costs.COSTS, costs.Cost, "cross-entropy", "ce", "cost"),
    "initializers": (initializers, initializers.INITIALIZERS, initializers.Initializer, "glorot", "Xavier",
                     "initializer"),
}


@pytest.mark.parametrize("kind", list(REGISTRIES))
def test_every_registry_gets_names_classes_and_instances_alike(kind):
    module, registry, base, name, other_spelling, noun = REGISTRIES[kind]
    for key, cls in registry.items():
        assert key == key.lower() and cls.name == key
        assert type(module.get(key)) is cls
        assert type(module.get(key.upper())) is cls            # case-insensitive
        assert type(module.get(cls)) is cls                    # a class is instantiated
        instance = cls()
        assert module.get(instance) is instance                # an instance is kept
    assert module.get(other_spelling).name == name             # upper case or an alias
    for bad in ("nope", None, 3, object, int):
        with pytest.raises(ConfigError) as info:
            module.get(bad)
        assert str(info.value) == f"unknown {noun} {bad!r}; valid {noun}s: {', '.join(registry)}"
