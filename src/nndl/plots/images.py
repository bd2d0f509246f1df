"""Digits as pictures: a grid of images with captions (the book's chapter 1
samples, chapter 6's misclassified digits), and the confusion matrix."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from ..errors import ConfigError
from ..predictions import Mistakes

SIDE = 28  # MNIST images are 28x28


def _as_images(images) -> np.ndarray:
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 2 and images.shape[1] == SIDE * SIDE:
        images = images.reshape(-1, SIDE, SIDE)
    if images.ndim != 3:
        raise ConfigError(f"expected images of shape (n, 784) or (n, h, w), got {images.shape}")
    return images


def digit_grid(images, captions: Sequence[str] | None = None, *, ncols: int = 10,
               title: str | None = None, highlight: Sequence[bool] | None = None,
               cell: float = 0.9) -> Figure:
    """Images in rows of ``ncols``, dark ink on white as in the book's figures.

    Args:
        images: ``(n, 784)`` or ``(n, h, w)`` ink values in ``[0, 1]``.
        captions: ``n`` strings shown under the images (e.g. ``"7 → 2"``).
        ncols: images per row.
        title: a line above the grid.
        highlight: ``n`` flags; flagged captions are drawn in red.
        cell: inches per image.

    Returns:
        The Figure (nothing is shown; ``fig.savefig("grid.png")`` saves it).
    """
    images = _as_images(images)
    n = len(images)
    for name, seq in (("captions", captions), ("highlight", highlight)):
        if seq is not None and len(seq) != n:
            raise ConfigError(f"{n} images but {len(seq)} {name}")
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    caption_space = 0.3 if captions is not None else 0.05
    fig = Figure(figsize=(ncols * cell, nrows * (cell + caption_space) + (0.4 if title else 0.1)),
                 layout="constrained")
    if title:
        fig.suptitle(title)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= n:
            continue
        ax.imshow(images[i], cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
        if captions is not None:
            red = highlight is not None and highlight[i]
            ax.set_title(captions[i], fontsize=8, color="tab:red" if red else "black", pad=2)
    return fig


def mistakes_figure(mistakes: Mistakes, images, *, limit: int | None = 100, ncols: int = 10,
                    true: int | None = None, predicted: int | None = None) -> Figure:
    """The misclassified images as a grid captioned ``true → predicted`` and
    the network's confidence in its (wrong) answer.

    Args:
        mistakes: from :func:`nndl.predictions.find_mistakes`.
        images: the whole data set the mistakes index into, ``(N, 784)``.
        limit: draw at most this many (the first ones); None for all.
        true, predicted: keep only mistakes with this true / predicted digit.
    """
    chosen = mistakes.select(true, predicted)
    shown = chosen[:limit] if limit is not None else chosen
    images = _as_images(images)
    captions = [f"{mistakes.true[i]} → {mistakes.predicted[i]} {mistakes.confidence[i]:.0%}" for i in shown]
    which = "" if true is None and predicted is None else (
        " (" + ", ".join(f"{k} {v}" for k, v in (("true", true), ("predicted", predicted)) if v is not None) + ")")
    title = (f"{len(mistakes)} of {mistakes.total} misclassified{which}"
             + (f": the first {len(shown)} of {len(chosen)}" if len(shown) < len(chosen) else "")
             + "; caption: true → predicted, confidence")
    if len(shown) == 0:
        fig = Figure(figsize=(6, 1))
        fig.text(0.5, 0.5, title.split(";")[0] + ": nothing to show", ha="center", va="center")
        return fig
    return digit_grid(images[mistakes.indices[shown]], captions, ncols=ncols, title=title)


def confusion_matrix_figure(confusion, *, title: str | None = None, size: float = 5.5) -> Figure:
    """The confusion matrix ``(10, 10)`` (row = true digit, column =
    predicted digit) as a heat map with the counts written in each cell."""
    from sklearn.metrics import ConfusionMatrixDisplay

    confusion = np.asarray(confusion)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ConfigError(f"a confusion matrix is square, got shape {confusion.shape}")
    fig = Figure(figsize=(size, size), layout="constrained")
    ax = fig.add_subplot()
    ConfusionMatrixDisplay(confusion).plot(ax=ax, cmap="Blues", colorbar=False, values_format="d")
    for text in ax.texts:
        text.set_fontsize(7)
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    correct = int(np.trace(confusion))
    ax.set_title(title or f"{correct} / {int(confusion.sum())} correct")
    return fig
