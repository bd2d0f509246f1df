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
