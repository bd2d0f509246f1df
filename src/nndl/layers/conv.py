"""Convolutional layers (book ch. 6): ``Conv2D``, ``MaxPool2D`` and ``ConvPool``.

``ConvPool`` is the book's ``network3.ConvPoolLayer``: convolution, max-pooling,
then the bias and the activation, in that order (pooling happens *before* the
bias and the activation, exactly as in network3.py).

Images are batch-first NCHW: ``x`` has shape ``(N, C, H, W)``; filters are
``w`` of shape ``(F, C, k, k)`` (network3's ``filter_shape``).

**Convolution or cross-correlation?** Theano's ``conv2d`` flips the kernel
(a true convolution). We compute the cross-correlation

    z[n, f, oh, ow] = sum_{c, i, j} w[f, c, i, j] x[n, c, oh + i, ow + j]

like every modern library. For learning the two are the same model: the
learned ``w`` is just the flipped one. Only "valid" convolution with stride 1
is provided, as in the book: OH = H - k + 1, OW = W - k + 1.

How it is computed:

* The layers run compiled kernels (:mod:`nndl.kernels.conv`): convolution,
  max-pooling and the bias in one pass per image, with images kept
  channels-last inside (``z`` and ``a`` are NCHW *views* of ``(N, H, W, C)``
  arrays), the mini-batch split across threads, and a backward pass that
  only touches each pooling window's maximum. ``bench/profile_conv.py`` shows
  where the time goes; ``bench/bench_conv_layers.py`` times the layers.
* The functions below are the readable version of the same arithmetic:
  ``im2col`` copies every k x k patch into a column of a matrix ``cols`` of
  shape ``(C k k, N OH OW)``, so that the forward pass and both gradients are
  single matrix products: ``z = W cols``, ``dW = dz cols^T``,
  ``dcols = W^T dz``; ``col2im`` adds ``dcols`` back onto the pixels.
  Max-pooling keeps the position of each window's maximum for the backward
  pass.
* ``conv2d_forward_ref`` / ``conv2d_backward_ref`` / ``maxpool_*_ref`` are
  plain loops that say the same thing slowly; the tests compare the kernels
  and the functions against them.
"""

from __future__ import annotations

import numpy as np

from .. import activations, initializers
from ..errors import ConfigError, positive_int
from ..kernels import compiled
from ..kernels import conv as conv_kernels
from ..kernels.threads import kernel_threads
from .base import Layer

__all__ = [
    "im2col", "col2im",
    "conv2d_forward", "conv2d_backward", "conv2d_forward_ref", "conv2d_backward_ref",
    "maxpool_forward", "maxpool_backward", "maxpool_forward_ref", "maxpool_backward_ref",
    "Conv2D", "MaxPool2D", "ConvPool",
]


# ---------------------------------------------------------------------------
# Compiled loops of the readable functions (the layers use nndl.kernels.conv).
# ---------------------------------------------------------------------------

@compiled(nogil=True)
def _im2col_kernel(x, k, cols):  # pragma: no cover - compiled
    N, C, H, W = x.shape
    OH = H - k + 1
    OW = W - k + 1
    P = OH * OW
    for c in range(C):
        for i in range(k):
            for j in range(k):
                r = (c * k + i) * k + j
                for n in range(N):
                    for oh in range(OH):
                        o = n * P + oh * OW
                        for ow in range(OW):
                            cols[r, o + ow] = x[n, c, oh + i, ow + j]


@compiled(nogil=True)
def _col2im_kernel(cols, k, dx):  # pragma: no cover - compiled
    N, C, H, W = dx.shape
    OH = H - k + 1
    OW = W - k + 1
    P = OH * OW
    dx[...] = 0
    for c in range(C):
        for i in range(k):
            for j in range(k):
                r = (c * k + i) * k + j
                for n in range(N):
                    for oh in range(OH):
                        o = n * P + oh * OW
                        for ow in range(OW):
                            dx[n, c, oh + i, ow + j] += cols[r, o + ow]


@compiled(nogil=True)
def _maxpool_forward_kernel(z, p, out, arg):  # pragma: no cover - compiled
    N, C, PH, PW = out.shape
    for n in range(N):
        for c in range(C):
            for ph in range(PH):
                for pw in range(PW):
                    best = z[n, c, ph * p, pw * p]
                    best_at = 0
                    for a in range(p):
                        for b in range(p):
                            v = z[n, c, ph * p + a, pw * p + b]
                            if v > best:  # strict: ties keep the first position
                                best = v
                                best_at = a * p + b
                    out[n, c, ph, pw] = best
                    arg[n, c, ph, pw] = best_at


