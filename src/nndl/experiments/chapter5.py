"""Chapter 5: the vanishing gradient (the book's ``generate_gradient.py`` and
``backprop_magnitude_nabla.py``)."""

from __future__ import annotations

import numpy as np

from ..config import RunConfig
from ..plots import plot_gradient_speed, plot_layer_norms
from .base import BookRow, Check, Experiment, Results

#: generate_gradient.py's printed ||dC/db^l|| of the hidden layers at
#: initialisation (one run of the book's script, from the seeds)
BOOK_INITIAL_NORMS = {2: [0.0800, 0.358], 3: [0.00475, 0.0235, 0.146], 4: [0.00244, 0.0147, 0.0706, 0.282]}


def _gradient_jobs(quick, seeds):
    # generate_gradient.py: the first 1,000 training images, one mini-batch of
    # 1,000 per epoch, eta 0.1, lambda 5, network2's defaults (cross-entropy,
    # N(0, 1/n_in) weights), 500 epochs; the gradient averaged over those images.
    jobs = {}
    for depth in (2, 3, 4):
        c = RunConfig(sizes=(784,) + (30,) * depth + (10,), cost="cross-entropy", init="default", eta=0.1,
                      lmbda=5.0, train_size=1000, batch_size=1000, epochs=60 if quick else 500,
                      record_gradients=0, monitor="none")
        for s in seeds:
            jobs[f"hidden={depth}/seed={s}"] = c.replace(seed=s)
    return jobs


def _initial(h) -> list[float]:
    first = h["gradients"][0]
    assert first["epoch"] == 0 and first["batch"] == 0
    return first["bias"][:-1]   # the hidden layers


def _gradient_figures(r: Results) -> dict:
    figs = {f"training_speed_{d}_layers": plot_gradient_speed(r.history(r.labels(f"hidden={d}/")[0]))
            for d in (2, 3, 4)}
    figs["initial_speed"] = plot_layer_norms(
        {f"{d} hidden layers": _initial(r.history(r.labels(f"hidden={d}/")[0])) for d in (2, 3, 4)},
        ylabel=r"$\Vert \partial C / \partial b^l \Vert$ at initialisation",
        title="Speed of learning at initialisation, by hidden layer")
    return figs


def _gradient_rows(r: Results) -> list[BookRow]:
    rows = []
    for depth, book in BOOK_INITIAL_NORMS.items():
        ours = np.array([_initial(r.history(label)) for label in r.labels(f"hidden={depth}/")])
        for layer, value in enumerate(book):
            rows.append(BookRow(f"{depth} hidden layers: ||dC/db|| of hidden layer {layer + 1} at initialisation",
                                value, [float(v) for v in ours[:, layer]], unit="", rel=2.5,
                                note="the book's figures come from one random network, ours from three others; the band allows a factor 2.5 either way"))
    return rows


def _gradient_checks(r: Results) -> list[Check]:
    checks = []
    for depth in (2, 3, 4):
        for label in r.labels(f"hidden={depth}/"):
            h = r.history(label)
            init = _initial(h)
            checks.append(Check(f"{label}: at initialisation each hidden layer learns more slowly than the next",
                                all(a < b for a, b in zip(init, init[1:])),
                                "||dC/db||: " + ", ".join(f"{v:.4g}" for v in init)))
            during = np.array([rec["bias"][:-1] for rec in h["gradients"]])
            mean_log = np.log(during).mean(axis=0)
            checks.append(Check(f"{label}: during training the first hidden layer stays the slowest",
                                bool(np.argmin(mean_log) == 0),
                                "mean log10 ||dC/db|| per layer: " + ", ".join(f"{v / np.log(10):.2f}"
                                                                               for v in mean_log)))
    return checks


VANISHING_GRADIENT = Experiment(
    "vanishing-gradient", 5, "the speed of learning of each hidden layer, for 2, 3 and 4 hidden layers of 30",
    _gradient_jobs, figures=_gradient_figures, book_rows=_gradient_rows, checks=_gradient_checks,
    default_seeds=3,
)


def _magnitude_jobs(quick, seeds):
    # backprop_magnitude_nabla: 784-30-30-30-30-30-10, ten mini-batches of 100
    # from the first 1,000 images, eta 0.01, lambda 0.05
    c = RunConfig(sizes=(784, 30, 30, 30, 30, 30, 10), cost="cross-entropy", init="default", eta=0.01,
                  lmbda=0.05, train_size=1000, batch_size=100, epochs=1, record_gradients=1, monitor="none")
    return {f"seed={s}": c.replace(seed=s) for s in seeds}


def _magnitude_records(h) -> list[dict]:
    return [rec for rec in h["gradients"] if rec["epoch"] == 0]   # before each of the ten mini-batches


def _magnitude_figures(r: Results) -> dict:
    recs = _magnitude_records(r.history(r.labels("seed=")[0]))
    # as the book: mini-batches 7, 8, 9, the four 30x30 weight matrices (layers 2-5)
    rows = {f"mini-batch {rec['batch']}": rec["weight"][1:5] for rec in recs if rec["batch"] in (7, 8, 9)}
    fig = plot_layer_norms(rows, title="Gradient magnitudes of the hidden 30x30 weight matrices")
    fig.axes[0].set_xticks([1, 2, 3, 4], ["2", "3", "4", "5"])
    return {"gradient_magnitudes": fig}


def _magnitude_checks(r: Results) -> list[Check]:
    checks = []
    for label in r.labels("seed="):
        recs = _magnitude_records(r.history(label))
        ok = all(all(a < b for a, b in zip(rec["weight"][1:5], rec["weight"][2:5])) for rec in recs)
        checks.append(Check(f"{label}: ||dC/dw|| shrinks as we go back through the hidden layers, "
                            "in every mini-batch", ok,
                            f"{len(recs)} mini-batches; e.g. " + ", ".join(f"{v:.3g}" for v in recs[-1]["weight"])))
    return checks


GRADIENT_MAGNITUDES = Experiment(
    "gradient-magnitudes", 5, "per-layer ||dC/dw|| of a 784-30-30-30-30-30-10 network over ten mini-batches",
    _magnitude_jobs, figures=_magnitude_figures, checks=_magnitude_checks,
)

EXPERIMENTS = [VANISHING_GRADIENT, GRADIENT_MAGNITUDES]
