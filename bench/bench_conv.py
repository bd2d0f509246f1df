"""One epoch of the book's two conv-pool ReLU network: nndl against PyTorch (CPU).

    PYTHONPATH=src python bench/bench_conv.py [--images N] [--threads 1 2] [--repeats R]
                                              [--memory [--full]] [--json out.json]

The network is chapter 6's (network3)::

    Reshape(1,28,28) -> ConvPool(20, 5x5, pool 2, ReLU) -> ConvPool(40, 5x5, pool 2, ReLU)
      -> Flatten -> Dense(100, ReLU) -> Dense(10, softmax)

log-likelihood cost, SGD with eta 0.03 and L2 lambda 0.1 (the book's
``w <- (1 - eta lambda/n) w - (eta/m) nabla_w``), trained for one epoch at
mini-batch 10 and at mini-batch 64, on 1 and on 2 threads (``--threads``),
all four cells in the same run:

* **nndl**: ``nndl.Trainer`` with ``blas_threads=T`` (float32): the conv
  kernels run on T threads, BLAS on at most T. The numba kernels are
  compiled (or loaded from the disk cache) on a small warm-up fit first, not
  counted.
* **PyTorch** (optional): ``Conv2d + MaxPool2d + ReLU`` twice, ``Flatten``,
  ``Linear + ReLU``, ``Linear``, ``cross_entropy`` (softmax + log-likelihood,
  mean over the mini-batch), ``torch.optim.SGD(lr=0.03)`` with
  ``weight_decay = lambda / n`` on the weights only (the same update),
  ``torch.set_num_threads(T)``. It starts from nndl's initial parameters
  (copied; both compute cross-correlations and flatten row-major) and sees
  the same mini-batches, so the test accuracies after the epoch should agree
  within noise, which is printed as a sanity check.

The times are wall-clock seconds of the training loop (shuffle, batches,
updates; no evaluation), best of ``--repeats``, scaled to **seconds per
50,000-image epoch** when ``--images`` is smaller.

``--memory`` measures, in a fresh Python process (no torch imported), the
peak resident memory (``VmHWM``, the high-water mark) of what ``nndl train --expand`` does:
load MNIST, expand the 50,000 training images to 250,000 float32 images
(``nndl.data.augment.expanded_training_set``), and train one epoch at mini-batch 10 on the first ``--images`` of
the expanded set (a view: the arrays' memory is the same as for all of
them), or on all 250,000 with ``--full``.

MNIST is read from ``--data-dir``, ``$NNDL_DATA`` or ``../shared/data/mnist``
beside the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
try:
    import nndl  # noqa: F401
except ImportError:  # run from a checkout without PYTHONPATH=src
    sys.path.insert(0, str(REPO / "src"))

import numpy as np  # noqa: E402

from nndl import SGD, L2, Network, Trainer  # noqa: E402
from nndl.layers import Dense  # noqa: E402
from nndl.layers.conv import ConvPool  # noqa: E402
from nndl.layers.reshape import Flatten, Reshape  # noqa: E402

ETA = 0.03
LMBDA = 0.1
N_EPOCH = 50_000
INIT_SEED = 0
SHUFFLE_SEED = 1
BATCH_SIZES = (10, 64)


def default_data_dir() -> Path:
    env = os.environ.get("NNDL_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data" / "mnist"


def load_splits(folder: Path):
    from nndl import NNDLError
    from nndl.data import load_mnist

    try:
        return load_mnist(folder, download=False, progress=False)
    except NNDLError as e:
        raise SystemExit(f"{e}\n(pass --data-dir or set NNDL_DATA)") from None


def build_network() -> Network:
    layers = [Reshape((1, 28, 28)),
              ConvPool(20, 5, 2, activation="relu"),
              ConvPool(40, 5, 2, activation="relu"),
              Flatten(),
              Dense(100, "relu"),
              Dense(10, "softmax")]
    return Network(layers, "log-likelihood", input_shape=(784,), rng=INIT_SEED, dtype="float32")


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB.

    Linux: ``VmHWM`` from ``/proc/self/status`` (the high-water mark of this
    program's own memory; ``ru_maxrss`` would also count the parent's peak,
    inherited through fork + exec). Elsewhere: ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024      # kB
    except OSError:
        pass
    import resource
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss   # kilobytes on Linux, bytes on macOS
    return kb / (1024 * 1024 if sys.platform == "darwin" else 1024)


# -- contenders -----------------------------------------------------------------

def run_nndl(x, y, tx, ty, batch: int, threads: int):
    net = build_network()
    trainer = Trainer(net, SGD(ETA, regularizers=[L2(LMBDA)]), batch_size=batch, rng=SHUFFLE_SEED,
                      blas_threads=threads)
    t0 = time.perf_counter()
    trainer.fit(x, y, 1)
    seconds = time.perf_counter() - t0
    return seconds, net.accuracy(tx, ty) / len(ty)


def run_torch(torch, x, y, tx, ty, batch: int):
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(1, 20, 5), nn.MaxPool2d(2), nn.ReLU(),
                          nn.Conv2d(20, 40, 5), nn.MaxPool2d(2), nn.ReLU(),
                          nn.Flatten(), nn.Linear(640, 100), nn.ReLU(), nn.Linear(100, 10))
    params = build_network().get_params()   # nndl's initial parameters, layer by layer
    with torch.no_grad():
        for mod, p in zip((model[0], model[3], model[7], model[9]), (params[1], params[2], params[4], params[5])):
            mod.weight.copy_(torch.from_numpy(p["w"]))
            mod.bias.copy_(torch.from_numpy(p["b"]))
    n = len(x)
    weights = [m.weight for m in (model[0], model[3], model[7], model[9])]
    biases = [m.bias for m in (model[0], model[3], model[7], model[9])]
    opt = torch.optim.SGD([{"params": weights, "weight_decay": LMBDA / n},
                           {"params": biases, "weight_decay": 0.0}], lr=ETA)
    X = torch.from_numpy(np.ascontiguousarray(x)).reshape(n, 1, 28, 28)
    Y = torch.from_numpy(y)
    order = torch.from_numpy(np.random.default_rng(SHUFFLE_SEED).permutation(n))
    t0 = time.perf_counter()
    for k in range(0, n, batch):
        idx = order[k:k + batch]
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(X[idx]), Y[idx])
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        pred = model(torch.from_numpy(tx).reshape(-1, 1, 28, 28)).argmax(dim=1).numpy()
    return seconds, float(np.mean(pred == ty))


def best_of(repeats: int, fn):
    runs = [fn() for _ in range(repeats)]
    return min(s for s, _ in runs), [s for s, _ in runs], runs[-1][1]


# -- memory ---------------------------------------------------------------------

def memory_child(folder: Path, images: int | None, threads: int) -> dict:
    """Runs in its own process: peak RSS after each stage of training on the expanded set."""
    from nndl.data.augment import expanded_training_set

    out = {"baseline_mb": peak_rss_mb()}
    splits = load_splits(folder)
    out["after_load_mb"] = peak_rss_mb()
    expanded = expanded_training_set(splits.training, seed=0)     # what nndl train --expand does
    x, y5 = expanded.x, expanded.y
    out["uint8_array_mb"] = x.size / 2**20
    out["float32_array_mb"] = x.nbytes / 2**20
    out["after_expand_mb"] = peak_rss_mb()
    n = len(x) if images is None else min(images, len(x))
    net = build_network()
    trainer = Trainer(net, SGD(ETA, regularizers=[L2(LMBDA)]), batch_size=10, rng=SHUFFLE_SEED,
                      blas_threads=threads)
    t0 = time.perf_counter()
    trainer.fit(x[:n], y5[:n], 1)       # a view: no copy of the expanded set
    out["train_seconds"] = time.perf_counter() - t0
    out["trained_on"] = n
    out["expanded_images"] = len(x)
    out["validation_accuracy"] = net.accuracy(splits.validation.x, splits.validation.y) / len(splits.validation)
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def run_memory(args, folder: Path) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-child", "--data-dir", str(folder),
           "--threads", str(args.threads[0])]
    if not args.full:
        cmd += ["--images", str(args.images or 20_000)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "src"),
                                                                    os.environ.get("PYTHONPATH")])))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"memory run failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- main -----------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=None,
                    help="folder with the MNIST IDX files (default: $NNDL_DATA or ../shared/data/mnist)")
    ap.add_argument("--images", type=int, default=None, metavar="N",
                    help="train on the first N training images (default: all 50,000; times are still "
                         "reported per 50,000). With --memory: images of the expanded set trained on "
                         "(default 20,000)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], metavar="T",
                    help="thread counts to time, each for nndl and torch (default: 1 2)")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=list(BATCH_SIZES), metavar="M")
    ap.add_argument("--repeats", type=int, default=1, help="time each run this many times, keep the best")
    ap.add_argument("--no-torch", action="store_true", help="time nndl only")
    ap.add_argument("--memory", action="store_true",
                    help="also measure the peak memory of training on the 250,000-image expanded set")
    ap.add_argument("--full", action="store_true", help="--memory: train on all 250,000 expanded images")
    ap.add_argument("--memory-only", action="store_true", help="only the memory measurement")
    ap.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results here")
    args = ap.parse_args(argv)
    if min(args.threads) < 1 or args.repeats < 1 or (args.images is not None and args.images < 1):
        ap.error("--threads, --repeats and --images must be positive")
    folder = args.data_dir or default_data_dir()

    if args.memory_child:
        print(json.dumps(memory_child(folder, args.images, args.threads[0])))
        return 0

    results: dict = {"threads": args.threads, "python": platform.python_version(),
                     "numpy": np.__version__, "machine": platform.machine(),
                     "cpus": os.cpu_count(), "network": "conv:20:5,pool:2,conv:40:5,pool:2,dense:100,softmax:10",
                     "activation": "relu", "eta": ETA, "lmbda": LMBDA}
    if not args.memory_only:
        torch = None
        if not args.no_torch:
            try:
                import torch
            except ImportError:
                print("PyTorch is not installed; timing nndl only. To compare: "
                      "pip install torch==2.13.0")
            else:
                results["torch"] = torch.__version__
        splits = load_splits(folder)
        n = min(args.images or N_EPOCH, len(splits.training))
        x, y = splits.training.x[:n], splits.training.y[:n]
        tx, ty = splits.test.x, splits.test.y
        scale = N_EPOCH / n
        results["images"] = n
        # compile the numba kernels (and warm torch) outside the timings
        run_nndl(x[:200], y[:200], tx[:100], ty[:100], 10, args.threads[0])
        if torch is not None:
            run_torch(torch, x[:200], y[:200], tx[:100], ty[:100], 10)
        print(f"One epoch of the two conv-pool ReLU network on {n} MNIST images; seconds per "
              f"{N_EPOCH:,} images (best of {args.repeats}), test accuracy after the epoch")
        rows = []
        for threads in args.threads:
            if torch is not None:
                torch.set_num_threads(threads)
            for m in args.batch_sizes:
                row = {"batch_size": m, "threads": threads}
                s, runs, acc = best_of(args.repeats, lambda: run_nndl(x, y, tx, ty, m, threads))
                row.update(nndl_seconds=s * scale, nndl_runs=[r * scale for r in runs], nndl_accuracy=acc)
                if torch is not None:
                    s, runs, acc = best_of(args.repeats, lambda: run_torch(torch, x, y, tx, ty, m))
                    row.update(torch_seconds=s * scale, torch_runs=[r * scale for r in runs],
                               torch_accuracy=acc, ratio=row["nndl_seconds"] / (s * scale))
                rows.append(row)
                line = (f"  mb {m:3d}, {threads} thread(s): nndl {row['nndl_seconds']:7.2f} s "
                        f"({row['nndl_accuracy']:.2%})")
                if "ratio" in row:
                    line += (f"   torch {row['torch_seconds']:7.2f} s ({row['torch_accuracy']:.2%})"
                             f"   nndl/torch {row['ratio']:.2f}x")
                print(line, flush=True)
        results["epochs"] = rows
        print()
        print("| mini-batch | threads | nndl s/epoch | torch s/epoch | nndl / torch |")
        print("|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['batch_size']} | {r['threads']} | {r['nndl_seconds']:.2f} | "
                  + (f"{r['torch_seconds']:.2f} | {r['ratio']:.2f} |" if "ratio" in r else "- | - |"))
    if args.memory or args.memory_only:
        mem = run_memory(args, folder)
        results["memory"] = mem
        print()
        print(f"Peak memory, training on the expanded set ({mem['expanded_images']:,} images: "
              f"{mem['uint8_array_mb']:.0f} MiB as uint8, {mem['float32_array_mb']:.0f} MiB as float32), "
              f"one epoch at mini-batch 10 on {mem['trained_on']:,} of them:")
        print(f"  peak RSS: {mem['baseline_mb']:.0f} MiB after imports, {mem['after_load_mb']:.0f} MiB after "
              f"loading MNIST, {mem['after_expand_mb']:.0f} MiB after expanding to float32, "
              f"{mem['peak_rss_mb']:.0f} MiB after training and evaluating "
              f"({mem['train_seconds']:.1f} s training, validation accuracy {mem['validation_accuracy']:.2%})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"Results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
