"""Chapter 1: the book's first network, a wider one, and the baselines it must beat."""

from __future__ import annotations

from ..config import RunConfig
from ..plots import plot_metrics
from .base import Baseline, BookRow, Check, Experiment, Results


def _network_jobs(hidden: int):
    def make(quick: bool, seeds: tuple[int, ...]) -> dict:
        base = RunConfig(sizes=(784, hidden, 10), eta=3.0, epochs=30, batch_size=10)
        if quick:
            base = base.replace(train_size=10000, epochs=3, test_size=2000)
        return {f"seed={s}": base.replace(seed=s) for s in seeds}
    return make


def _best_per_seed(r: Results) -> list[float]:
    return [100 * r.history(label).best("test_accuracy")[1] for label in r.labels("seed=")]


def _network_figures(title: str):
    def figures(r: Results) -> dict:
        runs = {label: r.history(label) for label in r.labels("seed=")}
        return {"test_accuracy": plot_metrics(runs, ["test_accuracy"], title=title)}
    return figures


def _network_checks(r: Results, floor: float) -> list[Check]:
    best = _best_per_seed(r)
    return [Check(f"every seed learns to classify digits (best test accuracy above {floor:g}%)",
                  min(best) > floor, "best test accuracy per seed: " + ", ".join(f"{b:.2f}%" for b in best))]


CH1_NETWORK = Experiment(
    "ch1-network", 1, "the book's [784, 30, 10] sigmoid network, quadratic cost, eta 3.0, 30 epochs, 3 seeds",
    _network_jobs(30),
    figures=_network_figures("[784, 30, 10], eta 3.0"),
    book_rows=lambda r: [BookRow("[784, 30, 10]: best test accuracy (book: best of three runs)", 95.42,
                                 _best_per_seed(r))],
    checks=lambda r: _network_checks(r, 80),
    default_seeds=3,
)

CH1_HIDDEN_100 = Experiment(
    "ch1-hidden-100", 1, "the same with 100 hidden neurons (the book's 96.59%)",
    _network_jobs(100),
    figures=_network_figures("[784, 100, 10], eta 3.0"),
    book_rows=lambda r: [BookRow("[784, 100, 10]: best test accuracy", 96.59, _best_per_seed(r),
                                 note="at eta 3.0 with the quadratic cost some seeds get stuck for many "
                                      "epochs (the book notes such runs too); the band is over 3 seeds")],
    checks=lambda r: _network_checks(r, 50),
    default_seeds=3,
)


def _baseline_jobs(quick: bool, seeds) -> dict:
    size = dict(train_size=2000, eval_size=1000) if quick else {}
    return {"darkness": Baseline("darkness", train_size=size.get("train_size"), eval_size=size.get("eval_size")),
            "svm-auto": Baseline("svm", "auto", **size),
            "svm-scale": Baseline("svm", "scale", **size)}


def _baseline_checks(r: Results) -> list[Check]:
    dark = r.value("darkness", "test_accuracy")
    svm_auto, svm_scale = r.value("svm-auto", "test_accuracy"), r.value("svm-scale", "test_accuracy")
    return [
        Check("average darkness does much better than chance (10%) and much worse than learning",
              0.15 < dark < 0.35, f"darkness {dark:.2%}"),
        Check("an SVM beats average darkness by a wide margin", min(svm_auto, svm_scale) > dark + 0.4,
              f"SVM auto {svm_auto:.2%}, scale {svm_scale:.2%}"),
    ]


BASELINES = Experiment(
    "baselines", 1, "average darkness (22.25%) and an SVM (94.35% book-era gamma, 97.85% today's)",
    _baseline_jobs,
    book_rows=lambda r: [
        BookRow("average darkness: test accuracy", 22.25, [100 * r.value("darkness", "test_accuracy")], tol=0.01),
        BookRow("SVM, gamma='auto' (the book's scikit-learn): test accuracy", 94.35,
                [100 * r.value("svm-auto", "test_accuracy")], tol=0.05),
        BookRow("SVM, gamma='scale' (today's default): test accuracy", 97.85,
                [100 * r.value("svm-scale", "test_accuracy")], tol=0.05),
    ],
    checks=_baseline_checks,
)

EXPERIMENTS = [CH1_NETWORK, CH1_HIDDEN_100, BASELINES]
