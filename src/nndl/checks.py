"""Checks of the arrays users hand to nndl: inputs and labels.

One rule and one message for each, so that training, evaluation and the
book's APIs refuse the same things in the same words:

* inputs must be numbers of the shape the network expects, and finite: a
  single NaN or infinity spreads to every weight in one step of SGD;
* labels must be integer class numbers ``0 .. n_classes - 1``, one per input.
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError, DataError

__all__ = ["as_inputs", "check_finite", "as_labels"]

# Rows checked at a time by check_finite: bounds the temporary boolean array.
_CHUNK_ROWS = 8192


def check_finite(a: np.ndarray, name: str) -> None:
    """DataError naming ``name`` and the first bad index if float array ``a``
    holds a NaN or an infinity. Checked in chunks, so the temporary mask stays
    small even for the 250,000-image expanded set."""
    if a.dtype.kind not in "fc" or a.size == 0:
        return
    flat = a.reshape(len(a), -1) if a.ndim > 1 else a.reshape(-1, 1)
    for start in range(0, len(flat), _CHUNK_ROWS):
        chunk = flat[start:start + _CHUNK_ROWS]
        with np.errstate(over="ignore", invalid="ignore"):
            total = chunk.sum()
        if np.isfinite(total):   # a NaN or infinity in a sum makes it non-finite: all fine (half
            continue             # the time of isfinite); a sum that overflowed is checked entry by entry
        bad = ~np.isfinite(chunk)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            index = np.unravel_index(col, a.shape[1:]) if a.ndim > 1 else ()
            where = tuple(int(i) for i in (start + row, *index))
            value = a[where]
            raise DataError(f"{name} holds non-finite values ({value} at index "
                            f"{where[0] if len(where) == 1 else where}); "
                            "remove or fix those examples")


def as_inputs(x, input_shape: tuple[int, ...], dtype, *, name: str = "x", finite: bool = True) -> np.ndarray:
    """``x`` as an array of shape ``(N, *input_shape)`` and type ``dtype``.

    Raises:
        DataError: ``x`` is not numeric (strings, objects, ragged lists,
            complex numbers), or (with ``finite``) holds NaN or infinity,
            also after conversion to ``dtype`` (1e300 overflows float32).
        ConfigError: the per-example shape is not ``input_shape``.
    """
    try:
        a = np.asarray(x)
    except (ValueError, TypeError) as e:
        raise DataError(f"{name} is not an array of numbers ({e})") from None
    if a.dtype.kind not in "biuf":
        raise DataError(f"{name} must hold real numbers, got an array of dtype {a.dtype}")
    if a.shape[1:] != tuple(input_shape):
        raise ConfigError(
            f"input has per-example shape {a.shape[1:]}, but the network expects {tuple(input_shape)}"
            + (f" ({name} has shape {a.shape})" if a.ndim else f" ({name} is a single number)")
        )
    with np.errstate(over="ignore"):
        a = a.astype(dtype, copy=False)
    if finite:
        check_finite(a, name)
    return a


def as_labels(y, n: int, n_classes: int, *, name: str = "y") -> np.ndarray:
    """``y`` as an integer array ``(n,)`` of class numbers ``0 .. n_classes - 1``.

    Raises:
        ConfigError: not integers (floats, booleans, strings), the wrong
            shape, or a label out of range.
    """
    try:
        a = np.asarray(y)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{name} is not an array of integer labels ({e})") from None
    if a.dtype.kind not in "iu":
        raise ConfigError(f"{name} must hold integer class labels 0..{n_classes - 1}, got dtype {a.dtype}"
                          + (" (convert with .astype(int))" if a.dtype.kind == "f" else ""))
    if a.shape != (n,):
        raise ConfigError(f"{name} must have shape ({n},), one label per input, got {a.shape}")
    if n and (a.min() < 0 or a.max() >= n_classes):
        raise ConfigError(f"{name} must be integers in 0..{n_classes - 1} for {n_classes} output neurons, "
                          f"got {a.min()}..{a.max()}")
    return a
