"""Per-epoch metrics of a training run, saved as a flat JSON object."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import NNDLError
from .fileio import atomic_write_text

#: the keys a history may hold, besides ``epoch_seconds``
METRIC_KEYS = ("test_accuracy", "test_cost", "validation_accuracy", "validation_cost",
               "training_accuracy", "training_cost")


class History:
    """Lists of per-epoch values: ``history["test_accuracy"][epoch]``.

    Accuracies are fractions in [0, 1]; ``epoch_seconds`` is the training time
    of each epoch (evaluation excluded); ``eta`` the learning rate used.
    """

    def __init__(self, data: dict[str, list] | None = None) -> None:
        self.data: dict[str, list] = {k: list(v) for k, v in (data or {}).items()}
        self.data.setdefault("epoch_seconds", [])

    def append(self, logs: dict[str, float]) -> None:
        for key, value in logs.items():
            self.data.setdefault(key, []).append(value)

    def __getitem__(self, key: str) -> list:
        return self.data[key]

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def keys(self):
        return self.data.keys()

    @property
    def epochs(self) -> int:
        return len(self.data["epoch_seconds"])

    def best(self, key: str) -> tuple[int, float]:
        """(epoch, value) of the highest value of ``key``."""
        values = self.data[key]
        i = max(range(len(values)), key=values.__getitem__)
        return i, values[i]

    def to_json(self, path) -> None:
        """Write atomically: a reader never sees a half-written file."""
        atomic_write_text(Path(path), json.dumps(self.data, indent=1) + "\n")

    @classmethod
    def from_json(cls, path) -> "History":
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise NNDLError(f"cannot read history {path}: {e}") from None
        if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
            raise NNDLError(f"{path} is not an nndl history (a JSON object of per-epoch lists)")
        return cls(data)

    def __repr__(self) -> str:
        return f"History(epochs={self.epochs}, keys={sorted(self.data)})"
