"""mnist_svm
~~~~~~~~~

A classifier program for recognizing handwritten digits from the MNIST data
set, using an SVM classifier: the book's second baseline (scikit-learn's
``svm.SVC`` with its default settings, trained on the 50,000 training images
and tested on the 10,000 test images).

Scikit-learn's defaults have changed since the book: SVC's kernel width
``gamma`` was ``'auto'`` (1 / n_features) then and is ``'scale'``
(1 / (n_features * X.var())) now. The book reports 9,435 of 10,000 with the
old setting; ``gamma="auto"`` reproduces it, the default ``"scale"`` is
today's (about 98%). The figures measured with nndl are in
``docs/book-compat.md``.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..errors import ConfigError

__all__ = ["svm_baseline", "svm_correct", "check_gamma", "check_svm_data"]


def check_gamma(gamma):
    """``"scale"``, ``"auto"`` or a positive number; anything else is a ConfigError."""
    if gamma in ("scale", "auto"):
        return gamma
    if isinstance(gamma, numbers.Real) and not isinstance(gamma, bool) and gamma > 0 and np.isfinite(gamma):
        return float(gamma)
    raise ConfigError(f"gamma must be 'scale' (today's scikit-learn default), 'auto' (the book's era) "
                      f"or a positive number, got {gamma!r}")


def svm_correct(training_data, test_data, gamma="scale"):
    """Fit ``svm.SVC(gamma=gamma)`` on ``training_data`` and return how many
    of ``test_data`` it classifies correctly; both are ``(images, digits)``."""
    from sklearn import svm

    gamma = check_gamma(gamma)
    check_svm_data(training_data, test_data)
    clf = svm.SVC(gamma=gamma)
    clf.fit(np.asarray(training_data[0]), np.asarray(training_data[1]))
    predictions = clf.predict(np.asarray(test_data[0]))
    return int(np.sum(predictions.astype(np.int64) == np.asarray(test_data[1])))


def check_svm_data(training_data, test_data):
    """ConfigError unless both sets are non-empty ``(images, digits)`` pairs and
    the training set holds at least two different digits (an SVM separates
    classes: with one there is nothing to learn)."""
    for data, what in ((training_data, "training"), (test_data, "test")):
        try:
            n = len(data[1])
        except (TypeError, IndexError, KeyError):
            raise ConfigError(f"{what}_data must be an (images, digits) pair") from None
        if n == 0:
            raise ConfigError(f"the {what} set is empty")
    digits = np.unique(np.asarray(training_data[1]))
    if len(digits) < 2:
        raise ConfigError(f"an SVM needs training images of at least two different digits; the "
                          f"{len(training_data[1])} training image(s) given are all {digits[0]}s: use more")


def svm_baseline(gamma="scale", n_train=None, n_test=None, *, data_dir=None):
    """Train and test the SVM and print the book's two lines.

    Args:
        gamma: ``"scale"`` (today's default), ``"auto"`` (the book's) or a number.
        n_train, n_test: use only the first images of each set (default: all
            50,000 / 10,000; the full run takes several minutes).
        data_dir: the MNIST folder (default ``$NNDL_DATA`` or the user cache).
    """
    from .baselines import run_svm

    num_correct, total = run_svm(data_dir, gamma=gamma, n_train=n_train, n_test=n_test)
    print("Baseline classifier using an SVM.")
    print(str(num_correct) + " of " + str(total) + " values correct.")


if __name__ == "__main__":
    svm_baseline()
