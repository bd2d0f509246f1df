"""Compiled convolution + max-pooling passes, parallel over the mini-batch.

The readable NumPy functions in :mod:`nndl.layers.conv` (``conv2d_forward``,
``maxpool_forward``, ...) say what is computed; these kernels compute the same
for the layers, faster. ``tests/test_conv_kernels.py`` compares them with the
loop references on synthetic data.

How they are shaped, and why (measured with ``bench/profile_conv.py``):

* **Channels last.** The kernels take and give images as C-contiguous
  ``(N, H, W, C)`` arrays (the layers hand NCHW *views* of them to their
  neighbours). A patch row of an output position is then ``k`` runs of
  ``k*C`` contiguous numbers, the product with the filters gives the feature
  maps as ``(positions, F)``, and pooling compares whole rows of ``F``
  numbers at a time (SIMD over the filters).
* **Two patch layouts.** With many input channels the patches are stored
  position-major, ``cols[q, r]`` (``(P, K)``: long contiguous copies); with few
  (the first layer's single channel) feature-major, ``cols[r, q]`` (``(K, P)``:
  each copy is a run along an image row). ``r = (i*k + j)*C + c`` in both, so
  one weight matrix ``w2[f, r] = w[f, c, i, j]`` serves both.
* **A few images at a time, many at once.** A call hands the images of the
  mini-batch (a small group of them in the forward pass) to numba's threads
  as they come free (``prange`` with a dynamic schedule), and does all the
  work for them (patches, product, pooling) while their data are in the
  core's cache. The products are single-threaded BLAS calls from inside the
  compiled loop, so one pool of threads does everything.
* **Sparse backward through max-pooling.** Only each window's maximum gets a
  gradient (``1/p^2`` of the positions, fewer after a ReLU that is off), so
  with many channels ``dC/dw`` and ``dC/dx`` are summed over those positions
  alone, eight at a time: a quarter of the dense products' arithmetic for
  2 x 2 pooling.
"""

from __future__ import annotations

import numpy as np
import numba
from numba import prange

from . import compiled

#: below this many input channels the patches are stored feature-major (K, P)
FEW_CHANNELS = 4
#: at most this many images per BLAS product in the forward pass
GROUP = 8


#: the backward pass sums dw over at most this many fixed blocks of images
BLOCKS = 8


