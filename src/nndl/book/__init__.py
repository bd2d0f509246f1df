"""The book's own modules, on the nndl engine.

Every code sample of *Neural Networks and Deep Learning* runs with only its
imports changed::

    from nndl.book import mnist_loader, network, network2, network3

Modules: :mod:`~nndl.book.network` (chapter 1), :mod:`~nndl.book.network2`
(chapter 3), :mod:`~nndl.book.network3` (chapter 6, without Theano),
:mod:`~nndl.book.mnist_loader`, :mod:`~nndl.book.expand_mnist`,
:mod:`~nndl.book.mnist_average_darkness`, :mod:`~nndl.book.mnist_svm`, and
:mod:`~nndl.book.baselines` (the baselines as functions, for the command
line). The submodules are imported on first use, so ``import nndl.book`` is
cheap. Where these modules depart from the book's code, and why, is listed in
``docs/book-compat.md``.
"""

from __future__ import annotations

import importlib

_MODULES = ("network", "network2", "network3", "mnist_loader", "expand_mnist",
            "mnist_average_darkness", "mnist_svm", "baselines")

__all__ = list(_MODULES)


def __getattr__(name: str):
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
