"""A compiled SGD epoch for networks made only of ``Dense`` layers.

Why this exists: at the book's mini-batch size of 10, a NumPy step is a few
dozen tiny array operations whose fixed costs dominate; even the bare matrix
products leave little room. This kernel runs many mini-batches per call in
numba-compiled loops and uses one property of MNIST-like inputs: most pixels
are zero (about 81%), so the first layer's forward pass and its weight update
touch only the non-zero inputs (the input is given as CSR rows). The
arithmetic is the same as :class:`nndl.layers.Dense` + :class:`nndl.optimizers.SGD`
(BP1-BP4, eq. 20-21, 93, 107-108); ``tests/test_kernels.py`` checks that
against ``Trainer(fast=False)`` for every activation, cost, L1, L2, momentum
and both dtypes, on synthetic sparse data (always) and on MNIST.

Weights are handled transposed here, ``wT`` of shape ``(n_in, n_out)``, so that
the inner loops run over contiguous memory.
"""

from __future__ import annotations

import numpy as np

try:
    import numba

    from . import compiled
except ImportError:  # pragma: no cover - numba is a dependency; this keeps nndl usable without it
    numba = None

#: LLVM's fast-math flags, without reassociation: with "reassoc" a kernel compiled
#: afresh and the same kernel loaded from numba's cache summed in different orders,
#: so a seeded run's numbers depended on whether the cache was warm.
FASTMATH = {"nnan", "ninf", "nsz", "arcp", "afn"}

# activation codes
SIGMOID, TANH, RELU, LINEAR, SOFTMAX = 0, 1, 2, 3, 4
ACT_CODES = {"sigmoid": SIGMOID, "tanh": TANH, "relu": RELU, "linear": LINEAR, "softmax": SOFTMAX}
# output error codes: BP1 as (a - y) * sigma'(z), or fused (a - y)
DELTA_QUADRATIC, DELTA_FUSED = 0, 1

AVAILABLE = numba is not None


def supports(network, optimizer) -> bool:
    """Whether this kernel can train ``network`` with ``optimizer``."""
    from ..layers.dense import Dense
    from ..optimizers import SGD
    from ..regularizers import L1, L2

    if not AVAILABLE or type(optimizer) is not SGD:
        return False
    if any(type(r) not in (L1, L2) for r in optimizer.regularizers):
        return False
    if not all(type(layer) is Dense for layer in network.layers):
        return False
    if any(layer.activation.name not in ACT_CODES for layer in network.layers):
        return False
    return network.cost.name in ("quadratic", "cross-entropy", "log-likelihood")


