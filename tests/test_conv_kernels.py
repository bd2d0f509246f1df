"""The compiled conv + pool kernels (nndl.kernels.conv) against the NumPy references.

Synthetic data only. Every kernel path is covered: few input channels
(patches feature-major, dense backward) and many (position-major, sparse
backward through the pool), pooling 1 (Conv2D), 2 (the branch-free
tournament) and 3, one or several threads, float32 and
float64, gradients with zeros (a ReLU that is off), and ties in the pool.
The thread policy and the compile notice are tested here too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from nndl.kernels import cache_dir, on_compile
from nndl.kernels import conv as kc
from nndl.kernels.threads import kernel_threads, limit, thread_limit
from nndl.layers.conv import (
    conv2d_backward_ref, conv2d_forward_ref, maxpool_backward_ref, maxpool_forward_ref,
)

REPO = Path(__file__).resolve().parents[1]

SHAPES = [  # (N, C, H, W, F, k, p)
    (2, 1, 8, 8, 3, 3, 2),      # few channels, the book's first layer in miniature
    (3, 2, 7, 9, 4, 2, 3),      # few channels, pool 3, non-square
    (3, 1, 6, 6, 2, 3, 1),      # few channels, no pooling (Conv2D)
    (3, 5, 8, 8, 6, 3, 2),      # many channels: sparse backward
    (2, 6, 9, 9, 11, 2, 2),     # many channels, F not a multiple of the SIMD width
    (3, 4, 9, 9, 4, 4, 3),      # many channels, pool 3
    (2, 4, 6, 7, 3, 3, 1),      # many channels, no pooling
]


def reference(x, w, b, delta, p):
    """conv -> pool -> + b and its gradients, from the loop references (NCHW)."""
    z = conv2d_forward_ref(x, w)
    if p > 1:
        pooled, arg = maxpool_forward_ref(z, p)
        dz = maxpool_backward_ref(delta, arg, p, z.shape)
    else:
        pooled, arg, dz = z, None, delta
    dx, dw, _ = conv2d_backward_ref(dz, x, w)
    return pooled + b[:, None, None], arg, dx, dw, delta.sum(axis=(0, 2, 3))


def run_kernels(x, w, b, delta, p, threads, need_dx=True):
    """The kernels as the layers call them; results back in NCHW."""
    N, C, H, W = x.shape
    F, _, k, _ = w.shape
    dtype = x.dtype
    xh = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    w2 = kc.to_w2(w)
    PH, PW = (H - k + 1) // p, (W - k + 1) // p
    out = np.empty((N, PH, PW, F), dtype)
    arg = np.empty((N, PH, PW, F) if p > 1 else (0, 0, 0, 0), np.int32)
    cols = np.empty(kc.cols_shape(N, C, H, W, k), dtype)
    with kernel_threads(N) as t:
        assert t == min(threads, N)
        kc.conv_pool_forward(xh, w2.T, b, k, p, True, cols, out, arg, t, kc.group_size(N))
    dwp = np.empty((kc.blocks(N), F, C * k * k), dtype)
    dbp = np.empty((kc.blocks(N), F), dtype)
    dx = np.full((N if need_dx else 0, H, W, C), np.nan, dtype)
    dh = np.ascontiguousarray(delta.transpose(0, 2, 3, 1))
    with kernel_threads(N) as t:
        kc.conv_pool_backward(dh, arg, cols, w2, k, p, dwp, dbp, need_dx, dx, t)
    dw = kc.from_w2(dwp.sum(axis=0), C, k, np.empty_like(w))
    return (out.transpose(0, 3, 1, 2), arg.transpose(0, 3, 1, 2) if p > 1 else None,
            dx.transpose(0, 3, 1, 2) if need_dx else None, dw, dbp.sum(axis=0), cols)


THREADS = sorted({1, min(2, numba.config.NUMBA_NUM_THREADS), min(3, numba.config.NUMBA_NUM_THREADS)})


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("threads", THREADS)
def test_conv_pool_kernels_equal_the_references(shape, threads):
    N, C, H, W, F, k, p = shape
    rng = np.random.default_rng([N, C, H, W, F, k, p, threads])
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((F, C, k, k))
    b = rng.standard_normal(F)
    PH, PW = (H - k + 1) // p, (W - k + 1) // p
    delta = rng.standard_normal((N, F, PH, PW))
    delta[rng.random(delta.shape) < 0.4] = 0.0          # zeros are skipped by the sparse path
    with threadpool_limits(threads, user_api="blas"):
        out, arg, dx, dw, db, _ = run_kernels(x, w, b, delta, p, threads)
    out_r, arg_r, dx_r, dw_r, db_r = reference(x, w, b, delta, p)
    np.testing.assert_allclose(out, out_r, rtol=1e-12, atol=1e-12)
    if p > 1:
        np.testing.assert_array_equal(arg, arg_r)
    np.testing.assert_allclose(dx, dx_r, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(dw, dw_r, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(db, db_r, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("C", [1, 8])
def test_float32_kernels_and_skipping_dx(C):
    rng = np.random.default_rng(C)
    x = rng.standard_normal((5, C, 12, 12)).astype(np.float32)
    w = rng.standard_normal((6, C, 5, 5)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    delta = rng.standard_normal((5, 6, 4, 4)).astype(np.float32)
    out, _, dx, dw, db, _ = run_kernels(x, w, b, delta, 2, threads=numba.get_num_threads())
    out_r, _, dx_r, dw_r, db_r = reference(x.astype(float), w.astype(float), b.astype(float),
                                           delta.astype(float), 2)
    assert out.dtype == dx.dtype == dw.dtype == np.float32
    for got, want in ((out, out_r), (dx, dx_r), (dw, dw_r), (db, db_r)):
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4)
    _, _, no_dx, dw2, _, _ = run_kernels(x, w, b, delta, 2, threads=numba.get_num_threads(), need_dx=False)
    assert no_dx is None
    np.testing.assert_array_equal(dw2, dw)


@pytest.mark.parametrize("C", [1, 5])
def test_inference_forward_with_scratch_patches_equals_training_forward(C):
    # Inference keeps no patches: each thread reuses GROUP images' worth of scratch.
    rng = np.random.default_rng(C)
    N, H, F, k = 2 * kc.GROUP + 3, 9, 4, 3
    x = rng.standard_normal((N, H, H, C))
    w2 = kc.to_w2(rng.standard_normal((F, C, k, k)))
    b = rng.standard_normal(F)
    outs = []
    for keep in (True, False):
        with kernel_threads(N) as threads:
            group = kc.group_size(N)
            out = np.empty((N, 3, 3, F))
            arg = np.empty((N, 3, 3, F), np.int32)
            cols = np.empty(kc.cols_shape(N if keep else threads * group, C, H, H, k))
            kc.conv_pool_forward(x, w2.T, b, k, 2, keep, cols, out, arg, threads, group)
        outs.append((out, arg))
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    np.testing.assert_array_equal(outs[0][1], outs[1][1])


def test_pool_ties_go_to_the_first_position():
    # A 1x1 kernel of weight 1 makes the conv output equal the input, so the
    # pool sees exactly these values: ties in every pattern of a 2x2 window.
    rng = np.random.default_rng(7)
    x = rng.integers(0, 2, size=(4, 1, 8, 8)).astype(np.float64)
    w = np.ones((1, 1, 1, 1))
    out, arg, *_ = run_kernels(x, w, np.zeros(1), np.ones((4, 1, 4, 4)), 2, threads=numba.get_num_threads())
    out_r, arg_r = maxpool_forward_ref(x, 2)
    np.testing.assert_array_equal(out, out_r)
    np.testing.assert_array_equal(arg, arg_r)


@pytest.mark.parametrize("C", [2, 6])
def test_im2col_kernel_is_the_patch_layout(C):
    rng = np.random.default_rng(C)
    N, H, W, k = 2, 6, 7, 3
    x = rng.standard_normal((N, H, W, C))
    cols = np.empty(kc.cols_shape(N, C, H, W, k))
    with kernel_threads(N):
        kc.im2col(x, k, cols)
    OH, OW = H - k + 1, W - k + 1
    for n, oh, ow, i, j, c in [(1, 2, 3, 1, 2, C - 1), (0, 0, 0, 0, 0, 0), (1, OH - 1, OW - 1, k - 1, k - 1, 1)]:
        q, r = oh * OW + ow, (i * k + j) * C + c
        got = cols[n, r, q] if C < kc.FEW_CHANNELS else cols[n, q, r]
        assert got == x[n, oh + i, ow + j, c]


def test_weight_reordering_round_trips():
    w = np.arange(2 * 3 * 4 * 4, dtype=float).reshape(2, 3, 4, 4)
    w2 = kc.to_w2(w)
    assert w2[1, (2 * 4 + 3) * 3 + 1] == w[1, 1, 2, 3]
    np.testing.assert_array_equal(kc.from_w2(w2, 3, 4, np.empty_like(w)), w)


# ---------------------------------------------------------------------------
# Threads
# ---------------------------------------------------------------------------

def test_kernel_threads_follow_the_blas_limit_and_restore_it():
    from nndl.kernels.threads import _blas_libs

    before = [lib.num_threads for lib in _blas_libs()]
    numba_before = numba.get_num_threads()
    with threadpool_limits(1, user_api="blas"):
        assert thread_limit() == 1
        with kernel_threads(64) as threads:
            assert threads == 1
    cap = min(2, numba.config.NUMBA_NUM_THREADS)
    with threadpool_limits(cap, user_api="blas"):
        with kernel_threads(64) as threads:
            assert threads == cap
            assert numba.get_num_threads() == cap
            assert numba.get_parallel_chunksize() == 1                   # dynamic schedule inside
            assert all(lib.num_threads == 1 for lib in _blas_libs())   # BLAS single inside
        with kernel_threads(1) as threads:
            assert threads == 1                                          # never more threads than items
        assert all(lib.num_threads == cap for lib in _blas_libs())
    assert [lib.num_threads for lib in _blas_libs()] == before
    assert numba.get_num_threads() == numba_before
    assert numba.get_parallel_chunksize() == 0


def test_training_limit_gives_the_kernels_n_threads_and_blas_one():
    from nndl.kernels.threads import _blas_libs

    before = [lib.num_threads for lib in _blas_libs()]
    cap = min(2, numba.config.NUMBA_NUM_THREADS)
    with limit(cap):
        assert thread_limit() == cap
        assert all(lib.num_threads == 1 for lib in _blas_libs())
        with kernel_threads(64) as threads:
            assert threads == cap
        with limit(1):                                                   # nests
            assert thread_limit() == 1
        assert thread_limit() == cap
    assert [lib.num_threads for lib in _blas_libs()] == before
    with limit(None):
        assert [lib.num_threads for lib in _blas_libs()] == before


def test_thread_choice_keeps_the_faster_and_re_times_the_other_ever_more_rarely():
    from nndl.kernels.threads import _Choice

    choice = _Choice(cap=2)
    cost = {2: 1.0, 1: 3.0}                      # two threads three times faster

    def run(calls):
        used = []
        for _ in range(calls):
            i = choice.pick()
            used.append(choice.options[i])
            choice.record(i, cost[choice.options[i]])
        return used

    warm = run(2 * (_Choice.WARMUP + 1))          # both timed (first of each dropped)
    assert sorted(warm) == [1] * (_Choice.WARMUP + 1) + [2] * (_Choice.WARMUP + 1)
    used = run(2000)
    probes = [k for k, t in enumerate(used) if t == 1]
    gaps = np.diff(probes)
    assert len(probes) < 12 and all(b >= a for a, b in zip(gaps, gaps[1:]))   # rarer and rarer
    assert max(gaps) <= _Choice.MAX_PROBE
    cost[1], cost[2] = 1.0, 10.0                 # the machine got busy: one thread now wins
    used = run(3000)
    assert used[-500:].count(1) > 490
    assert choice.options[choice.best] == 1


def test_layers_give_the_same_numbers_on_any_number_of_threads():
    # Fixed groups and blocks of images: results do not depend on the threads
    # (nor on which thread took which images), so a seeded run repeats exactly.
    from nndl.layers.conv import ConvPool

    rng = np.random.default_rng(3)
    x = rng.standard_normal((11, 4, 10, 10)).astype(np.float32)
    g = rng.standard_normal((11, 5, 4, 4)).astype(np.float32)
    results = []
    for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS), 1, min(2, numba.config.NUMBA_NUM_THREADS)):
        layer = ConvPool(5, 3, 2, activation="relu")
        layer.build((4, 10, 10), np.random.default_rng(0), np.float32)
        with limit(threads):
            a = layer.forward(x, train=True)
            dx = layer.backward(g)
        results.append((a, dx, layer.grads["w"].copy(), layer.grads["b"].copy()))
    for other in results[1:]:
        for one, two in zip(results[0], other):
            np.testing.assert_array_equal(one, two)


# ---------------------------------------------------------------------------
# Compiling: the on-disk cache and the notice
# ---------------------------------------------------------------------------

def test_cache_dir_honours_numba_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    assert cache_dir().parts[-2:] == ("nndl", "numba")


def test_on_compile_fires_once_before_compiling_and_not_for_compiled_code():
    calls = []

    @numba.njit
    def twice(a):
        return 2 * a

    with on_compile(lambda: calls.append("compiling")) as seen:
        assert twice(3) == 6          # compiles: the callback runs first
        assert twice(4.5) == 9.0      # a second compilation: no second call
    assert calls == ["compiling"] and seen.fired
    with on_compile(lambda: calls.append("again")) as seen:
        assert twice(5) == 10         # already compiled
    assert calls == ["compiling"] and not seen.fired


def test_second_process_loads_the_kernels_from_disk(tmp_path):
    """A first process compiles (and says so on stderr); a second one does not."""
    script = ("import numpy as np\n"
              "from nndl.kernels import on_compile\n"
              "from nndl.layers.conv import ConvPool\n"
              "layer = ConvPool(3, 3, 2, activation='relu')\n"
              "layer.build((4, 6, 6), np.random.default_rng(0), np.float32)\n"
              "x = np.ones((2, 4, 6, 6), np.float32)\n"
              "with on_compile(lambda: print('compiling')) as seen:\n"
              "    layer.forward(x, train=True); layer.backward(np.ones((2, 3, 2, 2), np.float32))\n")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])))
    first = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "compiling"
    assert any((tmp_path / "cache").rglob("*.nbi"))
    second = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == ""
