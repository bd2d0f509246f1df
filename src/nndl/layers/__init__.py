"""Layers: each owns its forward and backward pass (see :mod:`nndl.layers.base`)."""

from __future__ import annotations

from ..errors import ConfigError
from .base import Layer
from .dense import Dense

LAYERS: dict[str, type[Layer]] = {"Dense": Dense}


def register(cls: type[Layer]) -> type[Layer]:
    LAYERS[cls.__name__] = cls
    return cls


def from_config(config: dict) -> Layer:
    """Rebuild a layer from its :meth:`~nndl.layers.base.Layer.config`."""
    if not isinstance(config, dict) or config.get("type") not in LAYERS:
        raise ConfigError(f"unknown layer description {config!r}; known layer types: {', '.join(LAYERS)}")
    kwargs = {k: v for k, v in config.items() if k != "type"}
    try:
        return LAYERS[config["type"]](**kwargs)
    except TypeError as e:
        raise ConfigError(f"bad arguments for {config['type']}: {e}") from None


__all__ = ["Layer", "Dense", "LAYERS", "register", "from_config"]
