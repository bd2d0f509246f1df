"""Layers that only change the shape of the per-example array."""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError
from .base import Layer


def _check_batch(x: np.ndarray, input_shape, layer: str) -> None:
    if input_shape is None:
        raise ConfigError(f"{layer}: call build(input_shape, rng, dtype) before forward")
    if x.shape[1:] != input_shape:
        raise ConfigError(
            f"{layer}: expects input of shape (N, {', '.join(map(str, input_shape))}), got {x.shape}"
        )


class Flatten(Layer):
    """``(N, C, H, W)`` (or any ``(N, ...)``) -> ``(N, C*H*W)``, row-major."""

    def build(self, input_shape, rng=None, dtype=None):
        self.input_shape = tuple(int(s) for s in input_shape)
        if not self.input_shape:
            raise ConfigError("Flatten: needs a per-example shape with at least one axis, got ()")
        self.output_shape = (math.prod(self.input_shape),)
        return self.output_shape

    def forward(self, x: np.ndarray, *, train: bool = False) -> np.ndarray:
        _check_batch(x, self.input_shape, "Flatten()")
        return x.reshape(x.shape[0], -1)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out.reshape(grad_out.shape[0], *self.input_shape)

    def config(self) -> dict:
        return {"type": "Flatten"}


class Reshape(Layer):
    """``(N, *input_shape)`` -> ``(N, *shape)`` with the same number of values.

    Conv nets on flat MNIST vectors start with ``Reshape((1, 28, 28))``. One
    entry of ``shape`` may be -1, inferred in :meth:`build`.
    """

    def __init__(self, shape) -> None:
        super().__init__()
        try:
            target = tuple(shape)
        except TypeError:
            raise ConfigError(f"Reshape: shape must be a tuple of integers, got {shape!r}") from None
        if (not target
                or not all(not isinstance(s, bool) and isinstance(s, (int, np.integer)) for s in target)
                or not all(s >= 1 or s == -1 for s in target)
                or sum(s == -1 for s in target) > 1):
            raise ConfigError(
                f"Reshape: shape must be positive integers (at most one -1), got {shape!r}"
            )
        self.shape = tuple(int(s) for s in target)

    def build(self, input_shape, rng=None, dtype=None):
        self.input_shape = tuple(int(s) for s in input_shape)
        size = math.prod(self.input_shape)
        known = math.prod(s for s in self.shape if s != -1)
        if -1 in self.shape:
            if size % known:
                raise ConfigError(
                    f"Reshape({self.shape}): {size} values per example cannot fill {self.shape}"
                )
            out = tuple(size // known if s == -1 else s for s in self.shape)
        else:
            out = self.shape
        if math.prod(out) != size:
            raise ConfigError(
                f"Reshape({self.shape}): input of shape {self.input_shape} has {size} values "
                f"per example, {self.shape} needs {math.prod(out)}"
            )
        self.output_shape = out
        return self.output_shape

    def forward(self, x: np.ndarray, *, train: bool = False) -> np.ndarray:
        _check_batch(x, self.input_shape, f"Reshape({self.shape})")
        return x.reshape(x.shape[0], *self.output_shape)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out.reshape(grad_out.shape[0], *self.input_shape)

    def config(self) -> dict:
        return {"type": "Reshape", "shape": list(self.shape)}
