"""Chapter 3: overfitting and regularisation, weight initialisation, the
learning rate, more data, and when to stop (the book's figure scripts
``overfitting.py``, ``weight_initialization.py``, ``multiple_eta.py``,
``more_data.py``)."""

from __future__ import annotations

import numpy as np

from ..config import RunConfig
from ..plots import plot_accuracy_vs_size, plot_metrics, plot_train_vs_test
from .base import Baseline, BookRow, Check, Experiment, Results

# The book's overfitting runs: [784, 30, 10], cross-entropy, large initial
# weights, eta 0.5, mini-batch 10, the first 1,000 training images.
_OVERFIT = RunConfig(sizes=(784, 30, 10), cost="cross-entropy", init="large", eta=0.5, train_size=1000,
                     epochs=400, monitor=["training:accuracy,cost", "test:accuracy,cost"])
_OVERFIT_QUICK = dict(train_size=300, epochs=120, test_size=2000)


def _overfit_jobs(lmbdas):
    def make(quick, seeds):
        jobs = {}
        for lmbda in lmbdas:
            for s in seeds:
                c = _OVERFIT.replace(lmbda=lmbda, seed=s)
                if quick:   # keep lambda/n as in the full run
                    c = c.replace(**_OVERFIT_QUICK, lmbda=lmbda * _OVERFIT_QUICK["train_size"] / 1000)
                jobs[f"lmbda={lmbda:g}/seed={s}"] = c
        return jobs
    return make


def _epochs(h) -> int:
    return len(h["epoch_seconds"])


def _overfit_figures(prefix: str):
    def figures(r: Results) -> dict:
        h = r.history(r.labels(prefix)[0])
        n = _epochs(h)
        late = n // 2 if prefix.endswith("=0/") else 0   # the book starts two unregularised plots at epoch 200
        return {
            "training_cost": plot_metrics(h, ["training_cost"], first_epoch=late, title="Cost on the training data"),
            "test_accuracy": plot_metrics(h, ["test_accuracy"], first_epoch=late, title="Accuracy (%) on the test data"),
            "test_cost": plot_metrics(h, ["test_cost"], title="Cost on the test data"),
            "training_accuracy": plot_metrics(h, ["training_accuracy"], title="Accuracy (%) on the training data"),
            "overlay": plot_train_vs_test(h, title=f"Training vs test accuracy ({h.config['train_size']} training images)"),
        }
    return figures


def _peak(h, key="test_accuracy") -> float:
    return 100 * h.best(key)[1]


