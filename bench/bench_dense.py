"""One epoch of the book's chapter 1 network, four ways.

    PYTHONPATH=src python bench/bench_dense.py [--data-dir DIR] [--repeats 3] [--quick] [--json out.json]

The network is ``[784, 30, 10]``, sigmoid neurons, quadratic cost, eta 3.0,
mini-batches of 10, one epoch over the 50,000 MNIST training images, from the
same N(0, 1) initial weights (chapter 1's) and the same mini-batches for
every contender:

* **nndl (compiled)** - ``nndl.train`` on its fast path (the numba kernel),
  float32 and float64. The numba compile is warmed up on a small subset
  first and not counted; the timed call includes everything else
  ``nndl.train`` does (input checks, the sparse copy of the inputs).
* **nndl (NumPy)** - ``nndl.train(..., fast=False)``: the vectorised
  mini-batch code of ``nndl.layers.Dense`` + ``nndl.optimizers.SGD``.
* **book network.py** - the book's per-example algorithm in Python 3,
  float64 (``tests/reference.py: BookNetwork``): ``update_mini_batch`` calling
  ``backprop`` once per example, on the book's list of column vectors.
* **PyTorch** (optional) - CPU autograd, ``torch.set_num_threads(1)``,
  ``nn.Linear`` + ``nn.Sigmoid``, loss ``0.5 * sum((a - y)^2) / m``,
  ``torch.optim.SGD(lr=3.0)``.

Everything runs single-threaded (BLAS and torch limited to one thread), each
timing is the best of ``--repeats`` runs, and the test accuracy after the
epoch is printed beside it as a sanity check (all contenders should land
within a fraction of a percent of each other).

MNIST is read from ``--data-dir``, ``$NNDL_DATA`` or ``../shared/data/mnist``
beside the repository.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
try:
    import nndl  # noqa: E402
except ImportError:  # run from a checkout without PYTHONPATH=src
    sys.path.insert(0, str(REPO / "src"))
    import nndl  # noqa: E402

from reference import BookNetwork, as_book_data  # noqa: E402

SIZES = [784, 30, 10]
ETA = 3.0
BATCH = 10
N_TRAIN = 50_000
INIT_SEED = 0      # the initial weights
SHUFFLE_SEED = 1   # the order of the examples: np.random.default_rng(1).permutation(50000)


# -- data ---------------------------------------------------------------------

def default_data_dir() -> Path:
    env = os.environ.get("NNDL_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data" / "mnist"


def _read_idx_gz(path: Path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_data(folder: Path):
    """(train_x, train_y, test_x, test_y): the book's first 50,000 training
    images and the 10,000 test images, float64 pixels byte/256, int64 labels."""
    try:
        from nndl.data import load_mnist

    except ImportError:  # an nndl without its data package: read the files here
        pass
    else:
        try:
            splits = load_mnist(folder, dtype=np.float64, download=False, progress=False)
        except nndl.NNDLError as e:
            raise SystemExit(f"{e}\n(pass --data-dir or set NNDL_DATA)") from None
        return splits.training.x, splits.training.y, splits.test.x, splits.test.y
    names = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise SystemExit(f"MNIST files {missing} not found in {folder}; pass --data-dir or set NNDL_DATA")
    tx, ty, sx, sy = (_read_idx_gz(folder / n) for n in names)
    to_x = lambda a: a.reshape(len(a), -1) / 256.0  # noqa: E731
    return to_x(tx[:N_TRAIN]), ty[:N_TRAIN].astype(np.int64), to_x(sx), sy.astype(np.int64)


# -- contenders -----------------------------------------------------------------

def initial_params():
    """Chapter 1's initial weights and biases, N(0, 1), float64."""
    return nndl.Network.from_sizes(SIZES, init="large", rng=INIT_SEED, dtype="float64").get_params()


def run_nndl(data, dtype: str, fast: bool):
    x, y, tx, ty = data
    net = nndl.Network.from_sizes(SIZES, init="large", rng=INIT_SEED, dtype=dtype)
    net.set_params(initial_params())
    xs = x.astype(dtype)  # the caller's data in the network's dtype, as an application would hold it
    t0 = time.perf_counter()
    with np.errstate(all="ignore"):
        history = nndl.train(net, nndl.SGD(ETA), xs, y, epochs=1, batch_size=BATCH,
                             rng=SHUFFLE_SEED, fast=fast)
    seconds = time.perf_counter() - t0
    accuracy = net.accuracy(tx, ty) / len(ty)
    return seconds, accuracy, {"epoch_seconds": history["epoch_seconds"][0],
                               "weights": [p["w"].astype(np.float64) for p in net.get_params()]}


