"""Activations: values at known points and extremes, derivatives from (z, a)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nndl import ConfigError, activations

pytestmark = pytest.mark.usefixtures("strict_fp")   # floating-point warnings are errors


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_activations_at_known_points_and_extremes(dtype):
    z = np.array([-1000.0, -50.0, -math.log(3.0), 0.0, math.log(3.0), 50.0, 1000.0], dtype=dtype)
    # exp of a very negative number underflows to 0, which is the right
    # answer; overflow, 0/0 and divide-by-zero still raise.
    with np.errstate(under="ignore"):
        s = activations.sigmoid(z)
        sm = activations.softmax(np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]], dtype=dtype))
    assert s.dtype == dtype and sm.dtype == dtype
    np.testing.assert_allclose(s, [0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0], atol=1e-6 if dtype == np.float32 else 1e-15)
    assert s[0] == 0.0 and s[-1] == 1.0 and np.all(np.diff(s) >= 0)
    np.testing.assert_allclose(sm[0], [1.0, 0.0, 0.0])
    e = np.exp([1.0, 2.0, 3.0])
    np.testing.assert_allclose(sm[1], e / e.sum(), rtol=1e-6)
    np.testing.assert_allclose(sm.sum(axis=1), 1.0, rtol=1e-6)
    # derivatives from (z, a), as the layers call them
    zz = np.array([-2.0, -0.5, 0.5, 2.0], dtype=dtype)
    for name, prime in [("sigmoid", lambda z: activations.sigmoid(z) * (1 - activations.sigmoid(z))),
                        ("tanh", lambda z: 1 / np.cosh(z) ** 2),
                        ("relu", lambda z: (z > 0).astype(z.dtype)),
                        ("linear", lambda z: np.ones_like(z))]:
        act = activations.get(name)
        np.testing.assert_allclose(act.prime(zz, act.fn(zz)), prime(zz), rtol=1e-6, err_msg=name)
    assert activations.sigmoid_prime(np.array(0.0)) == 0.25
    with pytest.raises(ConfigError, match="log-likelihood"):
        activations.get("softmax").prime(zz, zz)
