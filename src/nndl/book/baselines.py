"""The book's two baselines as functions that return numbers (no printing),
for the command line (``nndl baseline darkness|svm``) and for scripts.

* :func:`run_darkness`: the average-darkness classifier, 2,225 of 10,000 on
  the book's split.
* :func:`run_svm`: scikit-learn's SVC; ``gamma="scale"`` is today's default,
  ``gamma="auto"`` the book's era (9,435 of 10,000 in the book).
"""

from __future__ import annotations

from ..errors import ConfigError, positive_int

__all__ = ["run_darkness", "run_svm"]


def _load(data_dir):
    from .mnist_loader import load_data

    training_data, _validation_data, test_data = load_data(data_dir=data_dir)
    return training_data, test_data


def _first(data, n, what):
    if n is None:
        return data
    positive_int(n, what)
    if n > len(data[1]):
        raise ConfigError(f"{what} is {n}, but the set has only {len(data[1])} images")
    return (data[0][:n], data[1][:n])


def run_darkness(data_dir=None) -> tuple[int, int]:
    """Average-darkness baseline on the book's split: ``(correct, total)``."""
    from .mnist_average_darkness import count_correct

    training_data, test_data = _load(data_dir)
    return count_correct(training_data, test_data), len(test_data[1])


def run_svm(data_dir=None, gamma="scale", n_train=None, n_test=None, *, on_fit=None) -> tuple[int, int]:
    """SVM baseline: fit on the first ``n_train`` training images (default all
    50,000), test on the first ``n_test`` test images (default all 10,000);
    returns ``(correct, total)``. ``on_fit()``, if given, is called once the
    data is loaded and checked, before the fit (which takes minutes)."""
    from .mnist_svm import check_gamma, check_svm_data, svm_correct

    check_gamma(gamma)
    training_data, test_data = _load(data_dir)
    training_data = _first(training_data, n_train, "n_train")
    test_data = _first(test_data, n_test, "n_test")
    check_svm_data(training_data, test_data)
    if on_fit is not None:
        on_fit()
    return svm_correct(training_data, test_data, gamma), len(test_data[1])
