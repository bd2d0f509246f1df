"""mnist_average_darkness
~~~~~~~~~~~~~~~~~~~~~~

A naive classifier for recognizing handwritten digits from the MNIST data
set, the book's first baseline: it classifies a digit by how dark the image
is, returning whichever digit had the closest average darkness in the
training data. On the book's split it gets 2,225 of the 10,000 test images
right.

Same API as the book's module (``main``, ``avg_darknesses``,
``guess_digit``), plus :func:`count_correct`, the whole test run as a few
array operations instead of a Python loop over images.

The darkness of an image is the sum of its pixels. With MNIST's pixels
(multiples of 1/256) these sums, and the float64 averages, are exact, so the
result does not depend on the order of summation.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from ..errors import ConfigError

__all__ = ["main", "avg_darknesses", "guess_digit", "count_correct"]


def main(data_dir=None):
    """Train on the training set, classify the test set, print the book's lines."""
    from .baselines import run_darkness

    num_correct, total = run_darkness(data_dir)
    print("Baseline classifier using average darkness of image.")
    print("{0} of {1} values correct.".format(num_correct, total))


def _images_labels(data, what):
    try:
        images, digits = data
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be an (images, digits) pair as mnist_loader.load_data() returns") from None
    images = np.asarray(images)
    digits = np.asarray(digits)
    if images.ndim != 2 or digits.ndim != 1 or len(images) != len(digits):
        raise ConfigError(f"{what}: expected images (n, 784) and digits (n,), got shapes "
                          f"{images.shape} and {digits.shape}")
    if digits.dtype.kind not in "iu":
        raise ConfigError(f"{what}: digits must be integers, got dtype {digits.dtype}")
    if not len(digits):
        raise ConfigError(f"{what} is empty")
    if digits.min() < 0:
        raise ConfigError(f"{what}: digits must be >= 0, got {digits.min()}")
    return images, digits


def avg_darknesses(training_data):
    """Return a defaultdict whose keys are the digits in the training data and
    whose values are the average darkness (sum of pixels) of their images."""
    images, digits = _images_labels(training_data, "training_data")
    darkness = images.sum(axis=1, dtype=np.float64)
    present, first = np.unique(digits, return_index=True)
    sums = np.bincount(digits, weights=darkness)
    counts = np.bincount(digits)
    avgs = defaultdict(float)
    # keys in order of first appearance, like the book's loop
    for d in present[np.argsort(first)]:
        avgs[int(d)] = float(sums[d] / counts[d])
    return avgs


def guess_digit(image, avgs):
    """Return the digit whose average darkness in the training data is closest
    to the darkness of ``image``."""
    darkness = float(np.sum(image, dtype=np.float64))
    distances = {k: abs(v - darkness) for k, v in avgs.items()}
    return min(distances, key=distances.get)


def count_correct(training_data, test_data):
    """Number of test images whose guessed digit is right: the book's
    ``main`` as array operations. Both arguments are ``(images, digits)``."""
    avgs = avg_darknesses(training_data)
    images, digits = _images_labels(test_data, "test_data")
    keys = np.array(list(avgs.keys()))
    values = np.array(list(avgs.values()))
    darkness = images.sum(axis=1, dtype=np.float64)
    # argmin picks the first minimum in key order, as min() over the dict does
    guesses = keys[np.argmin(np.abs(values[None, :] - darkness[:, None]), axis=1)]
    return int(np.sum(guesses == digits))


if __name__ == "__main__":
    main()
