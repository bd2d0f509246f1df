"""nndl: the code of Michael Nielsen's *Neural Networks and Deep Learning*
as a modern, fast, from-scratch NumPy library."""

from . import activations, callbacks, costs, initializers, layers, regularizers
from .errors import CheckpointError, ConfigError, DataError, DivergedError, ModelFileError, NNDLError
from .history import History
from .io import load, save
from .layers import Dense
from .network import Network
from .optimizers import SGD
from .regularizers import L1, L2
from .training import Trainer, train

__version__ = "0.1.0"

__all__ = [
    "activations", "callbacks", "costs", "initializers", "layers", "regularizers",
    "CheckpointError", "ConfigError", "DataError", "DivergedError", "ModelFileError", "NNDLError", "History", "load", "save",
    "Dense", "Network", "SGD", "L1", "L2", "Trainer", "train",
]
