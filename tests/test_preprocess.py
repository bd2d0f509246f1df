"""MNIST's preprocessing (nndl.data.preprocess): worked by hand on small
shapes, and checked against MNIST itself: a test image drawn back large and
off-centre comes back as itself and is classified the same."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import nndl
from nndl.data.preprocess import (
    bounding_box,
    centre_by_mass,
    centre_of_mass,
    fit_into_box,
    mnist_preprocess,
)
from nndl.errors import ConfigError


def test_bar_worked_by_hand():
    # a 40x10 bar of ink in a 100x100 drawing: the box is 40x10, shrunk by 2 to 20x5 (all ink);
    # its centre of mass is row 9.5, column 2 -> top = floor(14 - 9.5 + 0.5) = 5, left = floor(14 - 2 + 0.5) = 12
    image = np.zeros((100, 100), np.float32)
    image[30:70, 61:71] = 1.0
    steps = mnist_preprocess(image)
    assert steps.box == (30, 70, 61, 71)
    assert steps.fitted.shape == (20, 5) and (steps.fitted == 1).all()
    expected = np.zeros((28, 28), np.float32)
    expected[5:25, 12:17] = 1.0
    np.testing.assert_array_equal(steps.image, expected)


def test_aspect_ratio_kept_for_wide_and_small_digits():
    assert fit_into_box(np.ones((10, 40), np.float32)).shape == (5, 20)
    assert fit_into_box(np.ones((30, 7), np.float32)).shape == (20, 5)   # 7 * 20/30 = 4.67 -> 5
    small = fit_into_box(np.ones((5, 3), np.float32))                      # enlarged: 20 x 12
    assert small.shape == (20, 12) and np.allclose(small, 1.0)
    assert fit_into_box(np.ones((200, 1), np.float32)).shape == (20, 1)   # a thin 1 keeps one column


def test_shrinking_averages_the_covered_area():
    # 1-pixel checkerboard, 40x40 -> 20x20: each new pixel covers two ink and two blank pixels.
    # Nearest-neighbour sampling would give only 0s and 1s; the box filter gives 0.5 everywhere.
    board = (np.indices((40, 40)).sum(axis=0) % 2).astype(np.float32)
    np.testing.assert_allclose(fit_into_box(board), 0.5, atol=1e-6)


def test_centre_of_mass_lands_on_14_14_within_half_a_pixel():
    rng = np.random.default_rng(3)
    for _ in range(50):
        h, w = rng.integers(3, 21, size=2)
        digit = rng.random((h, w)).astype(np.float32) ** 3  # lopsided ink
        out = centre_by_mass(digit)
        assert out.sum() == pytest.approx(digit.sum(), rel=1e-5)  # nothing cut off
        row, col = centre_of_mass(out)
        assert abs(row - 14) <= 0.5 + 1e-9 and abs(col - 14) <= 0.5 + 1e-9


def test_centring_never_cuts_the_digit():
    digit = np.zeros((20, 20), np.float32)
    digit[:, 0] = 1.0  # all the mass in column 0: moving it to column 14 would push the box off the field
    out = centre_by_mass(digit)
    # rows: top = floor(14 - 9.5 + 0.5) = 5; columns: left = 14 is clipped to 28 - 20 = 8
    assert out.sum() == 20 and out[5:25, 8].sum() == 20


@pytest.mark.parametrize("bad, message", [
    (np.zeros((50, 50)), "blank"),
    (np.full((4, 4), np.nan), "finite"),
    (np.full((4, 4), 1.5), "[0, 1]"),
    (-np.ones((4, 4)), "[0, 1]"),
    (np.ones((2, 3, 4)), "2-D"),
    ([["a", "b"]], "numbers"),
])
def test_bad_images_raise_config_error(bad, message):
    with pytest.raises(ConfigError) as info:
        mnist_preprocess(bad)
    assert message in str(info.value)


def test_bounding_box_threshold():
    image = np.zeros((10, 10))
    image[2, 3], image[7, 8] = 0.05, 1.0
    assert bounding_box(image) == (2, 8, 3, 9)
    assert bounding_box(image, threshold=0.1) == (7, 8, 8, 9)


# -- against MNIST ---------------------------------------------------------------------------
def _draw_back(x: np.ndarray, rng: np.random.Generator, smooth: bool) -> np.ndarray:
    """A 28x28 MNIST image drawn again: its digit scaled up (by a whole factor,
    pixel-exact, or by any factor with bilinear smoothing) and put anywhere in
    a 300x300 canvas."""
    top, bottom, left, right = bounding_box(x)
    digit = x[top:bottom, left:right]
    if smooth:
        f = rng.uniform(3.3, 9.7)
        big = np.asarray(Image.fromarray(digit).resize((round(digit.shape[1] * f), round(digit.shape[0] * f)),
                                                       Image.Resampling.BILINEAR)).clip(0, 1)
    else:
        k = int(rng.integers(4, 13))
        big = np.kron(digit, np.ones((k, k), np.float32))
    canvas = np.zeros((300, 300), np.float32)
    i, j = rng.integers(0, 300 - big.shape[0]), rng.integers(0, 300 - big.shape[1])
    canvas[i:i + big.shape[0], j:j + big.shape[1]] = big
    return canvas


@pytest.fixture(scope="module")
def chapter1_net(mnist):
    # the book's chapter 1 network after 3 epochs (about 93% on the test images)
    net = nndl.Network.from_sizes([784, 30, 10], init="large", rng=0)
    nndl.train(net, nndl.SGD(3.0), mnist["train_x"][:50000], mnist["train_y"][:50000], epochs=3,
               rng=np.random.default_rng(1))
    return net


def test_mnist_drawn_back_exactly_comes_back_as_itself(mnist):
    # MNIST's digits were fitted into 20x20 and centred by mass: scaled up by a whole factor and moved
    # anywhere, each of these 1000 comes back pixel for pixel.
    rng = np.random.default_rng(0)
    images = mnist["test_x"][:1000].reshape(-1, 28, 28)
    errors = [np.abs(mnist_preprocess(_draw_back(x, rng, smooth=False)).image - x).max() for x in images]
    assert max(errors) < 1e-6


def test_mnist_drawn_back_smoothly_is_close_and_classified_the_same(mnist, chapter1_net):
    # Scaled by a fractional factor with bilinear smoothing the edges blur a little: the mean pixel
    # error stays small, and the trained network gives (nearly always) the same answer.
    rng = np.random.default_rng(1)
    n = 500
    originals = mnist["test_x"][:n]
    redrawn = np.stack([mnist_preprocess(_draw_back(x.reshape(28, 28), rng, smooth=True)).image.reshape(784)
                        for x in originals])
    mean_error = np.abs(redrawn - originals).mean(axis=1)
    assert np.median(mean_error) < 0.03 and np.mean(mean_error) < 0.03
    same = (chapter1_net.predict(redrawn) == chapter1_net.predict(originals)).mean()
    assert same >= 0.97, same  # 98.6% with these seeds
    labels = mnist["test_y"][:n]
    assert abs(chapter1_net.accuracy(redrawn, labels) - chapter1_net.accuracy(originals, labels)) <= 0.01 * n
    # and not by accident: without the preprocessing (a plain 300 -> 28 shrink) the answers differ
    plain = np.stack([np.asarray(Image.fromarray(_draw_back(x.reshape(28, 28), rng, smooth=True))
                                 .resize((28, 28), Image.Resampling.BOX)).reshape(784) for x in originals[:100]])
    assert (chapter1_net.predict(plain) == mnist["test_y"][:100]).mean() < 0.5
