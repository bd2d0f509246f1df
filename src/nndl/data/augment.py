"""More training data from the data we have (book ch. 6, "Expanding the training data").

Two ways:

* **Expansion, as the book does** (``expand_mnist.py``): every training image
  plus its four one-pixel displacements (down, up, right, left), 250,000
  images from 50,000. :func:`shift_images` does the displacements with array
  slices; :func:`expand_with_shifts` builds the set, stored compactly as
  bytes (uint8, 196 MB for 250,000 images instead of 784 MB as float32) and
  shuffled with a seeded Generator, so the same seed gives the same set;
  :func:`expanded_training_set` turns it into a float :class:`Dataset`.
* **Augmentation on the fly**, beyond the book: :func:`random_shift_rotate`
  returns a function for ``Trainer(augment=...)`` that moves every image of
  each mini-batch by a random whole number of pixels and rotates it by a
  small random angle, so each epoch sees new variants and the expanded set
  is never built.

Pixels displaced off the image are lost; pixels that come in are 0 (white
background), as in the book.

Memory when training on the expanded set: :class:`nndl.Trainer` converts its
inputs to the network's dtype once (a no-op when they already have it), so
the 250,000 images occupy 784 MB as float32 while training;
:func:`expanded_training_set` writes them in that form directly, chunk by
chunk, without a full-size uint8 or unshuffled copy on the way. The bench
``bench/bench_conv.py --memory`` measures the peak of the whole process.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from ..errors import ConfigError
from ..kernels import compiled
from ..network import as_generator
from .mnist import Dataset

__all__ = [
    "BOOK_SHIFTS", "shift_images", "to_bytes", "from_bytes", "expand_with_shifts",
    "expanded_training_set", "random_shift_rotate", "shift_rotate",
]

#: The book's four displacements as ``(rows down, columns right)``, in the
#: book's order: down, up, right, left (``np.roll(image, d, axis)`` with
#: ``(d, axis)`` = ``(1, 0), (-1, 0), (1, 1), (-1, 1)``).
BOOK_SHIFTS: tuple[tuple[int, int], ...] = ((1, 0), (-1, 0), (0, 1), (0, -1))

IMAGE_SIDE = 28


def _as_images(x: np.ndarray, what: str) -> tuple[np.ndarray, tuple[int, ...]]:
    """``x`` as ``(N, H, W)`` (a view) and its original per-image shape."""
    x = np.asarray(x)
    if x.ndim == 3:
        return x, x.shape[1:]
    if x.ndim == 2 and x.shape[1] == IMAGE_SIDE * IMAGE_SIDE:
        return x.reshape(len(x), IMAGE_SIDE, IMAGE_SIDE), x.shape[1:]
    raise ConfigError(f"{what} expects images of shape (N, 784) or (N, height, width), got {x.shape}")


def _check_shift(shift, what: str) -> tuple[int, int]:
    try:
        dy, dx = shift
    except (TypeError, ValueError):
        raise ConfigError(f"{what}: a shift is a pair (rows down, columns right), got {shift!r}") from None
    for d in (dy, dx):
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)):
            raise ConfigError(f"{what}: shifts must be whole numbers of pixels, got {shift!r}")
    return int(dy), int(dx)


def _shift_into(out: np.ndarray, images: np.ndarray, dy: int, dx: int) -> None:
    """``out[n, r, c] = images[n, r - dy, c - dx]`` where that pixel exists, else 0."""
    H, W = images.shape[1:]
    out[...] = 0
    if abs(dy) >= H or abs(dx) >= W:
        return
    out[:, max(dy, 0):H + min(dy, 0), max(dx, 0):W + min(dx, 0)] = \
        images[:, max(-dy, 0):H + min(-dy, 0), max(-dx, 0):W + min(-dx, 0)]


def shift_images(x: np.ndarray, shifts: Sequence[tuple[int, int]] = BOOK_SHIFTS) -> np.ndarray:
    """Displaced copies of every image, zero-filled (the book's ``expand_mnist``).

    A shift ``(dy, dx)`` moves the picture ``dy`` rows down and ``dx``
    columns right (negative: up, left): ``out[r, c] = image[r - dy, c - dx]``,
    0 where ``(r - dy, c - dx)`` is outside the image. ``(1, 0)`` is the
    book's ``np.roll(image, 1, 0)`` with row 0 zeroed, ``(0, -1)`` its
    ``np.roll(image, -1, 1)`` with column 27 zeroed, and so on;
    ``(0, 0)`` is the image itself, so
    ``shift_images(x, ((0, 0),) + BOOK_SHIFTS)`` is exactly the book's
    image-then-its-four-shifts.

    Args:
        x: images ``(N, 784)`` (28x28, row-major) or ``(N, H, W)``, any dtype.
        shifts: ``(dy, dx)`` pairs of integers; default :data:`BOOK_SHIFTS`
            (down, up, right, left by one pixel, the book's order).

    Returns:
        ``(N, S, *x.shape[1:])`` for ``S = len(shifts)``, ``x``'s dtype:
        ``out[n, s]`` is image ``n`` displaced by ``shifts[s]``.
    """
    images, shape = _as_images(x, "shift_images")
    if not isinstance(shifts, (list, tuple)):
        raise ConfigError(f"shift_images: shifts must be a list of (rows down, columns right) pairs, got {shifts!r}")
    pairs = [_check_shift(s, "shift_images") for s in shifts]
    out = np.empty((len(images), len(pairs)) + images.shape[1:], dtype=images.dtype)
    for s, (dy, dx) in enumerate(pairs):
        _shift_into(out[:, s], images, dy, dx)
    return out.reshape((len(images), len(pairs)) + tuple(shape))


def to_bytes(x: np.ndarray) -> np.ndarray:
    """Pixels as bytes: uint8 unchanged; floats in [0, 1] as ``round(x * 256)``
    clipped to 255 (exact for MNIST's ``byte / 256`` pixels)."""
    x = np.asarray(x)
    if x.dtype == np.uint8:
        return x
    if x.dtype.kind != "f":
        raise ConfigError(f"pixels must be floats in [0, 1] or uint8 bytes, got dtype {x.dtype}")
    if x.size and (np.nanmin(x) < 0 or np.nanmax(x) > 1 or np.isnan(x).any()):
        raise ConfigError("pixels must be floats in [0, 1] (byte / 256, as load_mnist gives them)")
    return np.minimum(np.rint(x * 256), 255).astype(np.uint8)


def from_bytes(b: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Bytes back to pixels ``byte / 256`` as ``dtype`` (exact: 1/256 is a power of two)."""
    b = np.asarray(b)
    if b.dtype != np.uint8:
        raise ConfigError(f"from_bytes expects uint8 pixels (as to_bytes gives), got dtype {b.dtype}")
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind != "f":
        raise ConfigError("from_bytes: dtype must be a float type such as float32")
    out = b.astype(dtype)
    out *= out.dtype.type(1 / 256)
    return out


def expand_with_shifts(x: np.ndarray, y: np.ndarray, *, rng=None, shuffle: bool = True
                       ) -> tuple[np.ndarray, np.ndarray]:
    """The book's expanded training set: every image and its four one-pixel shifts.

    Args:
        x: images ``(N, 784)`` or ``(N, 28, 28)``: floats ``byte / 256`` in
            [0, 1] (as :func:`nndl.data.load_mnist` gives) or uint8 bytes.
        y: integer labels ``(N,)``.
        rng: Generator or int seed for the shuffle (same seed, same order);
            ``None`` draws fresh entropy (not reproducible), like everywhere
            in nndl. Unused without ``shuffle``.
        shuffle: shuffle the 5N images, as the book does; without it the
            order is image 0, its four shifts (down, up, right, left),
            image 1, ...

    Returns:
        ``(x5, y5)``: ``x5`` uint8 bytes of shape ``(5N, *x.shape[1:])``
        (``(250000, 784)`` for MNIST's 50,000 training images: 196 MB) and
        ``y5`` int64 ``(5N,)``. Use :func:`from_bytes` for float pixels.
    """
    return _expand(x, y, rng, shuffle, np.uint8)


def expanded_training_set(training, seed: int | None = 0, *, dtype=np.float32) -> Dataset:
    """``training`` (a :class:`Dataset` of ``(N, 784)`` pixels) expanded to 5N
    images, shuffled with ``seed``, as a float Dataset: the same images in
    the same order as ``from_bytes(*expand_with_shifts(x, y, rng=seed))``
    (what ``nndl train --expand`` trains on).

    Memory: the result is ``5N * 784 * 4`` bytes (784 MB for N = 50,000 as
    float32), written chunk by chunk: the full uint8 set is never built."""
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ConfigError(f"expanded_training_set: dtype must be a float type, got {dtype}")
    if not isinstance(training, Dataset):
        raise ConfigError(f"expanded_training_set needs a Dataset, got {type(training).__name__}")
    x5, y5 = _expand(training.x, training.y, seed, True, dtype)
    return Dataset(x5, y5)


def _expand(x, y, rng, shuffle: bool, dtype, chunk: int = 10_000) -> tuple[np.ndarray, np.ndarray]:
    """Originals + :data:`BOOK_SHIFTS` of ``x`` as ``dtype`` (uint8 bytes or
    floats ``byte / 256``), in a shuffled order.

    Unshuffled, entry ``5 i + s`` would be shift ``s`` (0: none) of image
    ``i``; shuffled, entry ``j`` is unshuffled entry ``order[j]``. Each
    shifted chunk is written straight to its shuffled positions
    ``inverse[5 i + s]``, so no unshuffled copy is ever held."""
    b = to_bytes(x)
    images, per_image = _as_images(b, "expand_with_shifts")
    y = np.asarray(y)
    if y.shape != (len(b),) or (y.size and y.dtype.kind not in "iu"):
        raise ConfigError(f"expand_with_shifts needs one integer label per image: {len(b)} images, "
                          f"labels of shape {y.shape} and dtype {y.dtype}")
    shifts = ((0, 0),) + BOOK_SHIFTS
    S, n = len(shifts), len(images)
    if shuffle:
        order = as_generator(rng).permutation(S * n)
        position = np.empty_like(order)
        position[order] = np.arange(S * n)
    else:
        position = np.arange(S * n)
    out = np.empty((S * n,) + tuple(per_image), dtype=dtype)
    y5 = np.empty(S * n, dtype=np.int64)
    flat_out = out.reshape(S * n, *images.shape[1:])
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        buf = np.empty_like(images[start:stop])
        for s, (dy, dx) in enumerate(shifts):
            _shift_into(buf, images[start:stop], dy, dx)
            where = position[S * start + s:S * stop:S]
            flat_out[where] = buf if out.dtype == np.uint8 else from_bytes(buf, out.dtype)
            y5[where] = y[start:stop]
    return out, y5


# ---------------------------------------------------------------------------
# Augmentation on the fly
# ---------------------------------------------------------------------------

@compiled(nogil=True)
def _shift_rotate_kernel(images, shifts, cos, sin, out):  # pragma: no cover - compiled
    N, H, W = images.shape
    cy = (H - 1) / 2.0
    cx = (W - 1) / 2.0
    for n in range(N):
        cs = cos[n]
        sn = sin[n]
        for r in range(H):
            ry = r - cy - shifts[n, 0]
            for c in range(W):
                rx = c - cx - shifts[n, 1]
                # the source of output pixel (r, c): R(-theta) (p - t - o) + o
                sr = cs * ry + sn * rx + cy
                sc = cs * rx - sn * ry + cx
                r0 = math.floor(sr)
                c0 = math.floor(sc)
                fr = sr - r0
                fc = sc - c0
                i = int(r0)
                j = int(c0)
                acc = 0.0   # bilinear: neighbours outside the image count as 0
                if 0 <= i < H:
                    if 0 <= j < W:
                        acc += (1 - fr) * (1 - fc) * images[n, i, j]
                    if 0 <= j + 1 < W:
                        acc += (1 - fr) * fc * images[n, i, j + 1]
                if 0 <= i + 1 < H:
                    if 0 <= j < W:
                        acc += fr * (1 - fc) * images[n, i + 1, j]
                    if 0 <= j + 1 < W:
                        acc += fr * fc * images[n, i + 1, j + 1]
                out[n, r, c] = acc


def shift_rotate(x: np.ndarray, shifts: np.ndarray, degrees: np.ndarray) -> np.ndarray:
    """Rotate each image about its centre, then move it; bilinear, zero fill.

    Output pixel ``p = (r, c)`` takes the input at ``R(-theta) (p - t - o) + o``,
    where ``o = ((H-1)/2, (W-1)/2)`` is the centre, ``t = shifts[n]`` and
    ``theta = degrees[n]``, positive anticlockwise as displayed (rows
    pointing down); in rows and columns, with ``(dr, dc) = p - t - o``::

        source row    = cos(theta) dr + sin(theta) dc + (H-1)/2
        source column = cos(theta) dc - sin(theta) dr + (W-1)/2

    The value there is interpolated bilinearly from the four neighbouring
    pixels, those outside the image counting as 0 (``scipy.ndimage``'s
    ``order=1, mode="grid-constant"``, which the tests compare against).
    With ``degrees = 0`` and integer shifts this is exactly
    :func:`shift_images`'s displacement.

    A compiled loop over the pixels of the whole batch (no temporaries):
    about 5 microseconds per 28x28 image, several times faster than the
    same sampling as NumPy gathers, whose batch-sized temporaries cost more
    than the arithmetic.

    Args:
        x: ``(N, 784)`` or ``(N, H, W)``, float or uint8.
        shifts: ``(N, 2)`` ``(rows down, columns right)``, may be fractional.
        degrees: ``(N,)`` rotation angles in degrees.

    Returns:
        Same shape and dtype as ``x`` (integer results are rounded).
    """
    images, shape = _as_images(x, "shift_rotate")
    N = len(images)
    try:
        shifts = np.ascontiguousarray(np.broadcast_to(np.asarray(shifts, dtype=np.float64), (N, 2)))
        theta = np.deg2rad(np.broadcast_to(np.asarray(degrees, dtype=np.float64), (N,)))
    except ValueError:
        raise ConfigError(f"shift_rotate: {N} images need shifts of shape ({N}, 2) and degrees of "
                          f"shape ({N},), got {np.shape(shifts)} and {np.shape(degrees)}") from None
    if images.dtype.kind not in "fiu":
        raise ConfigError(f"shift_rotate: images must be float or integer, got dtype {images.dtype}")
    work = images.dtype if images.dtype.kind == "f" else np.dtype(np.float32)
    out = np.empty(images.shape, dtype=work)
    _shift_rotate_kernel(np.ascontiguousarray(images), shifts, np.cos(theta), np.sin(theta), out)
    if images.dtype.kind != "f":
        info = np.iinfo(images.dtype)
        out = np.clip(np.rint(out), info.min, info.max).astype(images.dtype)
    return out.reshape((N,) + tuple(shape))


def random_shift_rotate(max_shift: int = 2, max_degrees: float = 10.0
                        ) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    """An ``augment(x_batch, rng) -> x_batch`` for ``Trainer(augment=...)``.

    Each image of the mini-batch is moved by a random whole number of pixels
    ``(dy, dx)``, each uniform in ``[-max_shift, max_shift]``, and rotated by
    an angle uniform in ``[-max_degrees, max_degrees]`` (:func:`shift_rotate`,
    bilinear, zero fill). All randomness comes from the ``rng`` the trainer
    passes (its own Generator), so a seeded trainer is reproducible.
    ``max_shift=0, max_degrees=0`` returns the batch unchanged.

    Args:
        max_shift: largest displacement in pixels, an integer >= 0.
        max_degrees: largest rotation in degrees, 0 <= max_degrees <= 180.

    Shape:
        ``(m, 784)`` or ``(m, H, W)`` in, the same shape and dtype out.
    """
    if isinstance(max_shift, bool) or not isinstance(max_shift, (int, np.integer)) or max_shift < 0:
        raise ConfigError(f"random_shift_rotate: max_shift must be an integer >= 0, got {max_shift!r}")
    try:
        max_degrees = float(max_degrees)
    except (TypeError, ValueError):
        raise ConfigError(f"random_shift_rotate: max_degrees must be a number, got {max_degrees!r}") from None
    if not 0 <= max_degrees <= 180:
        raise ConfigError(f"random_shift_rotate: max_degrees must be in [0, 180], got {max_degrees}")
    max_shift = int(max_shift)

    def augment(x_batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if max_shift == 0 and max_degrees == 0:
            return x_batch
        n = len(x_batch)
        shifts = rng.integers(-max_shift, max_shift + 1, size=(n, 2))
        degrees = rng.uniform(-max_degrees, max_degrees, size=n) if max_degrees else np.zeros(n)
        return shift_rotate(x_batch, shifts, degrees)

    augment.__qualname__ = augment.__name__ = f"random_shift_rotate({max_shift}, {max_degrees:g})"
    return augment