def run_book(data, book_train, book_test):
    p = initial_params()
    net = BookNetwork([q["w"] for q in p], [q["b"] for q in p])
    order = np.random.default_rng(SHUFFLE_SEED).permutation(N_TRAIN)
    t0 = time.perf_counter()
    with np.errstate(all="ignore"):   # the book's sigmoid overflows in exp for large |z|
        # network.py's SGD: shuffle, cut into mini-batches, update_mini_batch each
        training_data = [book_train[i] for i in order]
        mini_batches = [training_data[k:k + BATCH] for k in range(0, N_TRAIN, BATCH)]
        for mini_batch in mini_batches:
            net.update_mini_batch(mini_batch, ETA)
    seconds = time.perf_counter() - t0
    with np.errstate(all="ignore"):
        accuracy = net.evaluate(book_test) / len(book_test)
    return seconds, accuracy, {"weights": net.weights}


def run_torch(torch, data, dtype: str):
    x, y, tx, ty = data
    tdt = {"float32": torch.float32, "float64": torch.float64}[dtype]
    model = torch.nn.Sequential(torch.nn.Linear(784, 30), torch.nn.Sigmoid(),
                                torch.nn.Linear(30, 10), torch.nn.Sigmoid()).to(tdt)
    with torch.no_grad():
        for lin, p in zip((model[0], model[2]), initial_params()):
            lin.weight.copy_(torch.from_numpy(p["w"]))   # (out, in): the book's w[j][k]
            lin.bias.copy_(torch.from_numpy(p["b"]))
    X = torch.from_numpy(x).to(tdt)
    Y = torch.nn.functional.one_hot(torch.from_numpy(y), 10).to(tdt)
    order = torch.from_numpy(np.random.default_rng(SHUFFLE_SEED).permutation(N_TRAIN))
    opt = torch.optim.SGD(model.parameters(), lr=ETA)
    t0 = time.perf_counter()
    for k in range(0, N_TRAIN, BATCH):
        idx = order[k:k + BATCH]
        xb, yb = X[idx], Y[idx]
        opt.zero_grad(set_to_none=True)
        a = model(xb)
        loss = 0.5 * ((a - yb) ** 2).sum() / len(idx)
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        pred = model(torch.from_numpy(tx).to(tdt)).argmax(dim=1).numpy()
    return seconds, float(np.mean(pred == ty)), {}


def best_of(repeats: int, fn):
    times, loops, accuracy, extra = [], [], None, {}
    for _ in range(repeats):
        seconds, accuracy, extra = fn()
        times.append(seconds)
        if "epoch_seconds" in extra:
            loops.append(extra["epoch_seconds"])
    if loops:
        extra = {**extra, "epoch_seconds": min(loops), "all_epoch_seconds": loops}
    return min(times), times, accuracy, extra


