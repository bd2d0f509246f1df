"""Network architectures from a short spec string, for the command line.

A spec is a comma-separated list of layers, input side first::

    conv:20:5,pool:2,dense:100,softmax:10                      (book ch. 6, one conv-pool layer)
    conv:20:5,pool:2,conv:40:5,pool:2,dense:100,softmax:10     (two conv-pool layers)
    conv:20:5,pool:2,conv:40:5,pool:2,dense:1000,dropout:0.5,dense:1000,dropout:0.5,softmax:10

=================  ==========================================================
``conv:F:K``       F filters of K x K, valid, stride 1
``pool:P``         P x P max-pooling; after a ``conv`` the two form the book's
                   ConvPoolLayer (pool, then bias and activation)
``dense:N``        N fully connected neurons
``dropout:P``      drop each unit with probability P in [0, 1) while training
``softmax:N``      N softmax output neurons (pairs with the log-likelihood cost)
``sigmoid:N``...   N output neurons with that activation (sigmoid, tanh, relu, linear)
=================  ==========================================================

Hidden layers use the ``activation`` given alongside the spec. The flat
MNIST input is reshaped to ``1 x 28 x 28`` before the first convolution and
flattened before the first dense layer, so the spec names only the layers
the book names.
"""

from __future__ import annotations


from . import activations, initializers
from .errors import ConfigError
from .layers import Dense, Layer
from .layers.conv import Conv2D, ConvPool, MaxPool2D
from .layers.dropout import Dropout
from .layers.reshape import Flatten, Reshape

OUTPUT_KINDS = ("softmax", "sigmoid", "tanh", "relu", "linear")
KINDS = ("conv", "pool", "dense", "dropout") + OUTPUT_KINDS


def _int(text: str, token: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"layer spec {token!r}: {what} must be a positive integer, got {text!r}") from None
    if value < 1:
        raise ConfigError(f"layer spec {token!r}: {what} must be a positive integer, got {value}")
    return value


def parse_layers(spec: str, *, activation="sigmoid", init=None, image_shape=(1, 28, 28),
                 dropout_scale: str = "inverted") -> list[Layer]:
    """Layers for ``spec`` (see the module docstring), starting from flat inputs.

    ``init`` (an initialiser name, see :mod:`nndl.initializers`) applies to
    every layer with weights; ``None`` keeps each layer's ``default_init``
    (the book's: ``network3`` for conv-pool layers, ``default`` otherwise).
    Each layer's ``spec`` is the token that made it, for error messages.
    Raises ConfigError naming the token that does not parse."""
    if not isinstance(spec, str):
        raise ConfigError(f"a layer spec is a string such as 'conv:20:5,pool:2,dense:100,softmax:10', got {spec!r}")
    act = activations.get(activation).name
    if init is not None:
        init = initializers.get(init)   # an unknown name fails here, once, before any layer
    tokens = [t.strip() for t in spec.split(",") if t.strip()]
    if not tokens:
        raise ConfigError("empty layer spec; e.g. conv:20:5,pool:2,dense:100,softmax:10")
    parsed = []
    for token in tokens:
        kind, *args = token.split(":")
        kind = kind.lower()
        arity = {"conv": 2}.get(kind, 1)
        if kind not in KINDS:
            raise ConfigError(f"layer spec {token!r}: unknown layer {kind!r}; known: {', '.join(KINDS)}")
        if len(args) != arity:
            example = {"conv": "conv:20:5", "pool": "pool:2", "dropout": "dropout:0.5"}.get(kind, f"{kind}:100")
            raise ConfigError(f"layer spec {token!r}: expected {arity} number(s) after {kind!r}, as in {example}")
        if kind == "conv":
            parsed.append((token, kind, (_int(args[0], token, "filters"), _int(args[1], token, "kernel size"))))
        elif kind == "dropout":
            try:
                p = float(args[0])
            except ValueError:
                raise ConfigError(f"layer spec {token!r}: dropout probability must be a number, got {args[0]!r}") from None
            if not 0 <= p < 1:
                raise ConfigError(f"layer spec {token!r}: dropout probability must be in [0, 1), got {p}")
            parsed.append((token, kind, (p,)))
        else:
            parsed.append((token, kind, (_int(args[0], token, "size"),)))
    if parsed[-1][1] not in OUTPUT_KINDS:
        raise ConfigError(f"the last layer must be an output layer ({', '.join(k + ':N' for k in OUTPUT_KINDS)}), "
                          f"got {parsed[-1][0]!r}")
    for token, kind, _ in parsed[:-1]:
        if kind in OUTPUT_KINDS:
            raise ConfigError(f"layer spec {token!r}: an output layer must come last")

    layers: list[Layer] = []

    def add(layer: Layer, token: str) -> None:
        layer.spec = token   # Layer.spec: so that build errors can name the token
        layers.append(layer)

    spatial = False
    i = 0
    while i < len(parsed):
        token, kind, args = parsed[i]
        if kind in ("conv", "pool") and not spatial:
            if layers:
                raise ConfigError(f"layer spec {token!r}: convolution and pooling must come before dense layers")
            layers.append(Reshape(tuple(image_shape)))
            spatial = True
        if kind in ("dense",) + OUTPUT_KINDS and spatial:
            layers.append(Flatten())
            spatial = False
        if kind == "conv":
            nxt = parsed[i + 1] if i + 1 < len(parsed) else None
            if nxt is not None and nxt[1] == "pool":
                add(ConvPool(args[0], args[1], nxt[2][0], activation=act, init=init), f"{token},{nxt[0]}")
                i += 2
                continue
            add(Conv2D(args[0], args[1], activation=act, init=init), token)
        elif kind == "pool":
            add(MaxPool2D(args[0]), token)
        elif kind == "dense":
            add(Dense(args[0], act, init=init), token)
        elif kind == "dropout":
            add(Dropout(args[0], scale=dropout_scale), token)
        else:
            add(Dense(args[0], kind, init=init), token)
        i += 1
    return layers


def default_cost(layers: list[Layer]) -> str:
    """log-likelihood after a softmax output, else cross-entropy for sigmoid, else quadratic."""
    out = layers[-1].activation.name
    return {"softmax": "log-likelihood", "sigmoid": "cross-entropy"}.get(out, "quadratic")


def describe(layers: list[Layer], input_shape=(784,)) -> str:
    """``784 -> Reshape 1x28x28 -> ConvPool 20x12x12 -> ...`` (layers must be built)."""
    parts = ["x".join(map(str, input_shape))]
    for layer in layers:
        parts.append(f"{type(layer).__name__} {'x'.join(map(str, layer.output_shape))}")
    return " -> ".join(parts)


__all__ = ["parse_layers", "default_cost", "describe", "KINDS"]
