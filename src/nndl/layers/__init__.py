"""Layers: each owns its forward and backward pass (see :mod:`nndl.layers.base`)."""

from __future__ import annotations

from ..errors import ConfigError
from .base import Layer
from .conv import Conv2D, ConvPool, MaxPool2D
from .dense import Dense
from .dropout import Dropout
from .reshape import Flatten, Reshape

LAYERS: dict[str, type[Layer]] = {
    cls.__name__: cls for cls in (Dense, Conv2D, MaxPool2D, ConvPool, Dropout, Flatten, Reshape)
}


def register(cls: type[Layer]) -> type[Layer]:
    LAYERS[cls.__name__] = cls
    return cls


def from_config(config: dict) -> Layer:
    """Rebuild a layer from its :meth:`~nndl.layers.base.Layer.config`."""
    if not isinstance(config, dict) or not isinstance(config.get("type"), str) or config["type"] not in LAYERS:
        raise ConfigError(f"unknown layer description {config!r}; known layer types: {', '.join(LAYERS)}")
    kwargs = {k: v for k, v in config.items() if k != "type"}
    if config["type"] in ("Conv2D", "ConvPool") and kwargs.get("init") == "book":
        # Files written before the one initialiser registry called network3's
        # conv initialisation "book"; it is "network3" now.
        kwargs["init"] = "network3"
    try:
        return LAYERS[config["type"]](**kwargs)
    except TypeError as e:
        raise ConfigError(f"bad arguments for {config['type']}: {e}") from None


__all__ = ["Layer", "Dense", "Conv2D", "MaxPool2D", "ConvPool", "Dropout", "Flatten", "Reshape",
           "LAYERS", "register", "from_config"]