# -- main -----------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=None,
                    help="folder with the MNIST IDX files (default: $NNDL_DATA or ../shared/data/mnist)")
    ap.add_argument("--repeats", type=int, default=3, help="time each contender this many times, keep the best")
    ap.add_argument("--quick", action="store_true", help="one run each instead of --repeats")
    ap.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results here")
    args = ap.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    if repeats < 1:
        ap.error("--repeats must be at least 1")

    folder = args.data_dir or default_data_dir()
    data = load_data(folder)
    x, y, tx, ty = data
    assert x.shape == (N_TRAIN, 784), x.shape

    try:
        import torch
    except ImportError:
        torch = None

    print(f"One epoch of [784, 30, 10] sigmoid/quadratic, eta {ETA}, mini-batch {BATCH}, "
          f"{N_TRAIN:,} MNIST images; best of {repeats}; one thread", flush=True)

    # warm up the numba kernel (compile or load from cache) on a subset: not timed
    from nndl.kernels import dense as dense_kernel
    if dense_kernel.AVAILABLE:
        for dtype in ("float32", "float64"):
            warm = nndl.Network.from_sizes(SIZES, init="large", rng=0, dtype=dtype)
            with np.errstate(all="ignore"):
                nndl.train(warm, nndl.SGD(ETA), x[:1000].astype(dtype), y[:1000], epochs=1, batch_size=BATCH)

    rows = []

    def record(name, dtype, fn):
        best, times, accuracy, extra = best_of(repeats, fn)
        rows.append({"name": name, "dtype": dtype, "seconds": best, "all_seconds": times,
                     "test_accuracy": accuracy, **{k: v for k, v in extra.items() if k != "weights"}})
        print(f"  {name:<24} {dtype:<8} {best:8.3f} s   accuracy {accuracy:.2%}", flush=True)
        return extra

    fast_extra = {}
    if dense_kernel.AVAILABLE:
        for dtype in ("float32", "float64"):
            fast_extra[dtype] = record("nndl (compiled)", dtype, lambda: run_nndl(data, dtype, True))
    else:
        print("  numba is not installed: no compiled row (pip install numba)")
    for dtype in ("float32", "float64"):
        record("nndl (NumPy path)", dtype, lambda: run_nndl(data, dtype, False))
    book_train = as_book_data(x, y, 10)
    book_test = [(xi.reshape(-1, 1), int(yi)) for xi, yi in zip(tx, ty)]
    book_extra = record("book network.py", "float64", lambda: run_book(data, book_train, book_test))
    if torch is not None:
        torch.set_num_threads(1)
        torch.manual_seed(0)
        for dtype in ("float32", "float64"):
            record(f"PyTorch {torch.__version__.split('+')[0]} autograd", dtype,
                   lambda: run_torch(torch, data, dtype))
    else:
        print("  PyTorch is not installed: no torch row (pip install torch==2.13.0)")

    # sanity: nndl float64 and the book's code start from the same weights and
    # see the same mini-batches, so they should end (almost) equal
    agreement = None
    if "float64" in fast_extra:
        agreement = max(float(np.max(np.abs(a - b)))
                        for a, b in zip(fast_extra["float64"]["weights"], book_extra["weights"]))

    def seconds(name, dtype, key="seconds"):
        for r in rows:
            if r["name"].startswith(name) and r["dtype"] == dtype:
                return r.get(key)
        return None

    ref = seconds("nndl (compiled)", "float32")
    print()
    print(f"{'':<26}{'dtype':<9}{'s/epoch':>9}{'epoch loop':>12}{'x nndl f32':>12}{'accuracy':>10}")
    for r in rows:
        rel = f"{r['seconds'] / ref:10.1f}x" if ref else f"{'-':>11}"
        loop = f"{r['epoch_seconds']:12.3f}" if "epoch_seconds" in r else f"{'':>12}"
        print(f"{r['name']:<26}{r['dtype']:<9}{r['seconds']:9.3f}{loop}{rel:>12}{r['test_accuracy']:>10.2%}")
    print("(s/epoch: the whole nndl.train call, including its one-off input preparation, e.g. the\n"
          " sparse copy of the inputs for the kernel; epoch loop: nndl's own per-epoch time, which\n"
          " is what each further epoch of a longer run costs)")

    ratios = {}
    pairs = [("book network.py / nndl compiled (float64)", ("book network.py", "float64"), ("nndl (compiled)", "float64")),
             ("book network.py / nndl compiled (float32)", ("book network.py", "float64"), ("nndl (compiled)", "float32")),
             ("book network.py / nndl NumPy path (float64)", ("book network.py", "float64"), ("nndl (NumPy path)", "float64")),
             ("torch / nndl compiled (float32)", ("PyTorch", "float32"), ("nndl (compiled)", "float32")),
             ("torch / nndl compiled (float64)", ("PyTorch", "float64"), ("nndl (compiled)", "float64")),
             ("nndl NumPy path / nndl compiled (float32)", ("nndl (NumPy path)", "float32"), ("nndl (compiled)", "float32"))]
    loop_pairs = [("book network.py / nndl compiled epoch loop (float64)", ("book network.py", "float64"), ("nndl (compiled)", "float64")),
                  ("book network.py / nndl compiled epoch loop (float32)", ("book network.py", "float64"), ("nndl (compiled)", "float32")),
                  ("torch / nndl compiled epoch loop (float32)", ("PyTorch", "float32"), ("nndl (compiled)", "float32"))]
    print()
    for label, num, den in pairs:
        a, b = seconds(*num), seconds(*den)
        if a is not None and b is not None:
            ratios[label] = a / b
            print(f"  {label:<54} {a / b:7.1f}x")
    for label, num, den in loop_pairs:
        a, b = seconds(*num), seconds(*den, key="epoch_seconds")
        if a is not None and b is not None:
            ratios[label] = a / b
            print(f"  {label:<54} {a / b:7.1f}x")
    if agreement is not None:
        print(f"\n  max |w_nndl - w_book| after the epoch (float64): {agreement:.1e}")

    if args.json:
        result = {
            "benchmark": "one epoch, [784, 30, 10] sigmoid quadratic, eta 3.0, batch 10, 50,000 MNIST images",
            "repeats": repeats,
            "machine": {"python": platform.python_version(), "numpy": np.__version__,
                        "platform": platform.platform(), "processor": platform.processor(),
                        "cpu_count": os.cpu_count(),
                        "torch": None if torch is None else torch.__version__,
                        "nndl": nndl.__version__},
            "results": rows,
            "ratios": ratios,
            "max_abs_weight_difference_nndl_vs_book_float64": agreement,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
