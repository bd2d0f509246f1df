"""What several test files share.

* where the tests find real MNIST: ``$NNDL_DATA``, else ``../shared/data/mnist``
  beside the repository; tests that need it are skipped when it is absent;
* small dense networks, MNIST-like sparse inputs, parameter comparisons;
* the oracle cases: a network, an optimizer and the per-example reference
  (``tests/reference.py``) that its steps must equal;
* :func:`as_nobody`: a call made with an ordinary user's permissions.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from nndl import L1, L2, SGD, Dense, Network

from reference import ReferenceNetwork

MNIST_DIR = Path(os.environ.get("NNDL_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist")
HAVE_MNIST = (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file() or (MNIST_DIR / "mnist.pkl.gz").is_file()
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason=f"MNIST not in {MNIST_DIR} (set NNDL_DATA)")



def as_nobody(fn):
    """``fn()`` with the permissions of an ordinary user: root ignores folder
    permissions, so when the tests run as root it runs in a forked child that
    drops to uid/gid 65534 (its result must pickle). Returns ``("ok", value)``,
    or ``("error", "ErrorType: message")`` for an NNDLError."""
    from nndl.errors import NNDLError

    def call():
        try:
            return "ok", fn()
        except NNDLError as e:
            return "error", f"{type(e).__name__}: {e}"

    if os.geteuid() != 0:
        return call()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:                                   # the child
        os.close(read)
        try:
            os.setgid(65534)
            os.setuid(65534)
            os.write(write, pickle.dumps(call()))
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return pickle.loads(data)

def dense_net(sizes, hidden="sigmoid", output="sigmoid", cost="quadratic", *, init="default",
              rng=0, dtype="float64") -> Network:
    layers = [Dense(n, hidden, init) for n in sizes[1:-1]] + [Dense(sizes[-1], output, init)]
    return Network(layers, cost, input_shape=(sizes[0],), rng=rng, dtype=dtype)


def sparse_inputs(rng: np.random.Generator, n: int, d: int, zeros: float = 0.5) -> np.ndarray:
    """MNIST-like inputs ``(n, d)``: values in [0, 1), a fraction ``zeros`` of
    them exactly zero (MNIST: about 0.81)."""
    x = rng.random((n, d))
    x[rng.random((n, d)) < zeros] = 0.0
    return x


def assert_params_close(a, b, *, rtol=0.0, atol=0.0, scaled=False):
    """Compare two ``get_params()`` lists; ``scaled`` multiplies atol by max|p|."""
    assert len(a) == len(b)
    for i, (pa, pb) in enumerate(zip(a, b)):
        assert pa.keys() == pb.keys()
        for k in pa:
            tol = atol * max(1.0, float(np.max(np.abs(pb[k])))) if scaled else atol
            np.testing.assert_allclose(pa[k], pb[k], rtol=rtol, atol=tol, err_msg=f"layer {i} {k}")


def assert_same_params(net, ref, rtol=1e-9, atol=1e-11):
    """A book-API network's ``weights`` and ``biases`` (the book's shapes)
    equal the oracle's, layer by layer."""
    assert len(net.weights) == len(ref.weights) and len(net.biases) == len(ref.biases)
    for w, rw in zip(net.weights, ref.weights):
        assert w.shape == rw.shape
        np.testing.assert_allclose(w, rw, rtol=rtol, atol=atol)
    for b, rb in zip(net.biases, ref.biases):
        assert b.shape == rb.shape
        np.testing.assert_allclose(b, rb, rtol=rtol, atol=atol)


def params_of_reference(ref: ReferenceNetwork):
    return [{"w": w, "b": b.reshape(-1)} for w, b in zip(ref.weights, ref.biases)]


def reference_for(net: Network, *, lmbda=0.0, l1=0.0, momentum=0.0) -> ReferenceNetwork:
    p = net.get_params()
    return ReferenceNetwork([q["w"] for q in p], [q["b"] for q in p],
                            [layer.activation.name for layer in net.layers], net.cost.name,
                            lmbda=lmbda, l1=l1, momentum=momentum)


HIDDEN_ACTIVATIONS = ["sigmoid", "tanh", "relu", "linear"]


VALID_PAIRS = [("quadratic", "sigmoid"), ("quadratic", "tanh"), ("quadratic", "linear"),
               ("quadratic", "relu"), ("cross-entropy", "sigmoid"), ("log-likelihood", "softmax")]


ORACLE_CASES = {
    "quadratic+sigmoid": dict(hidden="sigmoid", output="sigmoid", cost="quadratic", eta=3.0),
    "cross-entropy+sigmoid+L2": dict(hidden="sigmoid", output="sigmoid", cost="cross-entropy",
                                     eta=0.5, lmbda=5.0),
    "quadratic+sigmoid+momentum": dict(hidden="sigmoid", output="sigmoid", cost="quadratic",
                                       eta=1.0, momentum=0.9),
    "cross-entropy+L2+momentum": dict(hidden="sigmoid", output="sigmoid", cost="cross-entropy",
                                      eta=0.3, lmbda=5.0, momentum=0.5),
    "relu+softmax+log-likelihood+L1+momentum": dict(hidden="relu", output="softmax",
                                                    cost="log-likelihood", eta=0.1, l1=2.0,
                                                    momentum=0.9),
    "tanh+linear+quadratic+L1+L2": dict(hidden="tanh", output="linear", cost="quadratic",
                                        eta=0.05, lmbda=1.0, l1=0.5),
}


def oracle_setup(case, sizes=(12, 7, 5, 4), n=40, seed=11):
    rng = np.random.default_rng(seed)
    net = dense_net(list(sizes), case["hidden"], case["output"], case["cost"], rng=rng)
    x = sparse_inputs(rng, n, sizes[0])
    y = rng.integers(0, sizes[-1], n)
    regs = ([L2(case["lmbda"])] if case.get("lmbda") else []) + ([L1(case["l1"])] if case.get("l1") else [])
    opt = SGD(case["eta"], momentum=case.get("momentum", 0.0), regularizers=regs)
    ref = reference_for(net, lmbda=case.get("lmbda", 0.0), l1=case.get("l1", 0.0),
                        momentum=case.get("momentum", 0.0))
    return net, opt, ref, x, y


def peak_mb(fn) -> float:
    """Peak traced allocation (Python and NumPy) while ``fn()`` runs, in MB."""
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak / 2**20
