"""Exceptions raised by nndl.

Every error a user can cause derives from :class:`NNDLError`; the command
line prints its message and exits non-zero instead of showing a traceback.
"""


class NNDLError(Exception):
    """Base class of every error nndl raises on bad input."""


class ConfigError(NNDLError, ValueError):
    """A bad hyper-parameter, option value, layer spec or shape."""


class DataError(NNDLError):
    """Data files missing, corrupt, unverifiable or of the wrong kind."""


class ModelFileError(NNDLError):
    """A saved model file that cannot be read or does not describe a network."""


class HistoryError(NNDLError):
    """A history or results file that cannot be read or is not nndl's."""


class CheckpointError(NNDLError):
    """A checkpoint folder that cannot be read, written or resumed."""


class DivergedError(NNDLError):
    """Training produced a non-finite cost or weight, or weights blown up far
    beyond any healthy network's (see :class:`nndl.training.Trainer`).

    ``epoch`` is the epoch in which it happened, ``quantity`` what diverged
    (e.g. ``"weights of layer 0"``, ``"validation cost"``)."""

    def __init__(self, message: str, epoch: int | None = None, quantity: str | None = None) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.quantity = quantity


class OutputError(NNDLError, OSError):
    """A file nndl was asked to write cannot be written: its folder is
    missing or read-only, the path is a folder, or the disk is full. The
    existing file at that path, if any, is left unchanged. (Also an
    ``OSError``, which is what it is underneath.)"""


def positive_int(value, what: str) -> int:
    """``value`` as an int if it is an integer >= 1 (not a bool), else
    ConfigError("<what> must be a positive integer, got <value>")."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def path_arg(value, what: str):
    """``value`` as a :class:`pathlib.Path` if it is a str or path-like, else
    ConfigError("<what> must be a file path, got <value>")."""
    import os
    from pathlib import Path

    if isinstance(value, (str, os.PathLike)) and str(value):
        return Path(value)
    raise ConfigError(f"{what} must be a file path, got {value!r}")


def shape_tuple(value, what: str) -> tuple[int, ...]:
    """``value`` (an int or a sequence of ints) as a tuple of positive ints, else
    ConfigError("<what> must be one or more positive integers, got <value>")."""
    import numbers

    items = (value,) if isinstance(value, numbers.Integral) else value
    try:
        items = tuple(items)
    except TypeError:
        items = None
    if (not items or isinstance(value, (str, bytes))
            or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1 for s in items)):
        raise ConfigError(f"{what} must be one or more positive integers, got {value!r}")
    return tuple(int(s) for s in items)
