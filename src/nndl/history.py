"""Per-epoch metrics of a training run, and the run that produced them.

Saved as a JSON object whose lists hold one value per epoch
(``"test_accuracy": [0.91, 0.93, ...]``), plus, when the run is known, a
``"run"`` object: the run configuration (see :mod:`nndl.config`), the nndl and
NumPy versions, the wall time and why training stopped. Non-finite numbers
(a diverged cost) are written as ``null``, so the file stays valid JSON.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from .callbacks import Callback
from .errors import HistoryError, NNDLError
from .fileio import atomic_write_text

#: the keys a history may hold, besides ``epoch_seconds``
METRIC_KEYS = ("test_accuracy", "test_cost", "validation_accuracy", "validation_cost",
               "training_accuracy", "training_cost")

#: keys whose lists are not one value per epoch
NOT_PER_EPOCH = ("gradients",)

#: the largest history file read (a history of 10,000 epochs is ~2 MB)
MAX_BYTES = 64 * 1024 * 1024


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    return value


class History(Callback):
    """Lists of per-epoch values: ``history["test_accuracy"][epoch]``.

    As a callback it appends each epoch's logs (the trainer adds one unless
    given one). Accuracies are fractions in [0, 1]; ``epoch_seconds`` is the
    training time of each epoch (evaluation excluded); ``eta`` the learning
    rate used. ``gradients`` (from :class:`~nndl.callbacks.GradientRecorder`)
    is a list of records, not per-epoch. ``run`` describes the run that
    produced it (configuration, versions, wall time), when known.
    """

    def __init__(self, data: dict[str, list] | None = None, run: dict | None = None) -> None:
        if data is not None and not isinstance(data, dict) or run is not None and not isinstance(run, dict):
            raise HistoryError("History(data, run) takes dicts: {metric: [per-epoch values]} and run information")
        self.data: dict[str, list] = {k: list(v) for k, v in (data or {}).items()}
        self.data.setdefault("epoch_seconds", [])
        self.run: dict = dict(run or {})

    # -- as a callback ----------------------------------------------------------------
    def on_epoch_end(self, trainer, epoch, logs):
        self.append({k: v for k, v in logs.items() if not k.endswith(("_correct", "_total"))})

    def append(self, logs: dict[str, float]) -> None:
        """Add one epoch; a metric not evaluated this epoch gets ``None``."""
        n = self.epochs
        for key, value in logs.items():
            values = self.data.setdefault(key, [])
            values.extend([None] * (n - len(values)))
            values.append(value)
        for key, values in self.data.items():
            if key not in logs and key not in NOT_PER_EPOCH and len(values) == n:
                values.append(None)

    def truncate(self, epochs: int) -> None:
        """Keep only the first ``epochs`` epochs (and the gradient records taken
        up to the end of the last one kept)."""
        for key, values in self.data.items():
            if key == "gradients":
                values[:] = [r for r in values if r["epoch"] < epochs or (r["epoch"] == epochs and r["batch"] == 0)]
            elif key not in NOT_PER_EPOCH:
                del values[epochs:]

    # -- state, for checkpoints -------------------------------------------------------
    def state_dict(self) -> dict:
        """The per-epoch lists and the run description, as they are (not-evaluated
        epochs stay ``None``)."""
        return {"data": {k: list(v) for k, v in self.data.items()}, "run": dict(self.run)}

    def load_state_dict(self, state: dict) -> None:
        data, run = state["data"], state["run"]
        if (not isinstance(data, dict) or not isinstance(run, dict) or "epoch_seconds" not in data
                or not all(isinstance(v, list) for v in data.values())):
            raise HistoryError("not a history state (per-epoch lists with epoch_seconds, and a run object)")
        n = len(data["epoch_seconds"])
        uneven = [k for k, v in data.items() if k not in NOT_PER_EPOCH and len(v) != n]
        if uneven:
            raise HistoryError(f"history lists {uneven} do not have one value for each of the {n} epochs")
        self.data = {k: list(v) for k, v in data.items()}
        self.run = dict(run)

    # -- reading ----------------------------------------------------------------------
    def __getitem__(self, key: str) -> list:
        try:
            return self.data[key]
        except (KeyError, TypeError):
            raise HistoryError(f"the history has no {key!r}; it has: {', '.join(sorted(self.data))}") from None

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def keys(self):
        return self.data.keys()

    @property
    def epochs(self) -> int:
        return len(self.data["epoch_seconds"])

    @property
    def config(self) -> dict | None:
        """The run configuration (a dict, as :meth:`nndl.config.RunConfig.to_dict` gives), if recorded."""
        return self.run.get("config")

    def best(self, key: str) -> tuple[int, float]:
        """(epoch, value) of the highest finite value of ``key``."""
        values = self[key]
        finite = [i for i, v in enumerate(values) if v is not None and math.isfinite(v)]
        if not finite:
            raise NNDLError(f"the history has no finite {key} values")
        i = max(finite, key=values.__getitem__)
        return i, values[i]

    # -- files ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        out: dict = dict(self.data)
        if self.run:
            out["run"] = self.run
        return _finite_or_none(out)

    def to_json(self, path) -> None:
        """Write atomically: a reader never sees a half-written file."""
        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n")

    @classmethod
    def from_dict(cls, data, where: str = "the history") -> "History":
        if not isinstance(data, dict):
            raise HistoryError(f"{where} is not an nndl history (a JSON object of per-epoch lists)")
        run = data.get("run", {})
        lists = {k: v for k, v in data.items() if k != "run"}
        if (not isinstance(run, dict) or "epoch_seconds" not in lists
                or not all(isinstance(v, list) for v in lists.values())):
            raise HistoryError(f"{where} is not an nndl history (a JSON object of per-epoch lists "
                               "with epoch_seconds, as nndl train --history writes)")
        for key, values in lists.items():
            if key in METRIC_KEYS + ("epoch_seconds", "eta") and not all(
                    v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values):
                raise HistoryError(f"{where}: {key!r} must be a list of numbers")
        history = cls(lists, run)
        history.data = {k: [math.nan if v is None and k in METRIC_KEYS else v for v in vs]
                        for k, vs in history.data.items()}
        return history

    @classmethod
    def from_json(cls, path) -> "History":
        path = Path(path)
        try:
            if not path.is_file():
                raise HistoryError(f"cannot read history {path}: "
                                   + ("it is a folder" if path.is_dir() else "no such file"))
            if path.stat().st_size > MAX_BYTES:
                raise HistoryError(f"{path} is larger than {MAX_BYTES >> 20} MB; not an nndl history")
            data = json.loads(path.read_text(encoding="utf-8"))
        except HistoryError:
            raise
        except (OSError, ValueError, RecursionError) as e:
            raise HistoryError(f"cannot read history {path}: {e}") from None
        return cls.from_dict(data, str(path))

    def __repr__(self) -> str:
        return f"History(epochs={self.epochs}, keys={sorted(self.data)})"
