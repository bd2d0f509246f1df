"""Where a conv net's training time goes: each layer's forward and backward, the cost, the optimizer.

    PYTHONPATH=src python bench/profile_conv.py [--layers SPEC] [--batch-sizes 10 64]
                                                [--threads 1] [--images 3200]

Trains on the first ``--images`` MNIST training images (after a short
warm-up) with the same steps as ``Trainer`` (forward, backward, SGD step), timing
every layer's ``forward`` and ``backward`` (``backward_delta`` for the output
layer), the cost's output error and the optimizer's step, and prints
microseconds per image for each, with the epoch time they add up to.
With one thread the times are the process's CPU time, which other jobs on the
machine disturb less than wall-clock time; with more threads they are
wall-clock time, and the thread count each conv kernel chose (it times one
thread against ``--threads``, see :mod:`nndl.kernels.threads`) is printed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
try:
    import nndl  # noqa: F401
except ImportError:  # run from a checkout without PYTHONPATH=src
    sys.path.insert(0, str(REPO / "src"))

import numpy as np  # noqa: E402

from nndl import SGD, L2, Network  # noqa: E402
from nndl.architecture import default_cost, parse_layers  # noqa: E402
from nndl.kernels.threads import limit  # noqa: E402

BOOK_NET = "conv:20:5,pool:2,conv:40:5,pool:2,dense:100,softmax:10"


def load_training(folder: Path | None):
    from nndl import NNDLError
    from nndl.data import load_mnist

    try:
        return load_mnist(folder, download=False, progress=False).training
    except NNDLError as e:
        raise SystemExit(f"{e}\n(pass --data-dir or set NNDL_DATA)") from None


def profile(spec: str, x, y, m: int, threads: int, init: str | None) -> tuple[float, dict[str, float]]:
    clock = time.process_time if threads == 1 else time.perf_counter
    layers = parse_layers(spec, activation="relu", init=init)
    net = Network(layers, default_cost(layers), input_shape=(784,), rng=0)
    opt = SGD(0.03, regularizers=[L2(0.1)])
    spent: dict[str, float] = defaultdict(float)

    def timed(obj, method: str, key: str) -> None:
        fn = getattr(obj, method)

        def wrapper(*args, **kwargs):
            t = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[key] += clock() - t
        setattr(obj, method, wrapper)

    last = len(net.layers) - 1
    for i, layer in enumerate(net.layers):
        name = f"{i} {type(layer).__name__}"
        timed(layer, "forward", f"{name} forward")
        timed(layer, "backward_delta" if i == last else "backward", f"{name} backward")
    timed(net.cost, "delta", "cost delta (BP1)")
    timed(opt, "step", "SGD step")
    n = len(x)
    order = np.random.default_rng(1).permutation(n)
    with limit(threads):                                   # as Trainer(blas_threads=threads)
        for start in range(0, min(n, 20 * m), m):          # warm-up (compiles if needed)
            idx = order[start:start + m]
            net.forward(x[idx], train=True)
            net.backward(y[idx])
            opt.step(net.layers, len(idx), 50_000)
        spent.clear()
        t0 = clock()
        for start in range(0, n, m):
            idx = order[start:start + m]
            net.forward(x[idx], train=True)
            net.backward(y[idx])
            opt.step(net.layers, len(idx), 50_000)
        total = clock() - t0
    return total / n, {k: v / n for k, v in spent.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", default=BOOK_NET, help=f"network spec (default: {BOOK_NET}), ReLU")
    ap.add_argument("--init", default=None, help="initialiser for every layer (default: each layer's own)")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[10, 64], metavar="M")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--images", type=int, default=3200)
    ap.add_argument("--data-dir", type=Path, default=None)
    args = ap.parse_args(argv)
    training = load_training(args.data_dir)
    x, y = training.x[:args.images], training.y[:args.images]
    for m in args.batch_sizes:
        per_image, parts = profile(args.layers, x, y, m, args.threads, args.init)
        what = "CPU" if args.threads == 1 else "wall"
        print(f"mini-batch {m}, {args.threads} thread(s): {per_image * 1e6:.1f} us/image ({what}) "
              f"= {per_image * 50_000:.2f} s per 50,000-image epoch")
        rest = per_image - sum(parts.values())
        for key, v in list(parts.items()) + [("(loop, indexing)", rest)]:
            print(f"  {key:28s} {v * 1e6:7.1f} us  {v / per_image:6.1%}")
        if args.threads > 1:
            from nndl.kernels.threads import _choices
            print("  the kernels' thread choice (running average of each kernel call):")
            for (key, cap), c in _choices.items():
                if key[1][0] != m:
                    continue
                times = ", ".join(f"{n} thread(s) {t * 1e6:.0f} us" for n, t in zip(c.options, c.seconds))
                print(f"    {key[0]} {'x'.join(map(str, key[1]))} -> {c.options[c.best]} thread(s) ({times})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
