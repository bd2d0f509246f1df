"""The configuration an ``nndl search`` found, against the book's hand-picked
settings, on several seeds (docs/search.md).

    python examples/search_vs_book.py runs/search-eta-lambda/best.json [--seeds 5] [--jobs 2]

Every setting trains ``[784, 30, 10]``, cross-entropy, the new N(0, 1/n_in)
weights, mini-batch 10, 5 epochs on the first 10,000 training images, with
seeds 0..K-1 (seed 0 is the one the search used); it prints each setting's
validation accuracy after the last epoch (what the search maximised) and its
test accuracy, as mean and range over the seeds.

The book's settings, with lambda scaled to n = 10,000 so that lambda / n (the
weight decay per step, eta * lambda / n, equation (93)) is the book's:

* eta 0.5, lambda 5.0 at n = 50,000 (chapter 3's network2 runs, ``l2-full``)
  -> lambda 1.0; the same as ``more-data``'s lambda = 0.0001 n;
* eta 0.25 and 0.025: the other two rates of ``multiple-eta`` (lambda 5.0 -> 1.0);
* eta 0.1 (``weight-initialization``'s rate), lambda 1.0.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from nndl.config import RunConfig
from nndl.parallel import connect

BASE = RunConfig(sizes=(784, 30, 10), cost="cross-entropy", init="default", epochs=5, train_size=10000,
                 monitor=["validation", "test"])
BOOK = {"book: eta 0.5, lambda 1.0": (0.5, 1.0), "book: eta 0.25, lambda 1.0": (0.25, 1.0),
        "book: eta 0.1, lambda 1.0": (0.1, 1.0), "book: eta 0.025, lambda 1.0": (0.025, 1.0)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("best", type=Path, help="best.json written by nndl search")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--jobs", type=int, default=2)
    args = p.parse_args(argv)
    best = json.loads(args.best.read_text())
    settings = {f"search: eta {best['params']['eta']:.3g}, lambda {best['params']['lmbda']:.3g}":
                (best["params"]["eta"], best["params"]["lmbda"]), **BOOK}
    jobs = {(name, seed): BASE.replace(eta=eta, lmbda=lmbda, seed=seed)
            for name, (eta, lmbda) in settings.items() for seed in range(args.seeds)}
    labels = {f"{name}/seed={seed}": key for key, (name, seed) in zip(jobs, jobs)}
    with connect(jobs=args.jobs) as cluster:
        results = dict(cluster.run_jobs({label: jobs[key] for label, key in labels.items()}))
    failed = {k: r["failed"] for k, r in results.items() if r.get("failed")}
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
        return 1
    print(f"| setting | validation accuracy, seed 0 | validation, mean (min-max) of {args.seeds} seeds | "
          f"test, mean (min-max) |")
    print("| --- | ---: | ---: | ---: |")
    for name in settings:
        runs = [results[f"{name}/seed={s}"]["history"] for s in range(args.seeds)]
        val = [100 * h["validation_accuracy"][-1] for h in runs]
        test = [100 * h["test_accuracy"][-1] for h in runs]
        print(f"| {name} | {val[0]:.2f}% | {statistics.mean(val):.2f}% ({min(val):.2f}-{max(val):.2f}) | "
              f"{statistics.mean(test):.2f}% ({min(test):.2f}-{max(test):.2f}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
