"""expand_mnist.py
~~~~~~~~~~~~~~~~~~

Take the 50,000 MNIST training images, and create an expanded set of
250,000 images, by displacing each training image up, down, left and right,
by one pixel (chapter 6). The result is saved as ``mnist_expanded.pkl.gz``
in the book's pickle format, in the data folder (:func:`nndl.data.resolve_data_dir`),
where ``mnist_loader.load_data("mnist_expanded.pkl.gz")`` and
``network3.load_data_shared("mnist_expanded.pkl.gz")`` find it (the book's
relative path ``"../data/mnist_expanded.pkl.gz"`` works too: the loaders
look for the file's name in the data folder).

Run it with ``python -m nndl.book.expand_mnist``.

Differences from the book's script: the shifts are array slices over all
images at once (no loop over images); the shuffle uses a seeded NumPy
generator (the book used ``random.shuffle`` unseeded), so the file is the
same on every run; the pixels are shifted as bytes (uint8), which is exact
because MNIST's pixels are multiples of 1/256, and converted back to
float32 at the end; and the file is written atomically. The shifting is
:mod:`nndl.data.augment`'s, which ``nndl train --expand`` uses too.
"""

from __future__ import annotations

import numpy as np

from ..data import Dataset, MnistSplits, load_mnist, resolve_data_dir, save_book_pickle
from ..data import augment as _augment
from ..errors import ConfigError

__all__ = ["EXPANDED_FILE", "shift_images", "expand", "main"]

EXPANDED_FILE = "mnist_expanded.pkl.gz"


def shift_images(images: np.ndarray) -> np.ndarray:
    """Each image followed by its four one-pixel displacements.

    Args:
        images: ``(N, 28, 28)`` (any dtype).

    Returns:
        ``(N, 5, 28, 28)``: the image, then shifted down, up, right and left
        by one pixel with the vacated row/column set to 0 -- the book's
        ``np.roll(image, d, axis)`` followed by zeroing the wrapped line, in
        the book's order. The work is :func:`nndl.data.augment.shift_images`'s.
    """
    images = np.asarray(images)
    if images.ndim != 3:
        raise ConfigError(f"shift_images expects images of shape (N, height, width), got {images.shape}")
    return _augment.shift_images(images, ((0, 0),) + _augment.BOOK_SHIFTS)


def expand(training_data, *, seed=0, shuffle=True, dtype=np.float32) -> Dataset:
    """The expanded training set: every image and its four one-pixel shifts.

    Args:
        training_data: a :class:`nndl.data.Dataset` or an ``(x, y)`` pair as
            ``mnist_loader.load_data()`` returns; x is ``(N, 784)`` pixels
            ``byte / 256``.
        seed: seed of the NumPy generator that shuffles the 5N images
            (same seed, same order); ignored without ``shuffle``.
        shuffle: shuffle (as the book does); without it the order is image 0
            and its four shifts, image 1 and its shifts, ...
        dtype: float type of the result.

    Returns:
        A Dataset of ``5 N`` images ``(5N, 784)`` and labels ``(5N,)``; the
        work is :func:`nndl.data.augment.expand_with_shifts`'s.
    """
    try:
        x, y = training_data.x, training_data.y
    except AttributeError:
        try:
            x, y = training_data
        except (TypeError, ValueError):
            raise ConfigError("training_data must be a Dataset or an (x, y) pair") from None
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 2 or x.shape[1] != 784:
        raise ConfigError(f"expand needs 28x28 images as rows of 784 pixels, got shape {x.shape}")
    if y.shape != (len(x),):
        raise ConfigError(f"expand needs one label per image: {len(x)} images but labels of shape {y.shape}")
    scaled = x * 256
    if scaled.size and scaled.min() >= 0 and scaled.max() <= 255 and np.array_equal(np.rint(scaled), scaled):
        # MNIST's pixels are multiples of 1/256: shift them as bytes (a quarter of the memory)
        b, labels = _augment.expand_with_shifts(x, y, rng=seed, shuffle=shuffle)
        return Dataset(_augment.from_bytes(b, dtype), labels)
    shifted = shift_images(x.reshape(-1, 28, 28)).reshape(-1, 784)
    labels = np.repeat(y, 5)
    if shuffle:
        order = np.random.default_rng(seed).permutation(len(labels))
        shifted, labels = shifted[order], labels[order]
    return Dataset(shifted.astype(dtype), labels)


def main(data_dir=None, *, seed=0, force=False):
    """Write ``mnist_expanded.pkl.gz`` (expanded training set, validation and
    test sets) into the data folder, printing the book's messages. Does
    nothing if the file exists, unless ``force``. Returns its path."""
    print("Expanding the MNIST training set")
    path = resolve_data_dir(data_dir) / EXPANDED_FILE
    if path.exists() and not force:
        print("The expanded training set already exists.  Exiting.")
        return path
    splits = load_mnist(data_dir)
    expanded = expand(splits.training, seed=seed)
    print("Saving expanded data. This may take a few minutes.")
    save_book_pickle(MnistSplits(expanded, splits.validation, splits.test), path)
    return path


if __name__ == "__main__":
    main()
