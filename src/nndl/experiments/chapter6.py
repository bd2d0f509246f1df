"""Chapter 6: the ladder of networks from a fully connected one to an
ensemble of convolutional nets (the book's ``network3.py`` runs).

Each rung is reported as network3 reports it: the test accuracy at the
epoch of best validation accuracy. The book's mini-batch is 10 throughout.
"""

from __future__ import annotations

import numpy as np

from ..config import RunConfig
from ..plots import plot_metrics
from .base import BookRow, Check, Experiment, Results

_CONV1 = "conv:20:5,pool:2"
_CONV2 = "conv:20:5,pool:2,conv:40:5,pool:2"
_DROPOUT_TAIL = "dropout:0.5,dense:1000,dropout:0.5,dense:1000,dropout:0.5,softmax:10"

#: rung -> (spec, activation, eta, lmbda, epochs, expand, the book's test accuracy %)
RUNGS = {
    "fc": ("dense:100,softmax:10", "sigmoid", 0.1, 0.0, 60, False, 97.80),
    "conv1": (f"{_CONV1},dense:100,softmax:10", "sigmoid", 0.1, 0.0, 60, False, 98.78),
    "conv2": (f"{_CONV2},dense:100,softmax:10", "sigmoid", 0.1, 0.0, 60, False, 99.06),
    "relu": (f"{_CONV2},dense:100,softmax:10", "relu", 0.03, 0.1, 60, False, 99.23),
    "expanded": (f"{_CONV2},dense:100,softmax:10", "relu", 0.03, 0.1, 60, True, 99.37),
    "dropout": (f"{_CONV2},{_DROPOUT_TAIL}", "relu", 0.03, 0.0, 40, True, 99.60),
}
ENSEMBLE_SIZE, ENSEMBLE_BOOK = 5, 99.67
#: the quick version: small data, narrower layers, eta x4 (it only shows that every rung trains)
_QUICK = dict(train_size=1500, validation_size=500, test_size=500, epochs=4)


def _jobs(quick, seeds):
    jobs = {}
    for rung, (spec, act, eta, lmbda, epochs, expand, _) in RUNGS.items():
        if quick:
            spec = spec.replace("dense:1000", "dense:100").replace("conv:20:", "conv:8:").replace("conv:40:", "conv:16:")
            eta *= 4
        c = RunConfig(layers=spec, activation=act, eta=eta, lmbda=lmbda, epochs=epochs, expand=expand,
                      dropout_scale="book", monitor=["validation", "test"])
        if quick:
            c = c.replace(**_QUICK)
            if expand:
                c = c.replace(train_size=300)
        for s in seeds:
            jobs[f"{rung}/seed={s}"] = c.replace(seed=s)
        if rung == "dropout":   # the ensemble: more dropout networks, other seeds
            for k in range(ENSEMBLE_SIZE):
                if k not in seeds:
                    jobs[f"dropout/seed={k}"] = c.replace(seed=k)
    return jobs


def _test_at_best_validation(h) -> float:
    epoch, _ = h.best("validation_accuracy")
    return 100 * h["test_accuracy"][epoch]


def _ensemble(r: Results) -> tuple[float, list[float]] | None:
    """Majority vote of the dropout networks' test predictions, and theirs alone."""
    labels = r.labels("dropout/")[:ENSEMBLE_SIZE]
    if len(labels) < ENSEMBLE_SIZE or not all("predictions" in r.raw[k] for k in labels):
        return None
    votes = np.array([[int(c) for c in r.raw[k]["predictions"]] for k in labels])   # (5, n_test)
    n = votes.shape[1]
    truth = np.array([int(c) for c in r.raw[labels[0]]["labels"]])
    counts = np.zeros((10, n), dtype=int)
    for row in votes:
        counts[row, np.arange(n)] += 1
    vote = counts.argmax(axis=0)          # ties: the lowest digit, as network3's ensemble did by argmax
    members = [100 * float(np.mean(row == truth)) for row in votes]
    return 100 * float(np.mean(vote == truth)), members


def _rows(r: Results) -> list[BookRow]:
    rows = []
    for rung, (*_, book) in RUNGS.items():
        labels = r.labels(f"{rung}/")
        if labels:
            rows.append(BookRow(f"{rung}: test accuracy at the best validation epoch", book,
                                [_test_at_best_validation(r.history(k)) for k in labels]))
    ens = _ensemble(r)
    if ens is not None:
        rows.append(BookRow(f"ensemble of {ENSEMBLE_SIZE} dropout networks (majority vote): test accuracy",
                            ENSEMBLE_BOOK, [ens[0]]))
    return rows


def _figures(r: Results) -> dict:
    runs = {rung: r.history(r.labels(f"{rung}/")[0]) for rung in RUNGS if r.labels(f"{rung}/")}
    return {"validation_accuracy": plot_metrics(runs, ["validation_accuracy"], first_epoch=0,
                                                title="Chapter 6: validation accuracy of each rung")} if runs else {}


def _checks(r: Results) -> list[Check]:
    checks = []
    full = {}
    for rung in RUNGS:
        for label in r.labels(f"{rung}/"):
            h = r.history(label)
            full[label] = h.config["train_size"] is None
            if full[label]:
                acc = _test_at_best_validation(h)
                checks.append(Check(f"{label}: above 97% like every rung of the book's ladder", acc > 97, f"{acc:.2f}%"))
    if r.labels("conv2/") and r.labels("relu/"):
        sig, relu = (_test_at_best_validation(r.history(r.labels(f"{k}/")[0])) for k in ("conv2", "relu"))
        checks.append(Check("rectified linear units beat sigmoid neurons in the two conv-pool network",
                            relu > sig, f"ReLU {relu:.2f}%, sigmoid {sig:.2f}%"))
    ens = _ensemble(r)
    if ens is not None:
        vote, members = ens
        checks.append(Check("the ensemble's vote is at least as good as its average member",
                            vote >= float(np.mean(members)),
                            f"vote {vote:.2f}%, members " + ", ".join(f"{m:.2f}%" for m in members)))
    return checks


CH6_LADDER = Experiment(
    "ch6-ladder", 6, "fully connected 97.80%, conv-pool 98.78%, two conv-pool 99.06%, ReLU 99.23%, "
                     "expanded data 99.37%, dropout 99.60%, ensemble of five 99.67%",
    _jobs, figures=_figures, book_rows=_rows, checks=_checks, keep_predictions=True,
)

EXPERIMENTS = [CH6_LADDER]
