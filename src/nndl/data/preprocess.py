"""MNIST's own preprocessing, for digits that do not come from MNIST.

LeCun, Cortes and Burges describe how the MNIST images were made: the
black-and-white NIST digits were "size normalized to fit in a 20x20 pixel
box while preserving their aspect ratio", which left grey levels from the
anti-aliasing, and then "centered in a 28x28 image by computing the center
of mass of the pixels, and translating the image so as to position this
point at the center of the 28x28 field". A network trained on MNIST has
only ever seen digits prepared this way; a digit drawn on a web page, fed
in as a plain 28x28 thumbnail, is usually too big, too thin or off-centre
for it. :func:`mnist_preprocess` repeats the three steps:

1. crop the drawing to the bounding box of its ink;
2. resize the box so that its longer side is 20 pixels, keeping the aspect
   ratio; shrinking averages the covered area of each new pixel (the
   anti-aliasing that produced MNIST's grey edges);
3. paste it into a blank 28x28 field so that its centre of mass lands on
   the field's centre, moving it by whole pixels.

Measured on the 10,000 MNIST test images, the centre of mass of every one
lies within half a pixel of row 14, column 14 (rows and columns counted
from 0): the digits were moved by whole pixels to bring it to (14, 14).
Step 3 does the same, so an MNIST image scaled up and moved about comes
back as itself (``tests/test_preprocess.py``).

Images here are 2-D float arrays of ink in ``[0, 1]`` (0 = background,
1 = full ink), as in :mod:`nndl.data.mnist` once reshaped to 28x28.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from PIL import Image

from ..errors import ConfigError

FIT = 20  #: the longer side of the digit's box after resizing
FIELD = 28  #: the side of the output image
CENTRE = FIELD / 2  #: where MNIST puts the centre of mass (row and column)


class Preprocessed(NamedTuple):
    """The steps of :func:`mnist_preprocess`.

    Attributes:
        box: ``(top, bottom, left, right)``, the ink's bounding box in the
            input (half-open: rows ``top:bottom``, columns ``left:right``).
        fitted: ``(h, w)`` with ``max(h, w) == 20``, the box resized.
        image: ``(28, 28)``, the fitted digit centred by its centre of mass:
            what the network sees (``image.reshape(784)``).
    """

    box: tuple[int, int, int, int]
    fitted: np.ndarray
    image: np.ndarray


def bounding_box(image: np.ndarray, threshold: float = 0.0) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` of the pixels brighter than ``threshold``
    (half-open). Raises ConfigError for an image with no such pixel."""
    ink = np.asarray(image) > threshold
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if rows.size == 0:
        raise ConfigError("the image is blank: there is no digit to find")
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def fit_into_box(digit: np.ndarray, size: int = FIT) -> np.ndarray:
    """Resize ``digit`` ``(h, w)`` so that its longer side is ``size``,
    keeping the aspect ratio (the shorter side rounds, at least 1 pixel).

    Shrinking averages the input area each output pixel covers (Pillow's box
    filter): a pixel half covered by ink becomes 0.5, as in MNIST's edges.
    Enlarging a digit smaller than the box interpolates bilinearly.
    """
    h, w = digit.shape
    scale = size / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    resample = Image.Resampling.BOX if scale <= 1 else Image.Resampling.BILINEAR
    resized = Image.fromarray(np.ascontiguousarray(digit, dtype=np.float32)).resize((new_w, new_h), resample)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    """``(row, column)`` of the ink-weighted mean pixel position."""
    total = image.sum()
    rows = np.arange(image.shape[0]) @ image.sum(axis=1) / total
    cols = np.arange(image.shape[1]) @ image.sum(axis=0) / total
    return float(rows), float(cols)


def centre_by_mass(digit: np.ndarray, field: int = FIELD) -> np.ndarray:
    """Paste ``digit`` ``(h, w)`` (``h, w <= field``) into a blank
    ``(field, field)`` image, moved by whole pixels so that its centre of
    mass is as near ``(field / 2, field / 2)`` as the digit allows while
    staying wholly inside the field."""
    h, w = digit.shape
    if h > field or w > field:
        raise ConfigError(f"a {h}x{w} digit does not fit into a {field}x{field} field")
    row, col = centre_of_mass(digit)
    # floor(x + 0.5) rounds halves up, as the MNIST data suggests (np.round would round them to even)
    top = int(np.clip(np.floor(field / 2 - row + 0.5), 0, field - h))
    left = int(np.clip(np.floor(field / 2 - col + 0.5), 0, field - w))
    out = np.zeros((field, field), dtype=np.float32)
    out[top:top + h, left:left + w] = digit
    return out


def mnist_preprocess(image, threshold: float = 0.0) -> Preprocessed:
    """Prepare a drawn digit as MNIST's were (see the module docstring).

    Args:
        image: ``(H, W)`` ink values in ``[0, 1]``, any size, the digit
            anywhere in it.
        threshold: pixels brighter than this count as ink for the bounding box.

    Returns:
        :class:`Preprocessed`; ``.image.reshape(784)`` is the network input.

    Raises:
        ConfigError: not a 2-D array of finite numbers in [0, 1], or blank.
    """
    try:
        image = np.asarray(image, dtype=np.float32)
    except (TypeError, ValueError):
        raise ConfigError("the image must be a 2-D array of numbers") from None
    if image.ndim != 2:
        raise ConfigError(f"the image must be 2-D (rows, columns), got shape {image.shape}")
    if not np.isfinite(image).all() or image.min(initial=0) < 0 or image.max(initial=0) > 1:
        raise ConfigError("image values must be finite numbers in [0, 1] (0 = background, 1 = ink)")
    top, bottom, left, right = box = bounding_box(image, threshold)
    fitted = fit_into_box(image[top:bottom, left:right])
    if fitted.sum() == 0:  # ink too faint to survive the resize
        raise ConfigError("the image is blank after resizing: draw with more ink")
    return Preprocessed(box, fitted, centre_by_mass(fitted))
