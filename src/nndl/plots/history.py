"""Training curves from histories: matplotlib Figures, no pyplot state.

Every function returns a :class:`matplotlib.figure.Figure` (shown by Jupyter
when it is a cell's value) and never calls ``plt.show``; :func:`save_figure`
writes one as PNG. Nothing here needs a display.

Accuracies are stored as fractions and shown in percent, epochs start at 0
as in the book's figures.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..errors import ConfigError
from ..fileio import atomic_write

#: the book's colours (its figure scripts use these two first)
COLORS = ("#2A6EA6", "#FFA933", "#FF5555", "#55AA55", "#8855CC", "#555555", "#CC8844")

LABELS = {
    "training_cost": "Cost on the training data",
    "validation_cost": "Cost on the validation data",
    "test_cost": "Cost on the test data",
    "training_accuracy": "Accuracy (%) on the training data",
    "validation_accuracy": "Accuracy (%) on the validation data",
    "test_accuracy": "Accuracy (%) on the test data",
}


def _figure(figsize=(6.4, 4.2)) -> tuple[Figure, object]:
    fig = Figure(figsize=figsize, dpi=100, layout="constrained")
    return fig, fig.add_subplot(111)


def _values(history, key: str) -> np.ndarray:
    values = np.array([np.nan if v is None else v for v in history[key]], dtype=float)
    return values * 100 if key.endswith("_accuracy") else values


def _as_runs(histories) -> dict[str, object]:
    if isinstance(histories, Mapping):
        return dict(histories)
    if hasattr(histories, "data") and hasattr(histories, "epochs"):   # one History
        return {"": histories}
    return {f"run {i}": h for i, h in enumerate(histories)}


def plot_metrics(histories, metrics: Sequence[str] = ("test_accuracy",), *, title: str | None = None,
                 first_epoch: int = 0, log_y: bool = False) -> Figure:
    """Per-epoch curves of ``metrics`` (e.g. ``training_cost``, ``test_accuracy``)
    for one history or several (a ``{label: history}`` dict), overlaid with a legend.

    Costs and accuracies share one axis only if all metrics are of one kind;
    otherwise the accuracies go on a second y axis on the right.
    """
    runs = _as_runs(histories)
    metrics = list(metrics)
    if not metrics:
        raise ConfigError("plot_metrics needs at least one metric")
    for label, h in runs.items():
        missing = [m for m in metrics if m not in h]
        if missing:
            have = sorted(k for k in h.keys() if k.endswith(("_accuracy", "_cost")))
            raise ConfigError(f"history {label or ''} has no {', '.join(missing)} "
                              f"(it has: {', '.join(have) or 'no per-epoch metrics'})".replace("  ", " "))
    fig, ax = _figure()
    kinds = {m.rsplit("_", 1)[-1] for m in metrics}
    ax2 = ax.twinx() if kinds == {"cost", "accuracy"} else None
    lines = []
    i = 0
    for label, h in runs.items():
        for m in metrics:
            y = _values(h, m)
            x = np.arange(len(y))
            keep = x >= first_epoch
            target = ax2 if (ax2 is not None and m.endswith("_accuracy")) else ax
            name = " ".join(p for p in (label, m.replace("_", " ") if len(metrics) > 1 or not label else "") if p)
            lines += target.plot(x[keep], y[keep], "-", color=COLORS[i % len(COLORS)], label=name or m,
                                 marker="o" if keep.sum() <= 40 else None, markersize=3)
            i += 1
    ax.set_xlabel("Epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # no "epoch 0.25" on short runs
    if ax2 is not None:
        ax.set_ylabel("Cost")
        ax2.set_ylabel("Accuracy (%)")
    else:
        ax.set_ylabel(LABELS.get(metrics[0], metrics[0]) if len(metrics) == 1
                      else ("Accuracy (%)" if kinds == {"accuracy"} else "Cost"))
    if log_y:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.4)
    if len(lines) > 1:
        ax.legend(lines, [ln.get_label() for ln in lines], loc="best", fontsize="small")
    if title:
        ax.set_title(title)
    return fig


def plot_train_vs_test(history, *, title: str | None = None, first_epoch: int = 0,
                       other: str = "test_accuracy") -> Figure:
    """The book's overlay of the accuracy on the training data and on the test
    (or validation) data, epoch by epoch: the gap shows overfitting."""
    fig = plot_metrics({"": history}, ["training_accuracy", other], first_epoch=first_epoch, title=title)
    ax = fig.axes[0]
    for line, name in zip(ax.get_lines(), ("Accuracy on the training data",
                                            f"Accuracy on the {other.split('_')[0]} data")):
        line.set_label(name)
    ax.legend(loc="lower right", fontsize="small")
    ax.set_ylabel("Accuracy (%)")
    return fig


def plot_accuracy_vs_size(sizes: Sequence[int], series: Mapping[str, Sequence[float]], *, log_x: bool = False,
                          title: str | None = None, what: str = "validation") -> Figure:
    """Accuracy (fractions, shown in %) against the training-set size, one line
    per series (e.g. the network and the SVM), linear or log x axis."""
    fig, ax = _figure()
    for i, (label, acc) in enumerate(series.items()):
        ax.plot(sizes, np.asarray(acc, dtype=float) * 100, "o-", color=COLORS[i % len(COLORS)], label=label)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel("Training set size")
    ax.set_ylabel(f"Accuracy (%) on the {what} data")
    ax.grid(True, alpha=0.4)
    if len(series) > 1:
        ax.legend(loc="lower right")
    if title:
        ax.set_title(title)
    return fig


def plot_gradient_speed(history, *, hidden_only: bool = True, title: str | None = None) -> Figure:
    """Chapter 5's "speed of learning": ||dC/db^l|| of each (hidden) layer
    against the epoch, on a log axis, from ``history["gradients"]``
    (recorded by :class:`~nndl.callbacks.GradientRecorder`)."""
    if "gradients" not in history or not history["gradients"]:
        raise ConfigError("the history holds no gradient records (train with --record-gradients)")
    recs = [r for r in history["gradients"] if r["batch"] == 0]
    norms = np.array([r["bias"] for r in recs], dtype=float)
    epochs = np.array([r["epoch"] for r in recs])
    n = norms.shape[1] - 1 if hidden_only else norms.shape[1]
    fig, ax = _figure()
    for j in range(n):
        ax.plot(epochs, norms[:, j], color=COLORS[j % len(COLORS)],
                label=f"{'Hidden layer' if hidden_only else 'Layer'} {j + 1}")
    ax.set_yscale("log")
    ax.set_xlabel("Number of epochs of training")
    ax.set_ylabel(r"$\Vert \partial C / \partial b^l \Vert$")
    ax.grid(True, alpha=0.4)
    ax.legend(loc="upper right", fontsize="small")
    ax.set_title(title or f"Speed of learning: {n} hidden layers")
    return fig


def plot_layer_norms(rows: Mapping[str, Sequence[float]], *, ylabel: str = r"$\Vert \nabla C^l_w \Vert$",
                     title: str | None = None, log_y: bool = True) -> Figure:
    """One line per record (e.g. per mini-batch) of a per-layer quantity
    against the layer number l = 1, 2, ... (the book's ``backprop_magnitude_nabla``)."""
    fig, ax = _figure()
    for i, (label, values) in enumerate(rows.items()):
        ax.plot(np.arange(1, len(values) + 1), values, "o-", color=COLORS[i % len(COLORS)], label=label)
    ax.set_xlabel("Layer $l$")
    ax.set_ylabel(ylabel)
    ax.set_xticks(np.arange(1, max(len(v) for v in rows.values()) + 1))
    if log_y:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.4)
    ax.legend(loc="upper left", fontsize="small")
    if title:
        ax.set_title(title)
    return fig


def figure_png(fig: Figure, dpi: int = 80) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def save_figure(fig: Figure, path, dpi: int = 80) -> Path:
    """Write ``fig`` as a PNG file (atomically) and return the path."""
    path = Path(path)
    png = figure_png(fig, dpi)
    atomic_write(path, lambda f: f.write(png))
    return path


__all__ = ["plot_metrics", "plot_train_vs_test", "plot_accuracy_vs_size", "plot_gradient_speed",
           "plot_layer_norms", "save_figure", "figure_png", "COLORS"]