def _overfit_checks(r: Results) -> list[Check]:
    checks = []
    for label in r.labels("lmbda=0/"):
        h = r.history(label)
        n = _epochs(h)
        tc, tr = np.array(h["test_cost"]), np.array(h["training_cost"])
        low = int(np.argmin(tc))
        window = (8, 30) if n >= 400 else (1, n // 4)
        checks += [
            Check(f"{label}: the test cost is lowest early (epoch {window[0]}-{window[1]}) and then rises",
                  window[0] <= low <= window[1] and tc[-1] > 1.1 * tc[low],
                  f"lowest test cost {tc[low]:.3f} at epoch {low}; {tc[-1]:.3f} at the end"),
            Check(f"{label}: the training cost keeps falling after that",
                  tr[-1] < 0.5 * tr[low] and tr[-1] == tr[low:].min() or tr[-1] < 0.2 * tr[low],
                  f"training cost {tr[low]:.3f} at epoch {low}, {tr[-1]:.4f} at the end"),
            Check(f"{label}: the training accuracy reaches 100%", max(h["training_accuracy"]) == 1.0,
                  f"best training accuracy {max(h['training_accuracy']):.2%}"),
        ]
    return checks


OVERFITTING = Experiment(
    "overfitting", 3, "1,000 training images, 400 epochs, large initial weights: the four curves of overfitting",
    _overfit_jobs([0.0]),
    figures=_overfit_figures("lmbda=0/"),
    book_rows=lambda r: [
        BookRow("peak test accuracy (the book: plateaus near 82%)", 82.0,
                [_peak(r.history(label)) for label in r.labels("lmbda=0/")], tol=1.5),
        BookRow("epoch of the lowest test cost (the book: about 15)", 15,
                [float(np.argmin(r.history(label)["test_cost"])) for label in r.labels("lmbda=0/")],
                unit="epoch", tol=7),
    ],
    checks=_overfit_checks,
)


def _l2_checks(r: Results) -> list[Check]:
    checks = []
    for s_label in r.labels("lmbda=0.1/"):
        seed = s_label.split("/")[1]
        h = r.history(s_label)
        plain = r.history(f"lmbda=0/{seed}")
        acc = np.array(h["test_accuracy"])
        n = len(acc)
        rising = acc[-max(n // 10, 1):].mean() >= acc[n // 3: n // 2].mean()
        checks += [
            Check(f"{seed}: with L2 the test accuracy keeps rising instead of plateauing", bool(rising),
                  f"mean test accuracy {acc[n // 3: n // 2].mean():.2%} at epochs {n // 3}-{n // 2}, "
                  f"{acc[-max(n // 10, 1):].mean():.2%} over the last tenth"),
            Check(f"{seed}: L2 ends with a higher test accuracy than no regularisation",
                  acc[-1] > plain["test_accuracy"][-1],
                  f"{acc[-1]:.2%} with lambda 0.1 vs {plain['test_accuracy'][-1]:.2%} without"),
        ]
    return checks


OVERFITTING_L2 = Experiment(
    "overfitting-l2", 3, "the same with L2 regularisation, lambda 0.1: overfitting suppressed (about 87%)",
    _overfit_jobs([0.0, 0.1]),
    figures=lambda r: {**_overfit_figures("lmbda=0.1/")(r),
                       "test_accuracy_both": plot_metrics(
                           {f"lambda = {r.history(k).config['lmbda']:g}": r.history(k)
                            for k in (r.labels("lmbda=0/")[0], r.labels("lmbda=0.1/")[0])},
                           ["test_accuracy"], title="Test accuracy with and without L2")},
    book_rows=lambda r: [BookRow("test accuracy after 400 epochs with lambda 0.1 (the book: about 87%)", 87.1,
                                 [100 * r.history(label)["test_accuracy"][-1] for label in r.labels("lmbda=0.1/")],
                                 tol=1.0)],
    checks=_l2_checks,
)


def _l2_full_jobs(quick, seeds):
    small = RunConfig(sizes=(784, 30, 10), cost="cross-entropy", init="large", eta=0.5, lmbda=5.0, epochs=30,
                      monitor=["training:accuracy", "test:accuracy"])
    wide = RunConfig(sizes=(784, 100, 10), cost="cross-entropy", init="large", eta=0.1, lmbda=5.0, epochs=60,
                     monitor=["training:accuracy", "validation:accuracy"])
    if quick:
        small = small.replace(train_size=5000, lmbda=0.5, epochs=3, test_size=2000)
        wide = wide.replace(train_size=5000, lmbda=0.5, epochs=3, validation_size=2000)
    return {**{f"hidden=30/seed={s}": small.replace(seed=s) for s in seeds},
            **{f"hidden=100/seed={s}": wide.replace(seed=s) for s in seeds}}


def _l2_full_checks(r: Results) -> list[Check]:
    checks = []
    for label in r.labels("hidden=30/"):
        h = r.history(label)
        full = h.config["train_size"] is None
        gap = 100 * (h["training_accuracy"][-1] - h["test_accuracy"][-1])
        limit = 2.0 if full else 12.0
        checks.append(Check(f"{label}: with L2 the gap between training and test accuracy stays small "
                            f"(under {limit:g} points)", gap < limit, f"gap {gap:.2f} points at the end"))
    return checks


L2_FULL = Experiment(
    "l2-full", 3, "L2 (lambda 5) on all 50,000 images: 30 hidden neurons (96.49%), 100 hidden for 60 epochs (98.04%)",
    _l2_full_jobs,
    figures=lambda r: {
        "hidden30_overlay": plot_train_vs_test(r.history(r.labels("hidden=30/")[0]),
                                               title="[784, 30, 10], lambda 5, all training images"),
        "hidden100_validation": plot_metrics(r.history(r.labels("hidden=100/")[0]), ["validation_accuracy"],
                                             title="[784, 100, 10], lambda 5, eta 0.1"),
    },
    book_rows=lambda r: [
        BookRow("[784, 30, 10], lambda 5: best test accuracy", 96.49,
                [_peak(r.history(label)) for label in r.labels("hidden=30/")]),
        BookRow("[784, 100, 10], lambda 5, 60 epochs: final validation accuracy", 98.04,
                [100 * r.history(label)["validation_accuracy"][-1] for label in r.labels("hidden=100/")]),
    ],
    checks=_l2_full_checks,
)


def _init_jobs(quick, seeds):
    jobs = {}
    for hidden in (30, 100):
        for init in ("default", "large"):
            c = RunConfig(sizes=(784, hidden, 10), cost="cross-entropy", init=init, eta=0.1, lmbda=5.0, epochs=30,
                          monitor=["validation"])
            if quick:
                c = c.replace(train_size=3000, lmbda=0.3, epochs=3, validation_size=2000)
            for s in seeds:
                jobs[f"hidden={hidden}/init={init}/seed={s}"] = c.replace(seed=s)
    return jobs


def _init_figures(r: Results) -> dict:
    figs = {}
    for hidden in (30, 100):
        runs = {"New approach to weight initialization": r.history(r.labels(f"hidden={hidden}/init=default/")[0]),
                "Old approach to weight initialization": r.history(r.labels(f"hidden={hidden}/init=large/")[0])}
        figs[f"hidden{hidden}"] = plot_metrics(runs, ["validation_accuracy"],
                                               title=f"[784, {hidden}, 10]: validation accuracy")
    return figs


def _init_checks(r: Results) -> list[Check]:
    checks = []
    for hidden in (30, 100):
        for new_label in r.labels(f"hidden={hidden}/init=default/"):
            old_label = new_label.replace("init=default", "init=large")
            new, old = r.history(new_label)["validation_accuracy"], r.history(old_label)["validation_accuracy"]
            checks.append(Check(f"{new_label}: the new initialisation learns faster (ahead after the first epoch)",
                                new[0] > old[0], f"after epoch 0: new {new[0]:.2%}, old {old[0]:.2%}; "
                                                 f"at the end: new {new[-1]:.2%}, old {old[-1]:.2%}"))
    return checks


WEIGHT_INITIALIZATION = Experiment(
    "weight-initialization", 3, "old N(0,1) vs new N(0,1/n_in) weights, 30 and 100 hidden neurons",
    _init_jobs, figures=_init_figures, checks=_init_checks,
)

_ETAS = (0.025, 0.25, 2.5)


def _eta_jobs(quick, seeds):
    c = RunConfig(sizes=(784, 30, 10), cost="cross-entropy", init="default", lmbda=5.0, epochs=30,
                  monitor=["training:cost"])
    if quick:
        c = c.replace(train_size=2000, epochs=10)
    return {f"eta={eta:g}/seed={s}": c.replace(eta=eta, seed=s) for eta in _ETAS for s in seeds}


def _eta_checks(r: Results) -> list[Check]:
    checks = []
    for s_label in r.labels("eta=0.025/"):
        seed = s_label.split("/")[1]
        cost = {eta: np.array(r.history(f"eta={eta:g}/{seed}")["training_cost"]) for eta in _ETAS}
        # a rise of more than 1% from one epoch to the next (smaller ones are mini-batch noise)
        ups = {eta: int((c[1:] > 1.01 * c[:-1]).sum()) for eta, c in cost.items()}
        checks += [
            Check(f"{seed}: eta 2.5 is too large: the training cost oscillates", ups[2.5] >= 3,
                  f"the cost rose by more than 1% in {ups[2.5]} of {len(cost[2.5]) - 1} epochs"),
            Check(f"{seed}: eta 0.025 is too small: the cost falls steadily but slowly",
                  ups[0.025] == 0 and cost[0.025][-1] > cost[0.25][-1],
                  f"rose by more than 1% in {ups[0.025]} epochs; final cost {cost[0.025][-1]:.3f} vs "
                  f"{cost[0.25][-1]:.3f} at eta 0.25"),
        ]
    return checks


MULTIPLE_ETA = Experiment(
    "multiple-eta", 3, "the training cost for eta 0.025, 0.25 and 2.5 (lambda 5)",
    _eta_jobs,
    figures=lambda r: {"training_cost": plot_metrics(
        {f"$\\eta$ = {eta:g}": r.history(r.labels(f"eta={eta:g}/")[0]) for eta in _ETAS}, ["training_cost"],
        title="Cost on the training data")},
    checks=_eta_checks,
)

_SIZES = (100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000)
_SIZES_QUICK = (100, 300, 1000, 3000)


def _more_data_jobs(quick, seeds):
    sizes, examples = (_SIZES_QUICK, 150_000) if quick else (_SIZES, 1_500_000)
    jobs = {}
    for size in sizes:
        epochs = examples // size
        c = RunConfig(sizes=(784, 30, 10), cost="cross-entropy", init="large", eta=0.5, lmbda=size * 0.0001,
                      epochs=epochs, train_size=size, monitor=["validation"], monitor_every=epochs,
                      validation_size=2000 if quick else None)
        for s in seeds:
            jobs[f"net/size={size}/seed={s}"] = c.replace(seed=s)
        jobs[f"svm/size={size}"] = Baseline("svm", "auto", train_size=size, eval_size=1000 if quick else None)
    return jobs


def _more_data_series(r: Results):
    sizes = [int(label.split("=")[1]) for label in r.labels("svm/size=")]
    net = [np.mean([r.history(label)["validation_accuracy"][-1] for label in r.labels(f"net/size={n}/")])
           for n in sizes]
    svm = [r.value(f"svm/size={n}", "validation_accuracy") for n in sizes]
    return sizes, net, svm


def _more_data_figures(r: Results) -> dict:
    sizes, net, svm = _more_data_series(r)
    return {
        "more_data": plot_accuracy_vs_size(sizes, {"network": net}),
        "more_data_log": plot_accuracy_vs_size(sizes, {"network": net}, log_x=True),
        "more_data_comparison": plot_accuracy_vs_size(sizes, {"Neural network accuracy (%)": net,
                                                              "SVM accuracy (%)": svm}, log_x=True),
    }


def _more_data_checks(r: Results) -> list[Check]:
    sizes, net, svm = _more_data_series(r)
    return [
        Check("more training data, better accuracy (network)", net[-1] > net[0] + 0.15 and net[-1] == max(net),
              ", ".join(f"{n}: {a:.2%}" for n, a in zip(sizes, net))),
        Check("more training data, better accuracy (SVM)", svm[-1] > svm[0] + 0.15 and svm[-1] == max(svm),
              ", ".join(f"{n}: {a:.2%}" for n, a in zip(sizes, svm))),
    ]


MORE_DATA = Experiment(
    "more-data", 3, "validation accuracy against the training-set size (100 to 50,000): the network and an SVM",
    _more_data_jobs, figures=_more_data_figures, checks=_more_data_checks,
)


def _stop_jobs(quick, seeds):
    c = RunConfig(sizes=(784, 30, 10), cost="cross-entropy", init="default", eta=0.5, lmbda=5.0,
                  monitor=["validation"])
    if quick:
        c = c.replace(train_size=2000, lmbda=0.2, validation_size=1000)
    patience = 2 if quick else 10
    jobs = {}
    for s in seeds:
        jobs[f"early-stopping/seed={s}"] = c.replace(early_stopping=patience, epochs=40 if quick else 200, seed=s)
        jobs[f"schedule/seed={s}"] = c.replace(schedule=patience, epochs=60 if quick else 400, seed=s)
    return jobs


def _stop_checks(r: Results) -> list[Check]:
    checks = []
    for label in r.labels("early-stopping/"):
        h = r.history(label)
        checks.append(Check(f"{label}: stops by itself once the validation accuracy stops improving",
                            "no improvement" in (h.run.get("stop_reason") or ""),
                            f"{_epochs(h)} epochs; {h.run.get('stop_reason')}"))
    for label in r.labels("schedule/"):
        h = r.history(label)
        etas = h["eta"]
        halvings = len(set(etas)) - 1
        checks.append(Check(f"{label}: the schedule halves eta when the accuracy stalls, and stops at eta/128",
                            "eta fell" in (h.run.get("stop_reason") or "") and halvings >= 6,
                            f"{_epochs(h)} epochs, {halvings} halvings; {h.run.get('stop_reason')}"))
    return checks


def _stop_figures(r: Results) -> dict:
    es, sc = r.history(r.labels("early-stopping/")[0]), r.history(r.labels("schedule/")[0])
    fig = plot_metrics({f"early stopping (no improvement in {es.config['early_stopping']})": es,
                        f"eta schedule (halve after {sc.config['schedule']} flat epochs)": sc},
                       ["validation_accuracy"], title="When to stop")
    eta = plot_metrics({"eta": sc}, ["eta"], log_y=True, title="The learning-rate schedule")
    eta.axes[0].set_ylabel(r"$\eta$")
    return {"validation_accuracy": fig, "eta": eta}


EARLY_STOPPING = Experiment(
    "early-stopping", 3, "no-improvement-in-10 early stopping, and the eta schedule that halves eta down to eta/128",
    _stop_jobs, figures=_stop_figures, checks=_stop_checks,
)

EXPERIMENTS = [OVERFITTING, OVERFITTING_L2, L2_FULL, WEIGHT_INITIALIZATION, MULTIPLE_ETA, MORE_DATA, EARLY_STOPPING]
