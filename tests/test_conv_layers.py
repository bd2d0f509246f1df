"""Tests of the convolutional, pooling, dropout and reshape layers.

* the fast passes (im2col + GEMM, compiled pooling) equal the loop references;
* finite-difference gradient checks of dC/dx and every parameter, with the
  scalar cost C = sum(R * out) for a fixed random R (so dC/d(out) = R);
* dropout statistics and modes; ConfigError on bad arguments and shapes.
"""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest

from nndl.errors import ConfigError
from nndl.layers.conv import (
    Conv2D, ConvPool, MaxPool2D, col2im, conv2d_backward, conv2d_backward_ref,
    conv2d_forward, conv2d_forward_ref, im2col, maxpool_backward, maxpool_backward_ref,
    maxpool_forward, maxpool_forward_ref,
)
from nndl.layers.dropout import Dropout
from nndl.layers.reshape import Flatten, Reshape


@pytest.fixture(autouse=True)
def strict_floats():
    with np.errstate(all="raise"):
        yield


def rng_for(*key) -> np.random.Generator:
    """A generator seeded by the test's parameters (stable across runs)."""
    return np.random.default_rng([zlib.crc32(k.encode()) if isinstance(k, str) else k for k in key])


# ---------------------------------------------------------------------------
# Finite differences
# ---------------------------------------------------------------------------

