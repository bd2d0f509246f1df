"""Dropout (book ch. 3, "Dropout"; network3's ``dropout_layer``)."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .base import Layer

DROPOUT_SCALES = ("inverted", "book")


class Dropout(Layer):
    """Randomly drop units during training, each with probability ``p``.

    Args:
        p: drop probability, ``0 <= p < 1`` (network3's ``p_dropout``).
        scale: how training and inference are reconciled:

            * ``"inverted"`` (default): training multiplies the kept units by
              ``1/(1-p)``; inference is the identity.
            * ``"book"``: network3's semantics: training multiplies by the 0/1
              mask only; inference multiplies by ``1 - p`` (network3 puts that
              factor on the next layer's weighted input, ``(1-p) w a``; scaling
              the activations is the same thing).

    Attributes:
        rng: the layer's own ``numpy.random.Generator``, a child of the one
            given to :meth:`build`; every training forward pass draws a mask.
        fixed_mask: ``None``, or a 0/1 array broadcastable to the input used
            instead of a random mask (for gradient checks and tests).

    Shape:
        any ``(N, ...)`` in, the same out. Backward multiplies by the same
        mask and scale as the last forward pass.
    """

    def __init__(self, p: float, scale: str = "inverted") -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)) \
                or not 0.0 <= float(p) < 1.0:
            raise ConfigError(f"Dropout: p must be a probability in [0, 1), got {p!r}")
        if scale not in DROPOUT_SCALES:
            raise ConfigError(
                f"Dropout: unknown scale {scale!r}; valid scales: {', '.join(DROPOUT_SCALES)}"
            )
        self.p = float(p)
        self.scale = scale
        self.rng: np.random.Generator | None = None
        self.fixed_mask: np.ndarray | None = None
        self._factor = None

    def build(self, input_shape, rng: np.random.Generator, dtype=np.float64):
        self.input_shape = tuple(input_shape)
        self.output_shape = self.input_shape
        # A child generator: the layer's draws do not shift the parent's stream
        # by an amount that depends on how many masks were drawn.
        if rng is not None:
            if hasattr(rng, "spawn"):  # numpy >= 1.25
                self.rng = rng.spawn(1)[0]
            else:
                self.rng = np.random.default_rng(rng.integers(2**63))
        return self.output_shape

    def _mask(self, x: np.ndarray) -> np.ndarray:
        if self.fixed_mask is not None:
            try:
                return np.broadcast_to(np.asarray(self.fixed_mask, dtype=x.dtype), x.shape)
            except ValueError:
                raise ConfigError(
                    f"Dropout({self.p}): fixed_mask of shape {np.shape(self.fixed_mask)} "
                    f"does not fit input of shape {x.shape}"
                ) from None
        if self.rng is None:
            raise ConfigError(f"Dropout({self.p}): call build(input_shape, rng, dtype) before training")
        draw_dtype = np.float32 if x.dtype == np.float32 else np.float64
        return (self.rng.random(x.shape, dtype=draw_dtype) >= self.p).astype(x.dtype)

    def forward(self, x: np.ndarray, *, train: bool = False) -> np.ndarray:
        if train:
            if self.p == 0.0 and self.fixed_mask is None:
                self._factor = None
                return x
            factor = self._mask(x)
            if self.scale == "inverted":
                factor = factor * x.dtype.type(1.0 / (1.0 - self.p))
            self._factor = factor
            return x * factor
        # Inference: no mask.
        if self.scale == "book":
            self._factor = x.dtype.type(1.0 - self.p)
            return x * self._factor
        self._factor = None
        return x

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        if self._factor is None:
            return grad_out
        return grad_out * self._factor

    def config(self) -> dict:
        return {"type": "Dropout", "p": self.p, "scale": self.scale}