def to_csr(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of ``x`` ``(N, d)`` as CSR: (indptr ``(N+1,)``, indices, values)."""
    x = np.ascontiguousarray(x)
    if AVAILABLE:
        return _to_csr(x)
    mask = x != 0
    indptr = np.zeros(x.shape[0] + 1, dtype=np.int64)
    np.cumsum(mask.sum(axis=1), out=indptr[1:])
    rows, cols = np.nonzero(mask)
    return indptr, cols.astype(np.int32), x[rows, cols]


if AVAILABLE:

    @compiled()
    def _to_csr(x):
        # Two passes: count each row's non-zeros (a vectorised loop), then copy
        # them. The copy branches on zero: in images the zeros come in long
        # runs, so the branch is well predicted, and it beat a branch-free copy
        # (every entry stored, the position advancing past non-zeros) by 25%
        # on MNIST.
        n, d = x.shape
        indptr = np.zeros(n + 1, dtype=np.int64)
        for i in range(n):
            c = 0
            for j in range(d):
                c += x[i, j] != 0
            indptr[i + 1] = indptr[i] + c
        nnz = indptr[n]
        indices = np.empty(nnz, dtype=np.int32)
        values = np.empty(nnz, dtype=x.dtype)
        for i in range(n):
            row = x[i]
            row_indices = indices[indptr[i]:indptr[i + 1]]
            row_values = values[indptr[i]:indptr[i + 1]]
            q = 0
            for j in range(d):
                v = row[j]
                if v != 0:
                    row_indices[q] = j
                    row_values[q] = v
                    q += 1
        return indptr, indices, values

    @compiled(inline="always", fastmath=FASTMATH, error_model="numpy")
    def _act(code, z):
        if code == SIGMOID:
            if z >= 0:
                return 1.0 / (1.0 + np.exp(-z))
            e = np.exp(z)
            return e / (1.0 + e)
        if code == TANH:
            return np.tanh(z)
        if code == RELU:
            return z if z > 0 else z * 0
        return z

    @compiled(inline="always", fastmath=FASTMATH, error_model="numpy")
    def _act_prime(code, z, a):
        if code == SIGMOID:
            return a * (1 - a)
        if code == TANH:
            return 1 - a * a
        if code == RELU:
            return a * 0 + 1 if z > 0 else a * 0
        return a * 0 + 1

    @compiled(fastmath=FASTMATH, error_model="numpy")
    def _activate(code, z, a, rows):
        if code == SOFTMAX:
            for i in range(rows):
                zmax = z[i, 0]
                for j in range(z.shape[1]):
                    zmax = max(zmax, z[i, j])
                s = z[i, 0] * 0
                for j in range(z.shape[1]):
                    a[i, j] = np.exp(z[i, j] - zmax)
                    s += a[i, j]
                for j in range(z.shape[1]):
                    a[i, j] /= s
        else:
            for i in range(rows):
                for j in range(z.shape[1]):
                    a[i, j] = _act(code, z[i, j])

    @compiled(fastmath=FASTMATH, error_model="numpy")
    def _decay(wT, vT, eta, mu, l2, l1, n):
        """The dense part of a weight step: momentum decay and the weight penalties.

        Without momentum: w -= eta*(l2/n*w + l1/n*sgn(w)); with momentum the same
        goes into v (v = mu*v - eta*penalty'), and the caller adds v later."""
        c2 = eta * l2 / n
        c1 = eta * l1 / n
        if mu == 0:
            if c2 == 0 and c1 == 0:
                return
            for k in range(wT.shape[0]):
                for j in range(wT.shape[1]):
                    w = wT[k, j]
                    wT[k, j] = w - c2 * w - c1 * np.sign(w)
        else:
            for k in range(wT.shape[0]):
                for j in range(wT.shape[1]):
                    w = wT[k, j]
                    vT[k, j] = mu * vT[k, j] - c2 * w - c1 * np.sign(w)

    @compiled(fastmath=FASTMATH, error_model="numpy")
    def _forward_sparse(indptr, indices, values, order, s, rows, w0, b0, z):
        # z_i = b + sum over the non-zero inputs x_ip of x_ip * wT[p, :]
        for i in range(rows):
            r = order[s + i]
            zi = z[i]
            zi[:] = b0
            for q in range(indptr[r], indptr[r + 1]):
                v = values[q]
                row = w0[indices[q]]
                for j in range(zi.shape[0]):
                    zi[j] += v * row[j]

    @compiled(fastmath=FASTMATH, error_model="numpy")
    def _forward_dense(a_prev, wT, b, z, rows):
        # z = a_prev w^T + b, with wT = w^T of shape (n_in, n_out)
        for i in range(rows):
            zi = z[i]
            zi[:] = b
            for k in range(wT.shape[0]):
                ak = a_prev[i, k]
                row = wT[k]
                for j in range(zi.shape[0]):
                    zi[j] += ak * row[j]

    @compiled(fastmath=FASTMATH, error_model="numpy")
    def _back_delta(d, wT, zp, ap, code, dp, rows):
        # BP2: delta^{l-1} = (w^l)^T delta^l * sigma'(z^{l-1})
        for i in range(rows):
            di = d[i]
            for k in range(wT.shape[0]):
                row = wT[k]
                acc = di[0] * 0
                for j in range(di.shape[0]):
                    acc += di[j] * row[j]
                dp[i, k] = acc * _act_prime(code, zp[i, k], ap[i, k])

    @compiled(fastmath=FASTMATH, error_model="numpy")
    def _outer_step(ap, d, target, c, rows):
        # BP4 and the step: target -= c * sum_i a_prev_i^T delta_i
        for i in range(rows):
            di = d[i]
            for k in range(target.shape[0]):
                ca = c * ap[i, k]
                row = target[k]
                for j in range(di.shape[0]):
                    row[j] -= ca * di[j]

    @compiled(fastmath=FASTMATH, error_model="numpy")
    def _outer_step_sparse(indptr, indices, values, order, s, rows, d, target, c):
        for i in range(rows):
            r = order[s + i]
            di = d[i]
            for q in range(indptr[r], indptr[r + 1]):
                cv = c * values[q]
                row = target[indices[q]]
                for j in range(di.shape[0]):
                    row[j] -= cv * di[j]

    @compiled(fastmath=FASTMATH, error_model="numpy")
    def _add(w, v):
        for k in range(w.shape[0]):
            for j in range(w.shape[1]):
                w[k, j] += v[k, j]

    @compiled(fastmath=FASTMATH, error_model="numpy")
    def _output_delta(a, z, y, order, s, rows, code, delta_code, d):
        for i in range(rows):
            label = y[order[s + i]]
            for j in range(a.shape[1]):
                diff = a[i, j] - (1 if j == label else 0)
                if delta_code == DELTA_FUSED:
                    d[i, j] = diff                                         # a - y
                else:
                    d[i, j] = diff * _act_prime(code, z[i, j], a[i, j])   # (a - y) * sigma'(z)

    @compiled(fastmath=FASTMATH, error_model="numpy")
    def sgd_batches(indptr, indices, values, y, order, start, stop, m,
                    wTs, bs, vwTs, vbs, zs, as_, deltas, acts, delta_code,
                    eta, mu, l2, l1, n):
        """Run the mini-batches ``order[start:stop]`` (in steps of ``m``).

        Args (L = number of layers):
            indptr, indices, values: training inputs as CSR rows.
            y: integer labels ``(N,)``; order: example order for this epoch.
            wTs[l] ``(n_in, n_out)``, bs[l] ``(n_out,)``: parameters, updated in place
                (n_out of a hidden layer padded with zero neurons, n_in the true
                width of the layer below: see DenseEpochRunner).
            vwTs, vbs: momentum velocities (same shapes; unused when mu == 0).
            zs, as_, deltas: scratch ``(m, n_out)`` per layer.
            acts: activation code per layer; delta_code: BP1 form.
        """
        L = len(wTs)
        for s in range(start, stop, m):
            rows = min(m, stop - s)
            c = eta / rows
            # forward: layer 0 over the non-zero inputs only, then the others
            _forward_sparse(indptr, indices, values, order, s, rows, wTs[0], bs[0], zs[0])
            _activate(acts[0], zs[0], as_[0], rows)
            for l in range(1, L):
                _forward_dense(as_[l - 1], wTs[l], bs[l], zs[l], rows)
                _activate(acts[l], zs[l], as_[l], rows)
            # BP1: the output error
            _output_delta(as_[L - 1], zs[L - 1], y, order, s, rows, acts[L - 1], delta_code, deltas[L - 1])
            # backward through layers L-1 .. 0; each layer's delta for the layer
            # below is computed before its own weights change
            for l in range(L - 1, -1, -1):
                wT = wTs[l]
                d = deltas[l]
                if l > 0:
                    _back_delta(d, wT, zs[l - 1], as_[l - 1], acts[l - 1], deltas[l - 1], rows)
                vT = vwTs[l]
                _decay(wT, vT, eta, mu, l2, l1, n)
                target = vT if mu != 0 else wT
                if l > 0:
                    _outer_step(as_[l - 1], d, target, c, rows)
                else:
                    _outer_step_sparse(indptr, indices, values, order, s, rows, d, target, c)
                if mu != 0:
                    _add(wT, vT)
                _step_bias(bs[l], vbs[l], d, rows, c, mu)

    @compiled(fastmath=FASTMATH, error_model="numpy")
    def _step_bias(b, vb, d, rows, c, mu):
        # BP3 and the step: b -= (eta/m) sum_i delta_i (momentum: through v)
        if mu != 0:
            for j in range(b.shape[0]):
                vb[j] *= mu
        for i in range(rows):
            for j in range(b.shape[0]):
                if mu != 0:
                    vb[j] -= c * d[i, j]
                else:
                    b[j] -= c * d[i, j]
        if mu != 0:
            for j in range(b.shape[0]):
                b[j] += vb[j]


#: hidden layers are held a multiple of this many neurons wide (see DenseEpochRunner)
PAD = 8


def _padded(n: int) -> int:
    return -(-n // PAD) * PAD


class DenseEpochRunner:
    """Holds the transposed parameters and scratch buffers for one training run.

    ``run(order, start, stop)`` trains on ``order[start:stop]``;
    ``sync()`` writes the parameters back into the network's layers (call it
    before evaluating or saving). Velocities persist across calls, like
    :class:`~nndl.optimizers.SGD`'s.
    """

    def __init__(self, network, optimizer, x: np.ndarray, y: np.ndarray, batch_size: int,
                 n: int | None = None) -> None:
        from ..regularizers import L1, L2

        dt = network.dtype
        self.network = network
        self.optimizer = optimizer
        self.m = int(batch_size)
        self.indptr, self.indices, self.values = to_csr(np.asarray(x, dtype=dt))
        self.y = np.ascontiguousarray(y, dtype=np.int64)
        self.n = x.shape[0] if n is None else int(n)   # the n of lambda/n
        layers = network.layers
        optimizer.bind(layers)
        self.acts = np.array([ACT_CODES[layer.activation.name] for layer in layers], dtype=np.int64)
        fused = layers[-1].activation.name in network.cost.fused_with
        self.delta_code = DELTA_FUSED if fused else DELTA_QUADRATIC
        self.l2 = sum(r.lmbda for r in optimizer.regularizers if isinstance(r, L2))
        self.l1 = sum(r.lmbda for r in optimizer.regularizers if isinstance(r, L1))
        # Hidden layers are held PAD-wide (a multiple of 8 neurons): the loops
        # over a layer's neurons then run in whole SIMD vectors, with no scalar
        # tail (30 neurons took 30% longer per epoch than 32). The extra
        # neurons have zero weights and biases, their deltas stay zero (the
        # layer above reads only the true neurons), so they never change and
        # change nothing. The output layer keeps its true width (BP1, softmax).
        self.widths = [layer.n_out for layer in layers]
        wide = [_padded(n) for n in self.widths[:-1]] + self.widths[-1:]
        n_ins = [layers[0].params["w"].shape[1]] + self.widths[:-1]
        self.wTs = tuple([np.zeros((n_in, w), dtype=dt) for n_in, w in zip(n_ins, wide)])
        self.bs = tuple([np.zeros(w, dtype=dt) for w in wide])
        self.vwTs = tuple([np.zeros_like(wT) for wT in self.wTs])
        self.vbs = tuple([np.zeros_like(b) for b in self.bs])
        self.zs = tuple([np.zeros((self.m, w), dtype=dt) for w in wide])
        self.as_ = tuple([np.zeros((self.m, w), dtype=dt) for w in wide])
        self.deltas = tuple([np.zeros((self.m, w), dtype=dt) for w in wide])
        self.load()
        # Compile (or load from numba's cache) now, so that epoch timings measure training.
        self.run(np.zeros(0, dtype=np.int64), 0, 0)

    def load(self) -> None:
        """Copy the network's current parameters and the optimizer's velocities
        in (they may have been changed outside, e.g. by a resume)."""
        vel = self.optimizer.velocity
        for i, layer in enumerate(self.network.layers):
            n = self.widths[i]
            self.wTs[i][:, :n] = layer.params["w"].T
            self.bs[i][:n] = layer.params["b"]
            self.vwTs[i][:, :n] = vel[(i, "w")].T if (i, "w") in vel else 0
            self.vbs[i][:n] = vel[(i, "b")] if (i, "b") in vel else 0

    def run(self, order: np.ndarray, start: int, stop: int) -> None:
        dt = self.network.dtype.type
        opt = self.optimizer
        sgd_batches(self.indptr, self.indices, self.values, self.y, order, start, stop, self.m,
                    self.wTs, self.bs, self.vwTs, self.vbs, self.zs, self.as_, self.deltas,
                    self.acts, self.delta_code, dt(opt.eta), dt(opt.momentum), dt(self.l2),
                    dt(self.l1), dt(self.n))

    def sync(self) -> None:
        for i, layer in enumerate(self.network.layers):
            n = self.widths[i]
            layer.params["w"][...] = self.wTs[i][:, :n].T
            layer.params["b"][...] = self.bs[i][:n]
            if self.optimizer.momentum:
                self.optimizer.velocity[(i, "w")] = self.vwTs[i][:, :n].T.copy()
                self.optimizer.velocity[(i, "b")] = self.vbs[i][:n].copy()