def numeric_grad(f, arr: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar f() with respect to every entry of arr (in place)."""
    grad = np.zeros_like(arr)
    for idx in np.ndindex(*arr.shape):
        old = arr[idx]
        arr[idx] = old + eps
        up = f()
        arr[idx] = old - eps
        down = f()
        arr[idx] = old
        grad[idx] = (up - down) / (2 * eps)
    return grad


def check_layer_gradients(layer, x: np.ndarray, rng: np.random.Generator) -> None:
    """dC/dx and dC/d(param) from backward equal finite differences, C = sum(R * out)."""
    out = layer.forward(x, train=True)
    R = rng.standard_normal(out.shape)

    def cost() -> float:
        return float(np.sum(R * layer.forward(x, train=True)))

    layer.forward(x, train=True)
    dx = layer.backward(R)
    analytic = {k: g.copy() for k, g in layer.grads.items()}
    assert set(analytic) == set(layer.params)
    np.testing.assert_allclose(dx, numeric_grad(cost, x), rtol=1e-5, atol=1e-7)
    for key, param in layer.params.items():
        np.testing.assert_allclose(analytic[key], numeric_grad(cost, param), rtol=1e-5, atol=1e-7,
                                   err_msg=f"param {key}")


# ---------------------------------------------------------------------------
# Pure functions against the loop references
# ---------------------------------------------------------------------------

CONV_SHAPES = [  # (N, C, H, W, F, k)
    (1, 1, 6, 6, 2, 3),
    (3, 3, 7, 9, 4, 3),
    (2, 3, 8, 8, 4, 5),
    (3, 1, 5, 5, 2, 5),
    (2, 2, 6, 7, 3, 1),
]


def test_im2col_layout_and_col2im_adjoint():
    rng = rng_for("im2col")
    N, C, H, W, k = 2, 3, 6, 7, 3
    x = rng.standard_normal((N, C, H, W))
    cols = im2col(x, k)
    OH, OW = H - k + 1, W - k + 1
    assert cols.shape == (C * k * k, N * OH * OW)
    n, c, i, j, oh, ow = 1, 2, 1, 2, 3, 4
    assert cols[(c * k + i) * k + j, (n * OH + oh) * OW + ow] == x[n, c, oh + i, ow + j]
    # col2im is the adjoint of im2col: <im2col(x), Y> == <x, col2im(Y)>
    Y = rng.standard_normal(cols.shape)
    assert np.isclose(np.sum(cols * Y), np.sum(x * col2im(Y, x.shape, k)))


@pytest.mark.parametrize("shape", CONV_SHAPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_conv_fast_equals_reference(shape, dtype):
    N, C, H, W, F, k = shape
    rng = rng_for("conv", *shape)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((F, C, k, k)).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    z, cols = conv2d_forward(x, w, b)
    assert z.dtype == dtype and z.shape == (N, F, H - k + 1, W - k + 1)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(z, conv2d_forward_ref(x, w, b), **tol)

    dz = rng.standard_normal(z.shape).astype(dtype)
    dx, dw, db = conv2d_backward(dz, w, cols, x.shape)
    assert dx.dtype == dw.dtype == db.dtype == dtype
    for fast, ref in zip((dx, dw, db), conv2d_backward_ref(dz, x, w)):
        np.testing.assert_allclose(fast, ref, **tol)


@pytest.mark.parametrize("shape,p", [((2, 3, 4, 6), 2), ((1, 2, 6, 6), 3), ((3, 1, 4, 4), 1)])
def test_maxpool_fast_equals_reference(shape, p):
    rng = rng_for("pool", *shape)
    z = rng.standard_normal(shape)
    out, arg = maxpool_forward(z, p)
    out_ref, arg_ref = maxpool_forward_ref(z, p)
    np.testing.assert_array_equal(out, out_ref)
    np.testing.assert_array_equal(arg, arg_ref)
    g = rng.standard_normal(out.shape)
    np.testing.assert_array_equal(maxpool_backward(g, arg, p, shape),
                                  maxpool_backward_ref(g, arg_ref, p, shape))


def test_maxpool_ties_go_to_the_first_position_only():
    z = np.zeros((1, 1, 2, 4))
    z[0, 0, :, 2:] = [[1.0, 3.0], [3.0, 3.0]]
    out, arg = maxpool_forward(z, 2)
    np.testing.assert_array_equal(out, [[[[0.0, 3.0]]]])
    np.testing.assert_array_equal(arg, [[[[0, 1]]]])          # row-major first maximum
    dz = maxpool_backward(np.array([[[[5.0, 7.0]]]]), arg, 2, z.shape)
    np.testing.assert_array_equal(dz, [[[[5.0, 0.0, 0.0, 7.0], [0.0, 0.0, 0.0, 0.0]]]])
    # agrees with the reference on an input full of ties
    zi = rng_for("ties").integers(0, 3, size=(2, 2, 6, 6)).astype(float)
    np.testing.assert_array_equal(maxpool_forward(zi, 2)[1], maxpool_forward_ref(zi, 2)[1])


def test_maxpool_reads_any_memory_layout():
    z = rng_for("layout").standard_normal((3, 2, 4, 4)).transpose(1, 0, 2, 3)  # not contiguous
    np.testing.assert_array_equal(maxpool_forward(z, 2)[0], maxpool_forward_ref(z, 2)[0])


# ---------------------------------------------------------------------------
# Gradient checks of the layers
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("N,C,H,W,F,k", [(1, 1, 6, 6, 2, 3), (3, 3, 6, 5, 4, 3), (1, 3, 7, 7, 2, 5)])
@pytest.mark.parametrize("activation", ["linear", "tanh", "sigmoid"])
def test_conv2d_gradients(N, C, H, W, F, k, activation):
    rng = rng_for("conv2d", N, C, F, k, activation)
    layer = Conv2D(F, k, activation=activation)
    assert layer.build((C, H, W), rng, np.float64) == (F, H - k + 1, W - k + 1)
    check_layer_gradients(layer, rng.standard_normal((N, C, H, W)), rng)


@pytest.mark.parametrize("N,C,H,W,p", [(1, 1, 4, 4, 2), (3, 3, 6, 4, 2), (2, 2, 6, 6, 3)])
def test_maxpool2d_gradients(N, C, H, W, p):
    rng = rng_for("maxpool2d", N, C, H, p)
    layer = MaxPool2D(p)
    assert layer.build((C, H, W), rng, np.float64) == (C, H // p, W // p)
    check_layer_gradients(layer, rng.standard_normal((N, C, H, W)), rng)  # continuous: no ties


@pytest.mark.parametrize("N,C,H,F,k,p", [(1, 1, 6, 2, 3, 2), (3, 3, 8, 4, 3, 2),
                                         (1, 3, 8, 2, 5, 2), (3, 1, 10, 4, 5, 3)])
@pytest.mark.parametrize("activation", ["sigmoid", "relu", "tanh"])
def test_convpool_gradients(N, C, H, F, k, p, activation):
    rng = rng_for("convpool", N, C, H, F, k, p, activation)
    layer = ConvPool(F, k, p, activation=activation)
    OH = (H - k + 1) // p
    assert layer.build((C, H, H), rng, np.float64) == (F, OH, OH)
    check_layer_gradients(layer, rng.standard_normal((N, C, H, H)), rng)


@pytest.mark.parametrize("scale", ["inverted", "book"])
@pytest.mark.parametrize("shape", [(3, 5), (2, 2, 3, 3)])
def test_dropout_gradients_with_fixed_mask(scale, shape):
    rng = rng_for("dropout", scale, *shape)
    layer = Dropout(0.4, scale=scale)
    layer.build(shape[1:], rng, np.float64)
    layer.fixed_mask = rng.random(shape) >= 0.4
    x = rng.standard_normal(shape)
    expected = x * layer.fixed_mask * (1 / 0.6 if scale == "inverted" else 1.0)
    np.testing.assert_allclose(layer.forward(x, train=True), expected)
    check_layer_gradients(layer, x, rng)


@pytest.mark.parametrize("layer,in_shape,out_shape", [
    (Flatten(), (2, 3, 4), (24,)),
    (Reshape((1, 4, 4)), (16,), (1, 4, 4)),
    (Reshape((2, -1)), (3, 4), (2, 6)),
])
def test_reshape_layers_gradients(layer, in_shape, out_shape):
    rng = rng_for("reshape", *in_shape)
    assert layer.build(in_shape, rng, np.float64) == out_shape
    x = rng.standard_normal((3, *in_shape))
    assert layer.forward(x).shape == (3, *out_shape)
    check_layer_gradients(layer, x, rng)


# ---------------------------------------------------------------------------
# Layer semantics
# ---------------------------------------------------------------------------

def test_convpool_is_network3_order_pool_then_bias_then_activation():
    rng = rng_for("order")
    layer = ConvPool(3, 3, 2, activation="sigmoid")
    layer.build((2, 8, 8), rng, np.float64)
    x = rng.standard_normal((2, 2, 8, 8))
    w, b = layer.params["w"], layer.params["b"]
    pooled, _ = maxpool_forward_ref(conv2d_forward_ref(x, w), 2)
    expected = 1 / (1 + np.exp(-(pooled + b[:, None, None])))
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12)


def test_convpool_equals_conv2d_then_maxpool_for_relu():
    # relu is increasing, so max-pooling commutes with bias + activation.
    rng = rng_for("compose")
    cp = ConvPool(4, 3, 2, activation="relu", init="he")
    cp.build((3, 8, 8), rng, np.float64)
    conv, pool = Conv2D(4, 3, activation="relu"), MaxPool2D(2)
    pool.build(conv.build((3, 8, 8), rng, np.float64), rng, np.float64)
    conv.params["w"][...] = cp.params["w"]
    conv.params["b"][...] = cp.params["b"] = rng.standard_normal(4)
    x = rng.standard_normal((3, 3, 8, 8))
    np.testing.assert_allclose(cp.forward(x, train=True), pool.forward(conv.forward(x, train=True)))
    g = rng.standard_normal((3, 4, 3, 3))
    np.testing.assert_allclose(cp.backward(g), conv.backward(pool.backward(g)))
    for k in ("w", "b"):
        np.testing.assert_allclose(cp.grads[k], conv.grads[k])


def test_backward_is_backward_delta_after_the_activation_derivative():
    # The network calls backward_delta on an output layer with the cost's BP1
    # error; it reads the layer's z and a for that.
    rng = rng_for("delta")
    layer = ConvPool(3, 3, 2, activation="sigmoid")
    layer.build((2, 8, 8), rng, np.float64)
    layer.forward(rng.standard_normal((2, 2, 8, 8)), train=True)
    assert layer.z.shape == layer.a.shape == (2, 3, 3, 3)
    g = rng.standard_normal(layer.a.shape)
    dx = layer.backward(g)
    grads = {k: v.copy() for k, v in layer.grads.items()}
    np.testing.assert_allclose(layer.backward_delta(g * layer.a * (1 - layer.a)), dx)
    for k in grads:
        np.testing.assert_allclose(layer.grads[k], grads[k])


def test_grads_are_sums_over_the_batch_and_buffers_do_not_leak_between_calls():
    rng = rng_for("sums")
    layer = ConvPool(4, 3, 2, activation="tanh")
    layer.build((2, 8, 8), rng, np.float64)
    x = rng.standard_normal((3, 2, 8, 8))
    g = rng.standard_normal((3, 4, 3, 3))
    out_all = layer.forward(x, train=True)
    dx_all = layer.backward(g)
    grads_all = {k: v.copy() for k, v in layer.grads.items()}
    parts = {k: 0.0 for k in grads_all}
    for n in range(3):
        out_n = layer.forward(x[n:n + 1], train=True)
        dx_n = layer.backward(g[n:n + 1])
        np.testing.assert_allclose(out_n, out_all[n:n + 1])
        np.testing.assert_allclose(dx_n, dx_all[n:n + 1])
        for k in parts:
            parts[k] = parts[k] + layer.grads[k]
    for k in parts:
        np.testing.assert_allclose(grads_all[k], parts[k])
    # The earlier outputs were not overwritten by later calls (no shared buffers).
    out_again = layer.forward(x, train=True)
    np.testing.assert_array_equal(out_again, out_all)
    np.testing.assert_array_equal(layer.backward(g), dx_all)


def test_backward_after_inference_forward_and_skipping_input_grad():
    rng = rng_for("eval")
    layer = Conv2D(3, 3, activation="relu")
    layer.build((2, 6, 6), rng, np.float64)
    x = rng.standard_normal((2, 2, 6, 6))
    g = rng.standard_normal((2, 3, 4, 4))
    layer.forward(x, train=True)
    dx_train = layer.backward(g)
    gw_train = layer.grads["w"].copy()
    layer.forward(x, train=False)
    np.testing.assert_allclose(layer.backward(g), dx_train)
    np.testing.assert_allclose(layer.grads["w"], gw_train)
    layer.input_grad = False
    layer.forward(x, train=True)
    assert layer.backward(g) is None
    np.testing.assert_allclose(layer.grads["w"], gw_train)


@pytest.mark.parametrize("make,shape", [
    (lambda: Conv2D(4, 3, "relu"), (2, 8, 8)),
    (lambda: ConvPool(4, 3, 2, "relu"), (2, 8, 8)),
    (lambda: MaxPool2D(2), (2, 8, 8)),
    (lambda: Dropout(0.5), (2, 8, 8)),
    (lambda: Dropout(0.5, "book"), (2, 8, 8)),
    (lambda: Flatten(), (2, 8, 8)),
])
def test_float32_stays_float32(make, shape):
    rng = rng_for("f32")
    layer = make()
    out_shape = layer.build(shape, rng, np.float32)
    assert all(p.dtype == np.float32 for p in layer.params.values())
    x = rng.standard_normal((3, *shape)).astype(np.float32)
    out = layer.forward(x, train=True)
    assert out.dtype == np.float32 and out.shape == (3, *out_shape)
    dx = layer.backward(np.ones(out.shape, np.float32))
    assert dx.dtype == np.float32 and dx.shape == x.shape
    assert all(g.dtype == np.float32 for g in layer.grads.values())


@pytest.mark.parametrize("layer", [
    Conv2D(20, 5, activation="relu", init="he"),
    ConvPool(40, 5, 3, activation="tanh", init="glorot"),
    MaxPool2D(3), Dropout(0.25, scale="book"), Flatten(), Reshape((1, 28, 28)),
])
def test_config_rebuilds_the_layer(layer):
    cfg = json.loads(json.dumps(layer.config()))
    assert cfg["type"] == type(layer).__name__
    args = {k: v for k, v in cfg.items() if k != "type"}
    assert type(layer)(**args).config() == layer.config()


def test_inits():
    rng = rng_for("init")
    for init, std in [("default", 1 / np.sqrt(20 * 25)), ("glorot", np.sqrt(2 / (20 * 25 + 40 * 25))),
                      ("he", np.sqrt(2 / (20 * 25)))]:
        layer = Conv2D(40, 5, init=init)
        layer.build((20, 12, 12), rng, np.float64)
        assert layer.params["w"].shape == (40, 20, 5, 5) and layer.params["b"].shape == (40,)
        assert abs(layer.params["w"].std() / std - 1) < 0.05, init
    cp = ConvPool(40, 5, 2, init="network3")
    cp.build((20, 12, 12), rng, np.float64)
    assert abs(cp.params["w"].std() / np.sqrt(4 / (40 * 25)) - 1) < 0.05  # network3: n_out = F k k / 4
    zero = Conv2D(3, 3, init="zeros")
    zero.build((1, 5, 5), rng, np.float64)
    assert not zero.params["w"].any() and not zero.params["b"].any()
    a, b = Conv2D(3, 3), Conv2D(3, 3)
    a.build((1, 5, 5), np.random.default_rng(7), np.float64)
    b.build((1, 5, 5), np.random.default_rng(7), np.float64)
    np.testing.assert_array_equal(a.params["w"], b.params["w"])


# ---------------------------------------------------------------------------
# Dropout
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("p", [0.2, 0.5])
def test_dropout_rate_and_inverted_scaling(p):
    layer = Dropout(p)
    layer.build((1000,), np.random.default_rng(0), np.float64)
    x = np.ones((200, 1000))
    out = layer.forward(x, train=True)
    dropped = np.mean(out == 0)
    assert abs(dropped - p) < 4 * np.sqrt(p * (1 - p) / x.size)
    np.testing.assert_allclose(out[out != 0], 1 / (1 - p))
    np.testing.assert_array_equal(layer.backward(x), out)   # same mask and scale
    assert abs(out.mean() - 1) < 0.01                         # expectation preserved
    np.testing.assert_array_equal(layer.forward(x, train=False), x)
    np.testing.assert_array_equal(layer.backward(x), x)


def test_dropout_book_scaling():
    layer = Dropout(0.5, scale="book")
    layer.build((100,), np.random.default_rng(1), np.float64)
    x = np.full((10, 100), 2.0)
    out = layer.forward(x, train=True)
    assert set(np.unique(out)) == {0.0, 2.0}                 # mask only, no 1/(1-p)
    np.testing.assert_allclose(layer.forward(x, train=False), 1.0)  # times (1 - p)
    np.testing.assert_allclose(layer.backward(np.ones_like(x)), 0.5)


def test_dropout_same_seed_same_mask():
    def masks(seed):
        layer = Dropout(0.5)
        layer.build((50,), np.random.default_rng(seed), np.float64)
        return [layer.forward(np.ones((4, 50)), train=True) for _ in range(2)]
    a, b, c = masks(3), masks(3), masks(4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], a[1])                    # a fresh mask every pass
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, "0.5", None, True])
def test_dropout_bad_p(p):
    with pytest.raises(ConfigError, match="Dropout"):
        Dropout(p)


def test_dropout_bad_scale_and_mask():
    with pytest.raises(ConfigError, match="scale"):
        Dropout(0.5, scale="weird")
    layer = Dropout(0.5)
    layer.build((3,), np.random.default_rng(0), np.float64)
    layer.fixed_mask = np.ones(4)
    with pytest.raises(ConfigError, match="fixed_mask"):
        layer.forward(np.ones((2, 3)), train=True)


# ---------------------------------------------------------------------------
# Bad arguments and shapes
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("make,shape,pattern", [
    (lambda: Conv2D(20, 5), (1, 3, 3),
     r"Conv2D\(filters=20, kernel=5\): input 3x3 is smaller than the 5x5 kernel"),
    (lambda: Conv2D(20, 5), (784,), r"Conv2D.*\(C, H, W\).*Reshape"),
    (lambda: MaxPool2D(2), (20, 25, 25), r"MaxPool2D\(2\): 25x25 is not divisible by pool size 2"),
    (lambda: ConvPool(20, 5, 2), (1, 28, 29),
     r"ConvPool\(filters=20, kernel=5, pool=2\).*24x25.*pool size 2"),
    (lambda: ConvPool(20, 5, 2), (1, 4, 28), r"ConvPool.*smaller than the 5x5 kernel"),
    (lambda: Reshape((1, 28, 28)), (100,), r"Reshape\(\(1, 28, 28\)\).*100 values"),
    (lambda: Reshape((3, -1)), (100,), r"Reshape.*cannot fill"),
])
def test_bad_shapes_at_build(make, shape, pattern):
    with pytest.raises(ConfigError, match=pattern):
        make().build(shape, np.random.default_rng(0), np.float64)


@pytest.mark.parametrize("make,shape,x_shape", [
    (lambda: Conv2D(4, 3), (3, 8, 8), (2, 1, 8, 8)),        # wrong channel count
    (lambda: ConvPool(4, 3), (1, 8, 8), (2, 1, 10, 10)),
    (lambda: ConvPool(4, 3), (1, 8, 8), (2, 64)),
    (lambda: MaxPool2D(2), (2, 4, 4), (2, 3, 4, 4)),
    (lambda: Flatten(), (2, 4, 4), (2, 2, 4, 5)),
    (lambda: Reshape((1, 4, 4)), (16,), (2, 15)),
])
def test_bad_shapes_at_forward(make, shape, x_shape):
    layer = make()
    layer.build(shape, np.random.default_rng(0), np.float64)
    with pytest.raises(ConfigError, match=r"expects input of shape"):
        layer.forward(np.zeros(x_shape))


@pytest.mark.parametrize("make,pattern", [
    (lambda: Conv2D(0, 5), "filters"),
    (lambda: Conv2D(2, 2.5), "kernel_size"),
    (lambda: Conv2D(2, 3, init="uniform"), "init"),
    (lambda: Conv2D(2, 3, activation="softmax"), "not elementwise"),
    (lambda: Conv2D(2, 3, activation="nope"), "unknown activation"),
    (lambda: ConvPool(2, 3, pool_size=0), "pool_size"),
    (lambda: MaxPool2D(-1), "pool_size"),
    (lambda: Reshape((0, 4)), "Reshape"),
    (lambda: Reshape((-1, -1)), "Reshape"),
    (lambda: Reshape(5), "Reshape"),
])
def test_bad_arguments(make, pattern):
    with pytest.raises(ConfigError, match=pattern):
        make()