@compiled(nogil=True)
def _maxpool_backward_kernel(g, arg, p, dz):  # pragma: no cover - compiled
    N, C, PH, PW = g.shape
    dz[...] = 0
    for n in range(N):
        for c in range(C):
            for ph in range(PH):
                for pw in range(PW):
                    t = arg[n, c, ph, pw]
                    dz[n, c, ph * p + t // p, pw * p + t % p] = g[n, c, ph, pw]


# ---------------------------------------------------------------------------
# Pure functions
# ---------------------------------------------------------------------------

def _scratch(buf: np.ndarray | None, shape: tuple[int, ...], dtype) -> np.ndarray:
    """``buf`` if it has this shape and dtype, else a new empty array."""
    if buf is not None and buf.shape == tuple(shape) and buf.dtype == dtype:
        return buf
    return np.empty(shape, dtype=dtype)


def im2col(x: np.ndarray, k: int, out: np.ndarray | None = None) -> np.ndarray:
    """Unfold the k x k patches of ``x`` into columns.

    Args:
        x: images, shape ``(N, C, H, W)``.
        k: kernel size.
        out: optional buffer of the result's shape and dtype to write into.

    Returns:
        ``cols`` of shape ``(C*k*k, N*OH*OW)`` with
        ``cols[(c*k + i)*k + j, (n*OH + oh)*OW + ow] = x[n, c, oh + i, ow + j]``,
        so a row matches ``w.reshape(F, C*k*k)``'s column order.
    """
    N, C, H, W = x.shape
    OH, OW = H - k + 1, W - k + 1
    cols = _scratch(out, (C * k * k, N * OH * OW), x.dtype)
    _im2col_kernel(x, k, cols)
    return cols


def col2im(cols: np.ndarray, x_shape: tuple[int, int, int, int], k: int,
           out: np.ndarray | None = None) -> np.ndarray:
    """The adjoint of :func:`im2col`: add each entry of ``cols`` onto the pixel
    it was copied from. Shape ``(C*k*k, N*OH*OW)`` -> ``x_shape = (N, C, H, W)``."""
    dx = _scratch(out, tuple(x_shape), cols.dtype)
    _col2im_kernel(cols, k, dx)
    return dx


def conv2d_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None,
                   cols: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Valid, stride-1 cross-correlation of ``x`` with the filters ``w``.

    ``z[n, f, oh, ow] = sum_{c,i,j} w[f, c, i, j] x[n, c, oh+i, ow+j] + b[f]``

    Args:
        x: ``(N, C, H, W)``.
        w: ``(F, C, k, k)``.
        b: ``(F,)`` or None for no bias.
        cols: optional scratch buffer for the im2col matrix.

    Returns:
        ``(z, cols)``: ``z`` of shape ``(N, F, OH, OW)`` (an NCHW view of a
        filter-major ``(F, N, OH, OW)`` array) and the im2col matrix
        ``(C*k*k, N*OH*OW)`` that :func:`conv2d_backward` needs.
    """
    N = x.shape[0]
    F, C, k, _ = w.shape
    OH, OW = x.shape[2] - k + 1, x.shape[3] - k + 1
    cols = im2col(x, k, out=cols)
    zf = np.matmul(w.reshape(F, C * k * k), cols)    # (F, N*OH*OW): one GEMM
    if b is not None:
        zf += b[:, None]
    return zf.reshape(F, N, OH, OW).transpose(1, 0, 2, 3), cols


def conv2d_backward(dz: np.ndarray, w: np.ndarray, cols: np.ndarray,
                    x_shape: tuple[int, int, int, int], *, dw_out: np.ndarray | None = None,
                    dcols: np.ndarray | None = None, need_dx: bool = True
                    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of :func:`conv2d_forward`, summed over the batch.

    Args:
        dz: dC/dz, shape ``(N, F, OH, OW)`` (cheapest as an NCHW view of a
            filter-major array, as :func:`conv2d_forward` returns ``z``).
        w: ``(F, C, k, k)``.
        cols: the im2col matrix of the forward pass, ``(C*k*k, N*OH*OW)``.
        x_shape: ``(N, C, H, W)``.
        dw_out: optional array of ``w``'s shape to write dC/dw into.
        dcols: optional scratch buffer of ``cols``' shape.
        need_dx: False skips dC/dx (returned as None).

    Returns:
        ``(dx, dw, db)`` of shapes ``x_shape``, ``(F, C, k, k)``, ``(F,)``.
    """
    F, C, k, _ = w.shape
    K = C * k * k
    dzf = dz.transpose(1, 0, 2, 3).reshape(F, -1)    # (F, N*OH*OW); free if dz is filter-major
    db = dzf.sum(axis=1)
    if dw_out is not None:
        dw = np.matmul(dzf, cols.T, out=dw_out.reshape(F, K)).reshape(w.shape)
    else:
        dw = np.matmul(dzf, cols.T).reshape(w.shape)
    if not need_dx:
        return None, dw, db
    dcols = _scratch(dcols, cols.shape, cols.dtype)
    np.matmul(w.reshape(F, K).T, dzf, out=dcols)
    return col2im(dcols, x_shape, k), dw, db


def maxpool_forward(z: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping p x p max-pooling (``H`` and ``W`` divisible by ``p``).

    Args:
        z: ``(N, C, H, W)``, any memory layout.

    Returns:
        ``(out, arg)``: ``out`` of shape ``(N, C, H/p, W/p)`` and ``arg`` (same
        shape, int32) the position ``a*p + b`` of the maximum inside each
        window, the first one on ties.
    """
    N, C, H, W = z.shape
    out = np.empty((N, C, H // p, W // p), dtype=z.dtype)
    arg = np.empty(out.shape, dtype=np.int32)
    _maxpool_forward_kernel(z, p, out, arg)
    return out, arg


def maxpool_backward(g: np.ndarray, arg: np.ndarray, p: int, z_shape: tuple[int, ...],
                     out: np.ndarray | None = None) -> np.ndarray:
    """Route each gradient ``g[n, c, ph, pw]`` to its window's max position.

    Args:
        g: dC/d(pooled), ``(N, C, H/p, W/p)``.
        arg: from :func:`maxpool_forward`.
        z_shape: ``(N, C, H, W)``.
        out: optional array (or view) of shape ``z_shape`` to write into.

    Returns:
        dC/dz of shape ``z_shape``, zero except at the max positions.
    """
    dz = out if out is not None else np.empty(z_shape, dtype=g.dtype)
    _maxpool_backward_kernel(g, arg, p, dz)
    return dz


def conv2d_forward_ref(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Loop reference of :func:`conv2d_forward`: ``(N, C, H, W)`` -> ``(N, F, OH, OW)``."""
    N, C, H, W = x.shape
    F, _, k, _ = w.shape
    z = np.zeros((N, F, H - k + 1, W - k + 1), dtype=np.result_type(x, w))
    for n in range(N):
        for f in range(F):
            for oh in range(H - k + 1):
                for ow in range(W - k + 1):
                    z[n, f, oh, ow] = np.sum(w[f] * x[n, :, oh:oh + k, ow:ow + k])
            if b is not None:
                z[n, f] += b[f]
    return z


def conv2d_backward_ref(dz: np.ndarray, x: np.ndarray, w: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Loop reference of :func:`conv2d_backward`: returns ``(dx, dw, db)``."""
    N, F, OH, OW = dz.shape
    k = w.shape[2]
    dx = np.zeros_like(x)
    dw = np.zeros_like(w)
    for n in range(N):
        for f in range(F):
            for oh in range(OH):
                for ow in range(OW):
                    # z[n,f,oh,ow] touched x[n, :, oh:oh+k, ow:ow+k] through w[f]
                    dw[f] += dz[n, f, oh, ow] * x[n, :, oh:oh + k, ow:ow + k]
                    dx[n, :, oh:oh + k, ow:ow + k] += dz[n, f, oh, ow] * w[f]
    return dx, dw, dz.sum(axis=(0, 2, 3))


def maxpool_forward_ref(z: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
    """Loop reference of :func:`maxpool_forward`."""
    N, C, H, W = z.shape
    out = np.zeros((N, C, H // p, W // p), dtype=z.dtype)
    arg = np.zeros(out.shape, dtype=np.int32)
    for n, c, ph, pw in np.ndindex(*out.shape):
        window = z[n, c, ph * p:(ph + 1) * p, pw * p:(pw + 1) * p]
        arg[n, c, ph, pw] = np.argmax(window)  # first maximum in row-major order
        out[n, c, ph, pw] = window.max()
    return out, arg


def maxpool_backward_ref(g: np.ndarray, arg: np.ndarray, p: int, z_shape) -> np.ndarray:
    """Loop reference of :func:`maxpool_backward`."""
    dz = np.zeros(z_shape, dtype=g.dtype)
    for n, c, ph, pw in np.ndindex(*g.shape):
        a, b = divmod(int(arg[n, c, ph, pw]), p)
        dz[n, c, ph * p + a, pw * p + b] = g[n, c, ph, pw]
    return dz


# ---------------------------------------------------------------------------
# Validation helpers
# ---------------------------------------------------------------------------

def _positive_int(value, what: str, layer: str) -> int:
    return positive_int(value, f"{layer}: {what}")


def _elementwise_activation(activation, layer: str) -> activations.Activation:
    act = activations.get(activation)
    if not act.elementwise:
        raise ConfigError(
            f"{layer}: activation {act.name!r} is not elementwise; use one of "
            f"{', '.join(n for n, a in activations.ACTIVATIONS.items() if a.elementwise)}"
        )
    return act


def _check_image_shape(input_shape, layer: str) -> tuple[int, int, int]:
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(isinstance(s, (int, np.integer)) and s >= 1 for s in shape):
        raise ConfigError(
            f"{layer}: needs per-example input of shape (C, H, W), got {shape}; "
            "put a Reshape layer before it for flat input"
        )
    return tuple(int(s) for s in shape)


def _check_batch(x: np.ndarray, input_shape: tuple[int, ...] | None, layer: str) -> None:
    if input_shape is None:
        raise ConfigError(f"{layer}: call build(input_shape, rng, dtype) before forward")
    if x.ndim != 4 or x.shape[1:] != input_shape:
        raise ConfigError(
            f"{layer}: expects input of shape (N, {', '.join(map(str, input_shape))}), got {x.shape}"
        )


def _check_pool(shape: tuple[int, ...], p: int, layer: str) -> None:
    h, w = shape[-2:]
    if h % p or w % p:
        raise ConfigError(f"{layer}: {h}x{w} is not divisible by pool size {p}")


# ---------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------

class _ConvBase(Layer):
    """Shared parameter set-up and buffers of Conv2D and ConvPool."""

    regularized = ("w",)

    def __init__(self, filters: int, kernel_size: int, activation, init) -> None:
        super().__init__()
        name = type(self).__name__
        self.filters = _positive_int(filters, "filters", name)
        self.kernel_size = _positive_int(kernel_size, "kernel_size", name)
        try:
            self.init = initializers.get(self.default_init if init is None else init)
        except ConfigError as e:
            raise ConfigError(f"{name}: {e}") from None
        self.activation = _elementwise_activation(activation, self._label())
        self.dtype = None
        # Scratch buffers reused between calls of the same batch size (by name,
        # replaced when the batch size changes).
        self._buffers: dict[str, np.ndarray] = {}

    def _label(self) -> str:
        return f"{type(self).__name__}(filters={self.filters}, kernel={self.kernel_size})"

    def _build_conv(self, input_shape, rng, dtype, pool_area: int) -> tuple[int, int]:
        C, H, W = _check_image_shape(input_shape, self._label())
        k = self.kernel_size
        if H < k or W < k:
            raise ConfigError(f"{self._label()}: input {H}x{W} is smaller than the {k}x{k} kernel")
        self.dtype = np.dtype(dtype)
        # Weights first, then biases: the order network3 draws them in.
        fans = initializers.Fans(n_in=C * k * k, n_out=self.filters * k * k, pool_area=pool_area)
        w = self.init.weights((self.filters, C, k, k), fans, rng, self.dtype)
        b = self.init.biases((self.filters,), rng, self.dtype)
        self.params = {"w": w, "b": b}
        self.grads = {key: np.zeros_like(v) for key, v in self.params.items()}
        self.input_shape = (C, H, W)
        return H - k + 1, W - k + 1

    @property
    def w(self) -> np.ndarray:
        return self.params["w"]

    @property
    def b(self) -> np.ndarray:
        return self.params["b"]

    def _buffer(self, name: str, shape: tuple[int, ...], dtype=None) -> np.ndarray:
        buf = _scratch(self._buffers.get(name), shape, dtype or self.dtype)
        self._buffers[name] = buf
        return buf

    def _conv_pool(self, x: np.ndarray, train: bool, p: int) -> np.ndarray:
        """Convolution, p x p max-pooling (p = 1: none), then + b, compiled
        (:mod:`nndl.kernels.conv`). Returns ``(N, F, OH/p, OW/p)``, an NCHW view
        of a channels-last array."""
        _check_batch(x, self.input_shape, self._label())
        x = np.asarray(x, dtype=self.dtype)
        N, C, H, W = x.shape
        k, F = self.kernel_size, self.filters
        OH, OW = H - k + 1, W - k + 1
        xh = np.ascontiguousarray(x.transpose(0, 2, 3, 1))   # free if x is a view of (N, H, W, C)
        w2 = conv_kernels.to_w2(self.params["w"])
        out = np.empty((N, OH // p, OW // p, F), dtype=self.dtype)
        arg = np.empty(out.shape if p > 1 else (0, 0, 0, 0), dtype=np.int32)
        with kernel_threads(N, key=("conv fwd", x.shape, F, k, p, train)) as threads:
            # Training keeps every image's patches for backward; inference
            # (possibly big batches) uses a few images' worth per thread.
            group = conv_kernels.group_size(N)
            cols = self._buffer("cols" if train else "cols_eval",
                                conv_kernels.cols_shape(N if train else threads * group, C, H, W, k))
            conv_kernels.conv_pool_forward(xh, w2.T, self.params["b"], k, p, train, cols, out, arg,
                                           threads, group)
        self._xh, self._cols, self._arg, self._w2 = xh, (cols if train else None), arg, w2
        return out.transpose(0, 3, 1, 2)

    def _conv_pool_backward(self, delta: np.ndarray, p: int) -> np.ndarray | None:
        """delta = dC/d(output of :meth:`_conv_pool`) -> dC/dx (None if not
        ``input_grad``); fills ``grads``."""
        delta = np.ascontiguousarray(np.asarray(delta, dtype=self.dtype).transpose(0, 2, 3, 1))
        xh = self._xh
        N, H, W, C = xh.shape
        k, F = self.kernel_size, self.filters
        with kernel_threads(N, key=("conv bwd", xh.shape, F, k, p, self.input_grad)) as threads:
            if self._cols is None:    # after an inference forward: rebuild the patches
                self._cols = self._buffer("cols", conv_kernels.cols_shape(N, C, H, W, k))
                conv_kernels.im2col(xh, k, self._cols)
            nb = conv_kernels.blocks(N)
            dwp = self._buffer("dwp", (nb, F, C * k * k))
            dbp = self._buffer("dbp", (nb, F))
            dx = np.empty((N if self.input_grad else 0, H, W, C), dtype=self.dtype)
            conv_kernels.conv_pool_backward(delta, self._arg, self._cols, self._w2, k, p, dwp, dbp,
                                            self.input_grad, dx, threads)
        conv_kernels.from_w2(dwp.sum(axis=0), C, k, out=self.grads["w"])
        self.grads["b"][...] = dbp.sum(axis=0)
        return dx.transpose(0, 3, 1, 2) if self.input_grad else None

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """dC/da -> dC/dx: delta = dC/da * sigma'(z) (BP2's second half), then backward_delta."""
        grad_out = np.asarray(grad_out, dtype=self.dtype)
        if isinstance(self.activation, activations.Linear):
            return self.backward_delta(grad_out)
        return self.backward_delta(grad_out * self.activation.prime(self.z, self.a))


class Conv2D(_ConvBase):
    """A convolutional layer: ``a = sigma(w * x + b)`` (valid, stride 1).

    Args:
        filters: number of feature maps F.
        kernel_size: k, the side of the square local receptive field.
        activation: name or Activation (elementwise); default linear.
        init: an initialiser name (see :mod:`nndl.initializers`), class or
            instance; None means ``default_init``, ``"default"``: N(0, 1/(C k k))
            weights and N(0, 1) biases.

    Shape:
        input ``(N, C, H, W)``, output ``(N, F, H-k+1, W-k+1)``;
        ``params["w"]`` is ``(F, C, k, k)``, ``params["b"]`` is ``(F,)``.
    """

    default_init = "default"

    def __init__(self, filters: int, kernel_size: int, activation="linear", init=None) -> None:
        super().__init__(filters, kernel_size, activation, init)

    def build(self, input_shape, rng, dtype=np.float64):
        OH, OW = self._build_conv(input_shape, rng, dtype, pool_area=1)
        self.output_shape = (self.filters, OH, OW)
        return self.output_shape

    def forward(self, x: np.ndarray, *, train: bool = False) -> np.ndarray:
        self.z = self._conv_pool(x, train, 1)
        self.a = self.activation.fn(self.z)
        return self.a

    def backward_delta(self, delta: np.ndarray) -> np.ndarray:
        """Gradients from delta = dC/dz, shape ``(N, F, OH, OW)``; returns dC/dx."""
        return self._conv_pool_backward(delta, 1)

    def config(self) -> dict:
        return {"type": "Conv2D", "filters": self.filters, "kernel_size": self.kernel_size,
                "activation": self.activation.name, "init": self.init.name}


class MaxPool2D(Layer):
    """Non-overlapping max-pooling over ``pool_size x pool_size`` windows.

    Shape:
        input ``(N, C, H, W)`` with H and W divisible by ``pool_size``,
        output ``(N, C, H/p, W/p)``. The gradient goes to the position of
        each window's maximum (the first one on ties).
    """

    def __init__(self, pool_size: int = 2) -> None:
        super().__init__()
        self.pool_size = _positive_int(pool_size, "pool_size", "MaxPool2D")

    def _label(self) -> str:
        return f"MaxPool2D({self.pool_size})"

    def build(self, input_shape, rng=None, dtype=np.float64):
        C, H, W = _check_image_shape(input_shape, self._label())
        _check_pool((H, W), self.pool_size, self._label())
        p = self.pool_size
        self.input_shape = (C, H, W)
        self.output_shape = (C, H // p, W // p)
        return self.output_shape

    def forward(self, x: np.ndarray, *, train: bool = False) -> np.ndarray:
        _check_batch(x, self.input_shape, self._label())
        out, self._arg = maxpool_forward(x, self.pool_size)
        self._x_shape = x.shape
        return out

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return maxpool_backward(grad_out, self._arg, self.pool_size, self._x_shape)

    def config(self) -> dict:
        return {"type": "MaxPool2D", "pool_size": self.pool_size}


class ConvPool(_ConvBase):
    """The book's ConvPoolLayer (network3.py): conv -> max-pool -> + b -> activation.

    ``a = sigma(maxpool(w * x) + b)``: the bias is added and the activation
    applied *after* pooling, as in network3. (For increasing activations this
    equals pooling the activations, but costs a quarter of the work.)

    Args:
        filters: number of feature maps F.
        kernel_size: k.
        pool_size: p, side of the non-overlapping pooling window.
        activation: name or Activation (elementwise); network3's default sigmoid.
        init: an initialiser name, class or instance; None means
            ``default_init``, ``"network3"``: w ~ N(0, p^2/(F k k)),
            b ~ N(0, 1), as network3.

    Shape:
        input ``(N, C, H, W)``, output ``(N, F, (H-k+1)/p, (W-k+1)/p)``;
        ``params["w"]`` is ``(F, C, k, k)``, ``params["b"]`` is ``(F,)``.
    """

    default_init = "network3"

    def __init__(self, filters: int, kernel_size: int, pool_size: int = 2,
                 activation="sigmoid", init=None) -> None:
        self.pool_size = _positive_int(pool_size, "pool_size", "ConvPool")
        super().__init__(filters, kernel_size, activation, init)

    def _label(self) -> str:
        return (f"ConvPool(filters={self.filters}, kernel={self.kernel_size}, "
                f"pool={self.pool_size})")

    def build(self, input_shape, rng, dtype=np.float64):
        p = self.pool_size
        OH, OW = self._build_conv(input_shape, rng, dtype, pool_area=p * p)
        if OH % p or OW % p:
            raise ConfigError(
                f"{self._label()}: the {OH}x{OW} convolution output is not divisible by pool size {p}"
            )
        self.output_shape = (self.filters, OH // p, OW // p)
        return self.output_shape

    def forward(self, x: np.ndarray, *, train: bool = False) -> np.ndarray:
        # z = maxpool(w * x) + b: the bias after pooling (network3), all in one compiled pass
        self.z = self._conv_pool(x, train, self.pool_size)
        self.a = self.activation.fn(self.z)
        return self.a

    def backward_delta(self, delta: np.ndarray) -> np.ndarray:
        """Gradients from delta = dC/dz at the pooled level, ``(N, F, OH/p, OW/p)``;
        only each window's maximum passes its gradient on to w and x."""
        return self._conv_pool_backward(delta, self.pool_size)

    def config(self) -> dict:
        return {"type": "ConvPool", "filters": self.filters, "kernel_size": self.kernel_size,
                "pool_size": self.pool_size, "activation": self.activation.name, "init": self.init.name}