def group_size(n: int) -> int:
    """Images per forward product for a batch of ``n``: up to :data:`GROUP`,
    in at least four groups to share out. It depends on ``n`` only, so that
    the results do not depend on the number of threads."""
    return max(1, min(GROUP, -(-n // 4)))


def blocks(n: int) -> int:
    """Blocks of images whose dw the backward pass sums separately (then in a
    fixed order, so that the result does not depend on the threads)."""
    return max(1, min(n, BLOCKS))


def to_w2(w: np.ndarray) -> np.ndarray:
    """Filters ``(F, C, k, k)`` -> the patch-ordered matrix ``(F, k*k*C)``."""
    F = w.shape[0]
    return np.ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(F, -1)


def from_w2(w2: np.ndarray, C: int, k: int, out: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_w2`, written into ``out`` of shape ``(F, C, k, k)``."""
    F = w2.shape[0]
    out[...] = w2.reshape(F, k, k, C).transpose(0, 3, 1, 2)
    return out


def cols_shape(n: int, C: int, H: int, W: int, k: int) -> tuple[int, int, int]:
    """Shape of the patch array for ``n`` images: ``(n, P, K)`` or ``(n, K, P)``.
    (Inference scratch: ``n = threads * group``.)"""
    P, K = (H - k + 1) * (W - k + 1), C * k * k
    return (n, K, P) if C < FEW_CHANNELS else (n, P, K)


# ---------------------------------------------------------------------------
# Per-image pieces (inlined into the parallel loops below)
# ---------------------------------------------------------------------------

@compiled(inline="always")
def _im2col_pk(xn, k, OH, OW, c):  # pragma: no cover - compiled
    """``c[oh*OW + ow, (i*k + j)*C + ch] = xn[oh + i, ow + j, ch]``; xn ``(H, W, C)``."""
    H, W, C = xn.shape
    x = xn.reshape(H * W * C)
    run = k * C                                   # x[oh+i, ow:ow+k, :] is contiguous
    for oh in range(OH):
        for ow in range(OW):
            row = c[oh * OW + ow]
            for i in range(k):
                src = ((oh + i) * W + ow) * C
                dst = i * run
                for t in range(run):
                    row[dst + t] = x[src + t]


@compiled(inline="always")
def _col2im_pk(dc, k, OH, OW, dxn):  # pragma: no cover - compiled
    """The adjoint of :func:`_im2col_pk`: ``dxn`` ``(H, W, C)`` = sum of the patch gradients."""
    H, W, C = dxn.shape
    dx = dxn.reshape(H * W * C)
    dx[:] = 0
    run = k * C
    for oh in range(OH):
        for ow in range(OW):
            row = dc[oh * OW + ow]
            for i in range(k):
                dst = dx[((oh + i) * W + ow) * C:((oh + i) * W + ow) * C + run]
                src = row[i * run:(i + 1) * run]
                for t in range(run):
                    dst[t] += src[t]


@compiled(inline="always")
def _im2col_kp(xn, k, OH, OW, c):  # pragma: no cover - compiled
    """``c[(i*k + j)*C + ch, oh*OW + ow] = xn[oh + i, ow + j, ch]``."""
    C = xn.shape[2]
    for i in range(k):
        for j in range(k):
            for ch in range(C):
                row = c[(i * k + j) * C + ch]
                for oh in range(OH):
                    for ow in range(OW):
                        row[oh * OW + ow] = xn[oh + i, ow + j, ch]


@compiled(inline="always")
def _col2im_kp(dc, k, OH, OW, dxn):  # pragma: no cover - compiled
    C = dxn.shape[2]
    dxn[...] = 0
    for i in range(k):
        for j in range(k):
            for ch in range(C):
                row = dc[(i * k + j) * C + ch]
                for oh in range(OH):
                    for ow in range(OW):
                        dxn[oh + i, ow + j, ch] += row[oh * OW + ow]


@compiled(inline="always")
def _window_offsets(p, OW):  # pragma: no cover - compiled
    """``off[a*p + b] = a*OW + b``: a window position's row offset in ``(OH*OW, F)``
    (a table, so that no integer division runs per element)."""
    off = np.empty(p * p, dtype=np.int64)
    for a in range(p):
        for b in range(p):
            off[a * p + b] = a * OW + b
    return off


@compiled(inline="always")
def _pool(z, p, OW, b, o, g):  # pragma: no cover - compiled
    """Max over p x p windows of ``z`` ``(OH*OW, F)`` plus ``b`` -> ``o`` ``(PH, PW, F)``;
    ``g`` gets the winner ``a*p + b`` (the first one on ties)."""
    PH, PW, F = o.shape
    for ph in range(PH):
        for pw in range(PW):
            q = ph * p * OW + pw * p
            if p == 2:
                # The common case as a branch-free tournament: which position
                # wins is data-dependent, and branches would be mispredicted.
                for f in range(F):
                    v0, v1, v2, v3 = z[q, f], z[q + 1, f], z[q + OW, f], z[q + OW + 1, f]
                    m01, m23 = max(v0, v1), max(v2, v3)
                    i01 = np.int32(v1 > v0)              # strict: ties keep the first position
                    i23 = np.int32(v3 > v2) + np.int32(2)
                    c = np.int32(m23 > m01)
                    o[ph, pw, f] = max(m01, m23) + b[f]
                    g[ph, pw, f] = c * i23 + (np.int32(1) - c) * i01
            else:
                for f in range(F):
                    best, code = z[q, f], 0
                    for a in range(p):
                        for c in range(p):
                            v = z[q + a * OW + c, f]
                            if v > best:
                                best, code = v, a * p + c
                    o[ph, pw, f] = best + b[f]
                    g[ph, pw, f] = code


@compiled(inline="always")
def _unpool(d, g, off, p, OW, dz):  # pragma: no cover - compiled
    """Dense ``dz`` ``(OH*OW, F)``: ``d`` ``(PH, PW, F)`` routed to the window maxima."""
    PH, PW, F = d.shape
    dz[...] = 0
    for ph in range(PH):
        for pw in range(PW):
            q = ph * p * OW + pw * p
            dr = d[ph, pw]
            gr = g[ph, pw]
            for f in range(F):
                dz[q + off[gr[f]], f] = dr[f]


@compiled(inline="always")
def _axpy8(acc, first, v, rows, src, off):  # pragma: no cover - compiled
    """``acc (=|+=) sum_t v[t] * src[rows[t], off:off + len(acc)]`` for eight (v, row) pairs."""
    s0, s1, s2, s3 = src[rows[0]], src[rows[1]], src[rows[2]], src[rows[3]]
    s4, s5, s6, s7 = src[rows[4]], src[rows[5]], src[rows[6]], src[rows[7]]
    v0, v1, v2, v3, v4, v5, v6, v7 = v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]
    if first:
        for j in range(acc.shape[0]):
            o = off + j
            acc[j] = ((v0 * s0[o] + v1 * s1[o]) + (v2 * s2[o] + v3 * s3[o])) + \
                     ((v4 * s4[o] + v5 * s5[o]) + (v6 * s6[o] + v7 * s7[o]))
    else:
        for j in range(acc.shape[0]):
            o = off + j
            acc[j] += ((v0 * s0[o] + v1 * s1[o]) + (v2 * s2[o] + v3 * s3[o])) + \
                      ((v4 * s4[o] + v5 * s5[o]) + (v6 * s6[o] + v7 * s7[o]))


@compiled(inline="always")
def _sum_rows(acc, first, v, rows, count, src, off, vbuf, rbuf):  # pragma: no cover - compiled
    """``acc (=|+=) sum_{t < count} v[t] * src[rows[t], off:off + len(acc)]``,
    eight rows per pass (one load and store of ``acc`` per eight multiply-adds)."""
    if count == 0:
        if first:
            acc[:] = 0
        return
    for s in range(0, count, 8):
        n = min(8, count - s)
        for t in range(8):                        # pad the last group with zero weights
            vbuf[t] = v[s + t] if t < n else v[s] * 0
            rbuf[t] = rows[s + t] if t < n else rows[s]
        _axpy8(acc, first and s == 0, vbuf, rbuf, src, off)


# ---------------------------------------------------------------------------
# The passes
# ---------------------------------------------------------------------------

@compiled(nogil=True, parallel=True)
def im2col(x, k, cols):  # pragma: no cover - compiled
    """Patches of every image of ``x`` ``(N, H, W, C)`` into ``cols`` (see :func:`cols_shape`)."""
    N, H, W, C = x.shape
    OH, OW = H - k + 1, W - k + 1
    for n in prange(N):
        if C < FEW_CHANNELS:
            _im2col_kp(x[n], k, OH, OW, cols[n])
        else:
            _im2col_pk(x[n], k, OH, OW, cols[n])


@compiled(nogil=True, parallel=True)
def conv_pool_forward(x, w2t, b, k, p, keep, cols, out, arg, threads, group
                      ):  # pragma: no cover - compiled
    """Convolution, then max-pooling over ``p`` x ``p`` windows, then ``+ b``.

    The images go in groups of ``group`` (one BLAS product each), handed to
    the ``threads`` threads as they come free (numba's dynamic schedule, set
    by :class:`~nndl.kernels.threads.kernel_threads`): a thread that another
    program delays holds up one group, not half the mini-batch.

    Args:
        x: images ``(N, H, W, C)``, C-contiguous.
        w2t: ``(K, F)``, the transpose of :func:`to_w2`'s matrix (K = k*k*C).
        b: ``(F,)``, added after pooling (network3's order).
        k, p: kernel size; pooling size (``p = 1``: no pooling).
        keep: True: ``cols`` is :func:`cols_shape` ``(N, ...)`` and keeps every
            image's patches for the backward pass; False: it is
            ``(threads * group, ...)`` scratch (inference).
        out: ``(N, OH/p, OW/p, F)``, written: the pooled feature maps plus b.
        arg: ``(N, OH/p, OW/p, F)`` int32, written: the window position
            ``a*p + b`` of each maximum (unused when ``p = 1``).
        threads: the numba threads running it (scratch is per thread).
        group: images per product (:func:`group_size`).
    """
    N, H, W, C = x.shape
    F = w2t.shape[1]
    OH, OW = H - k + 1, W - k + 1
    P = OH * OW
    G = group
    z_all = np.empty((threads, G * P, F), dtype=out.dtype)
    for gi in prange((N + G - 1) // G):
        t = numba.get_thread_id()
        z = z_all[t]
        n0 = gi * G
        g = min(G, N - n0)
        base = n0 if keep else t * G              # where this group's patches go
        if C < FEW_CHANNELS:
            for i in range(g):
                c = cols[base + i]
                _im2col_kp(x[n0 + i], k, OH, OW, c)
                np.dot(c.T, w2t, z[i * P:(i + 1) * P])      # (P, F) = cols^T w2^T
        else:
            for i in range(g):
                _im2col_pk(x[n0 + i], k, OH, OW, cols[base + i])
            # one product for the group: BLAS runs larger products faster
            np.dot(cols[base:base + g].reshape(g * P, cols.shape[2]), w2t, z[:g * P])
        for i in range(g):
            zi = z[i * P:(i + 1) * P]
            if p == 1:
                o = out[n0 + i].reshape(P, F)
                for q in range(P):
                    for f in range(F):
                        o[q, f] = zi[q, f] + b[f]
            else:
                _pool(zi, p, OW, b, out[n0 + i], arg[n0 + i])


@compiled(nogil=True, parallel=True)
def conv_pool_backward(delta, arg, cols, w2, k, p, dwp, dbp, need_dx, dx, threads
                       ):  # pragma: no cover - compiled
    """Gradients of :func:`conv_pool_forward` from ``delta`` = dC/d(out).

    The images go in ``len(dwp)`` fixed blocks (:func:`blocks`), handed to
    the threads as they come free; each block's dC/dw and dC/db are summed
    into its own row of ``dwp`` and ``dbp`` (sum those over the first axis:
    the same numbers whatever the number of threads).

    Args:
        delta: ``(N, PH, PW, F)``, C-contiguous.
        arg, cols: from the forward pass (``keep=True``).
        w2: ``(F, K)`` from :func:`to_w2`.
        dwp: ``(blocks, F, K)``, written: each block's share of dC/dw2.
        dbp: ``(blocks, F)``, written: each block's share of dC/db.
        need_dx: False skips dC/dx.
        dx: ``(N, H, W, C)`` C-contiguous, written with dC/dx when ``need_dx``.
        threads: the numba threads running it (scratch is per thread).
    """
    N, PH, PW, F = delta.shape
    K = w2.shape[1]
    T = threads
    NB = dwp.shape[0]
    H, W, C = dx.shape[1], dx.shape[2], dx.shape[3]
    OH, OW = H - k + 1, W - k + 1
    P = OH * OW
    few = C < FEW_CHANNELS
    sparse = p > 1 and not few
    off = _window_offsets(p, OW)
    dt = dwp.dtype
    dwp[...] = 0
    # per-thread scratch (large rows: no two threads write one cache line)
    dc_all = np.empty((T, K, P) if few else (T, P, K), dtype=dt)
    dz_all = np.empty((T, P, F), dtype=dt)
    dwt_all = np.empty((T, K, F), dtype=dt)
    qf_all = np.empty((T, P, F), dtype=np.int64)          # sparse: per position, its (filter, value) pairs
    qv_all = np.empty((T, P, F), dtype=dt)
    for bi in prange(NB):
        t = numba.get_thread_id()
        dw = dwp[bi]
        # small scratch of this block's own (shared rows would bounce between the cores' caches)
        db = np.zeros(F, dtype=dt)
        frow = np.empty(PH * PW, dtype=np.int64)             # sparse: per filter, its (row, value) pairs
        fval = np.empty(PH * PW, dtype=dt)
        qcnt = np.empty(P, dtype=np.int64)
        vbuf = np.empty(8, dtype=dt)
        rbuf = np.empty(8, dtype=np.int64)
        dc, dz, dwt = dc_all[t], dz_all[t], dwt_all[t]
        qf, qv = qf_all[t], qv_all[t]
        for n in range(bi * N // NB, (bi + 1) * N // NB):
            c = cols[n]
            d = delta[n]
            for ph in range(PH):
                for pw in range(PW):
                    for f in range(F):
                        db[f] += d[ph, pw, f]
            if not sparse:
                if p == 1:
                    dz[...] = d.reshape(P, F)
                else:
                    _unpool(d, arg[n], off, p, OW, dz)
                if few:
                    np.dot(c, dz, dwt)                 # (K, F) = cols dz: BLAS likes this way round
                    for r in range(K):
                        for f in range(F):
                            dw[f, r] += dwt[r, f]
                    if need_dx:
                        np.dot(w2.T, dz.T, dc)         # (K, P)
                        _col2im_kp(dc, k, OH, OW, dx[n])
                else:
                    dw += np.dot(dz.T, c)              # (F, K) = dz^T cols
                    if need_dx:
                        np.dot(dz, w2, dc)             # (P, K)
                        _col2im_pk(dc, k, OH, OW, dx[n])
                continue
            g = arg[n]
            qcnt[:] = 0
            for f in range(F):
                m = 0
                for ph in range(PH):
                    for pw in range(PW):
                        v = d[ph, pw, f]
                        if v == 0:                     # e.g. a ReLU that is off: nothing to add
                            continue
                        q = ph * p * OW + pw * p + off[g[ph, pw, f]]
                        frow[m] = q
                        fval[m] = v
                        m += 1
                        qf[q, qcnt[q]] = f
                        qv[q, qcnt[q]] = v
                        qcnt[q] += 1
                _sum_rows(dw[f], False, fval, frow, m, c, 0, vbuf, rbuf)   # dw[f] += sum v cols[q]
            if need_dx:
                for q in range(P):
                    _sum_rows(dc[q], True, qv[q], qf[q], qcnt[q], w2, 0, vbuf, rbuf)  # dc[q] = sum v w2[f]
                _col2im_pk(dc, k, OH, OW, dx[n])
        dbp[bi] = db
