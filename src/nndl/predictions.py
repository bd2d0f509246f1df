"""What a trained network says about images: its probabilities, and the
images it gets wrong (the book's chapter 6 shows the 33 its best network
misses). Used by ``nndl mistakes``, ``nndl serve`` and :mod:`nndl.plots`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ConfigError
from .network import Network

N_CLASSES = 10


def check_mnist_network(network: Network, name: str = "the network") -> None:
    """ConfigError unless ``network`` takes 784 pixels and gives 10 outputs."""
    if int(np.prod(network.input_shape)) != 784 or network.output_shape != (N_CLASSES,):
        raise ConfigError(f"{name} takes inputs {network.input_shape} and gives {network.output_shape[0]} "
                          "outputs; MNIST needs 784 inputs and 10 outputs")


def probabilities(network: Network, x: np.ndarray) -> tuple[np.ndarray, bool]:
    """The network's outputs for images ``x`` ``(N, 784)`` as probabilities.

    A softmax output layer (book ch. 3) gives a probability distribution as
    it is. The book's other networks end in independent sigmoid neurons
    whose activations need not sum to 1; they are divided by their sum, which
    keeps the order (the predicted digit) and reads as "share of the total
    activation". Outputs that can be negative (tanh, linear) go through a
    softmax.

    Returns:
        ``(p, rescaled)``: ``p`` ``(N, 10)`` with rows summing to 1, and
        whether the outputs had to be rescaled to get there.
    """
    x = np.asarray(x).reshape((len(x),) + network.input_shape)
    a = network.feedforward(x).astype(np.float64)
    if network.layers[-1].activation.name == "softmax":
        return a / a.sum(axis=1, keepdims=True), False
    if (a >= 0).all() and (a.sum(axis=1) > 0).all():
        return a / a.sum(axis=1, keepdims=True), True
    e = np.exp(a - a.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True), True


@dataclass(frozen=True)
class Mistakes:
    """The images of a data set that a network misclassifies.

    Attributes:
        indices: ``(k,)`` positions of the misclassified images, ascending.
        true: ``(k,)`` their labels.
        predicted: ``(k,)`` the network's answers (the most active output).
        confidence: ``(k,)`` the probability the network gave its answer
            (see :func:`probabilities`).
        confusion: ``(10, 10)`` counts over the whole set: row = true digit,
            column = predicted digit; the diagonal is what it got right.
        total: the number of images in the set.
    """

    indices: np.ndarray
    true: np.ndarray
    predicted: np.ndarray
    confidence: np.ndarray
    confusion: np.ndarray
    total: int

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def correct(self) -> int:
        """Images classified correctly (what ``Network.accuracy`` counts)."""
        return self.total - len(self.indices)

    def select(self, true: int | None = None, predicted: int | None = None) -> np.ndarray:
        """Positions in this list (not in the data set) of the mistakes with
        that true and/or predicted digit."""
        keep = np.ones(len(self.indices), dtype=bool)
        if true is not None:
            keep &= self.true == true
        if predicted is not None:
            keep &= self.predicted == predicted
        return np.flatnonzero(keep)


def find_mistakes(network: Network, x: np.ndarray, y: np.ndarray) -> Mistakes:
    """The images among ``x`` ``(N, 784)``, labels ``y`` ``(N,)``, that
    ``network`` classifies wrongly, with the confusion matrix."""
    from sklearn.metrics import confusion_matrix

    y = np.asarray(y)
    if len(x) != len(y):
        raise ConfigError(f"{len(x)} images but {len(y)} labels")
    p, _ = probabilities(network, x)
    predicted = p.argmax(axis=1)  # the same argmax as Network.predict: rescaling keeps the order
    wrong = np.flatnonzero(predicted != y)
    return Mistakes(
        indices=wrong,
        true=y[wrong],
        predicted=predicted[wrong],
        confidence=p[wrong, predicted[wrong]],
        confusion=confusion_matrix(y, predicted, labels=np.arange(N_CLASSES)),
        total=len(y),
    )
