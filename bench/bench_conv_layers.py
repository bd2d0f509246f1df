"""Time forward + backward of the convolutional layers (float32, one thread).

    OMP_NUM_THREADS=1 PYTHONPATH=src python bench/bench_conv_layers.py [--torch]

Prints milliseconds per forward+backward call at mini-batch sizes 10 and 64
for the layers of the book's two conv-pool network, next to two all-NumPy
alternatives that were measured when choosing the implementation, and
(with --torch) PyTorch's CPU conv2d + max_pool2d + relu on the same shapes.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from numpy.lib.stride_tricks import sliding_window_view  # noqa: E402

from nndl.layers.conv import Conv2D, ConvPool, MaxPool2D  # noqa: E402
from nndl.layers.dropout import Dropout  # noqa: E402
from nndl.layers.reshape import Flatten  # noqa: E402


def per_call_ms(fn, repeat: int = 200) -> float:
    for _ in range(10):
        fn()
    best = float("inf")
    for _ in range(3):  # best of 3 runs: less sensitive to other load
        t = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, (time.perf_counter() - t) / repeat * 1e3)
    return best


def layer_ms(layer, shape, n, rng):
    out_shape = layer.build(shape, rng, np.float32)
    x = rng.standard_normal((n, *shape)).astype(np.float32)
    g = rng.standard_normal((n, *out_shape)).astype(np.float32)

    def step():
        layer.forward(x, train=True)
        layer.backward(g)
    return per_call_ms(step)


def numpy_convpool_ms(shape, filters, k, n, rng):
    """The all-NumPy alternative: sliding_window_view + einsum, reshape pooling."""
    C, H, W = shape
    x = rng.standard_normal((n, C, H, W)).astype(np.float32)
    w = rng.standard_normal((filters, C, k, k)).astype(np.float32)
    OH, OW = H - k + 1, W - k + 1

    def step():
        v = sliding_window_view(x, (k, k), axis=(2, 3))
        z = np.einsum("ncpqij,fcij->nfpq", v, w, optimize=True)
        zr = z.reshape(n, filters, OH // 2, 2, OW // 2, 2).transpose(0, 1, 2, 4, 3, 5)
        zr = zr.reshape(n, filters, OH // 2, OW // 2, 4)
        arg = zr.argmax(-1)[..., None]
        a = np.maximum(np.take_along_axis(zr, arg, -1)[..., 0], 0)
        d = np.zeros_like(zr)
        np.put_along_axis(d, arg, (a > 0)[..., None].astype(np.float32), -1)
        dz = d.reshape(n, filters, OH // 2, OW // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(z.shape)
        np.einsum("ncpqij,nfpq->fcij", v, dz, optimize=True)
        dzp = np.pad(dz, ((0, 0), (0, 0), (k - 1, k - 1), (k - 1, k - 1)))
        np.einsum("nfhwij,fcij->nchw", sliding_window_view(dzp, (k, k), axis=(2, 3)),
                  w[:, :, ::-1, ::-1], optimize=True)
    return per_call_ms(step, 50)


def torch_ms(shape, filters, k, n, need_dx):
    import torch
    torch.set_num_threads(1)
    conv = torch.nn.Conv2d(shape[0], filters, k)
    x = torch.randn(n, *shape, requires_grad=need_dx)

    def step():
        y = torch.relu(torch.nn.functional.max_pool2d(conv(x), 2))
        y.backward(torch.ones_like(y))
    return per_call_ms(step)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--torch", action="store_true", help="also time PyTorch")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    cases = [
        ("ConvPool(20, 5) on 1x28x28", lambda: ConvPool(20, 5, 2, "relu"), (1, 28, 28)),
        ("ConvPool(40, 5) on 20x12x12", lambda: ConvPool(40, 5, 2, "relu"), (20, 12, 12)),
        ("Conv2D(20, 5, relu) on 1x28x28", lambda: Conv2D(20, 5, "relu"), (1, 28, 28)),
        ("Conv2D(40, 5, relu) on 20x12x12", lambda: Conv2D(40, 5, "relu"), (20, 12, 12)),
        ("MaxPool2D(2) on 20x24x24", lambda: MaxPool2D(2), (20, 24, 24)),
        ("MaxPool2D(2) on 40x8x8", lambda: MaxPool2D(2), (40, 8, 8)),
        ("Dropout(0.5) on 640", lambda: Dropout(0.5), (640,)),
        ("Flatten on 40x4x4", lambda: Flatten(), (40, 4, 4)),
    ]
    print(f"{'layer (forward+backward, ms/call)':40s} {'N=10':>8s} {'N=64':>8s}")
    for name, make, shape in cases:
        t = [layer_ms(make(), shape, n, rng) for n in (10, 64)]
        print(f"{name:40s} {t[0]:8.3f} {t[1]:8.3f}")
    for name, shape, filters in (("NumPy einsum ConvPool(20,5) 1x28x28", (1, 28, 28), 20),
                                 ("NumPy einsum ConvPool(40,5) 20x12x12", (20, 12, 12), 40)):
        t = [numpy_convpool_ms(shape, filters, 5, n, rng) for n in (10, 64)]
        print(f"{name:40s} {t[0]:8.3f} {t[1]:8.3f}")
    if args.torch:
        for name, shape, filters, need_dx in (
                ("torch conv+pool+relu 1x28x28 (no dx)", (1, 28, 28), 20, False),
                ("torch conv+pool+relu 1x28x28 (dx)", (1, 28, 28), 20, True),
                ("torch conv+pool+relu 20x12x12", (20, 12, 12), 40, True)):
            t = [torch_ms(shape, filters, 5, n, need_dx) for n in (10, 64)]
            print(f"{name:40s} {t[0]:8.3f} {t[1]:8.3f}")


if __name__ == "__main__":
    main()
