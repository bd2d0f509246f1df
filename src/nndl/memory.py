"""How much memory a network needs, estimated before anything is allocated.

A mistyped size (``--sizes 784 100000000 10``, ``--layers dense:100000000``,
``--batch-size 1000000000``) would otherwise make NumPy try to allocate
hundreds of GB: the machine swaps for minutes, or the process is killed
with no message. The functions here work out the parameter shapes from the
layers' hyper-parameters alone (the same arithmetic the layers' ``build``
does, without allocating) and compare the bytes needed with the memory this
process can get (:func:`available_memory`), refusing with the figures when it
cannot fit.

The figures are estimates, meant to catch sizes that cannot possibly fit,
not to predict the peak to the byte:

* building a network: parameters + their gradient buffers, plus the float64
  temporaries the initialisers draw the largest array through;
* training: parameters, gradients, momentum velocities and the trainer's copy
  of the last epoch's parameters, plus what one mini-batch (or one
  evaluation chunk of 1,000 examples, if larger) keeps per layer: weighted
  inputs, activations, errors, and for convolutions the unfolded (im2col)
  input and its gradient.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import ConfigError
from .layers.base import Layer
from .layers.conv import Conv2D, ConvPool, MaxPool2D
from .layers.dense import Dense
from .layers.dropout import Dropout
from .layers.reshape import Flatten, Reshape

__all__ = ["available_memory", "param_shapes", "parameter_count", "network_bytes",
           "check_network_memory", "estimate_training_memory", "check_training_memory",
           "format_bytes", "require_memory", "multiply_adds", "EVAL_CHUNK"]

#: Examples per evaluation chunk (``Network.feedforward``'s default batch).
EVAL_CHUNK = 1000


def format_bytes(n: float) -> str:
    """``314 GB``, ``1.5 GB``, ``820 MB``: decimal units, two or three significant digits."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if n >= 10 or unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().split()[0]
    except (OSError, IndexError):
        return None
    return int(text) if text.isdigit() else None


def available_memory() -> int | None:
    """Bytes of memory this process can still get, or None if unknown.

    The smallest of: the memory the kernel reports as available
    (``MemAvailable`` on Linux, else free physical pages from ``os.sysconf``,
    else all physical memory) and the room left under a cgroup (container)
    memory limit.
    """
    candidates = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    candidates.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    if not candidates:
        for pages in ("SC_AVPHYS_PAGES", "SC_PHYS_PAGES"):
            try:
                candidates.append(os.sysconf(pages) * os.sysconf("SC_PAGE_SIZE"))
                break
            except (ValueError, OSError, AttributeError):
                continue
    # cgroup v2, then v1: the limit minus what is already used.
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and limit < 1 << 60:          # "max" or a huge number: no limit
            candidates.append(max(limit - (usage or 0), 0))
            break
    candidates = [c for c in candidates if c > 0]
    return min(candidates) if candidates else None


# -- shapes, without allocating ----------------------------------------------------

def _layer_shapes(layer: Layer, shape: tuple[int, ...]) -> tuple[dict[str, tuple[int, ...]], tuple[int, ...]] | None:
    """``(param shapes, output shape)`` that ``layer.build(shape)`` would make,
    or None when the layer type is not known here or the shape does not fit
    (``build`` then raises its own error)."""
    if isinstance(layer, Dense):
        if len(shape) != 1:
            return None
        return {"w": (layer.n_out, shape[0]), "b": (layer.n_out,)}, (layer.n_out,)
    if isinstance(layer, (Conv2D, ConvPool)):
        if len(shape) != 3:
            return None
        c, h, w = shape
        k, f = layer.kernel_size, layer.filters
        if h < k or w < k:
            return None
        oh, ow = h - k + 1, w - k + 1
        if isinstance(layer, ConvPool):
            oh, ow = oh // layer.pool_size, ow // layer.pool_size
        return {"w": (f, c, k, k), "b": (f,)}, (f, oh, ow)
    if isinstance(layer, MaxPool2D):
        if len(shape) != 3:
            return None
        p = layer.pool_size
        return {}, (shape[0], shape[1] // p, shape[2] // p)
    if isinstance(layer, Dropout):
        return {}, shape
    if isinstance(layer, Flatten):
        return {}, (math.prod(shape),)
    if isinstance(layer, Reshape):
        size, known = math.prod(shape), math.prod(s for s in layer.shape if s != -1)
        out = tuple(size // known if s == -1 else s for s in layer.shape) if known else layer.shape
        return {}, out
    return None


def param_shapes(layers: Sequence[Layer], input_shape) -> list[dict[str, tuple[int, ...]]] | None:
    """The parameter shapes each layer will have once built for ``input_shape``
    (per example), worked out without allocating anything.

    Returns None when some layer's shapes cannot be worked out here (a layer
    type registered outside nndl, or shapes that ``build`` will reject).
    """
    shape = tuple(int(s) for s in input_shape)
    out = []
    for layer in layers:
        got = _layer_shapes(layer, shape)
        if got is None:
            return None
        params, shape = got
        out.append(params)
    return out


def _known_shapes(layers: Sequence[Layer], input_shape) -> list[tuple[Layer, tuple, tuple, dict]]:
    """``(layer, input shape, output shape, param shapes)`` for as many layers as
    can be worked out, input side first (a lower bound when some cannot)."""
    shape = tuple(int(s) for s in input_shape)
    out = []
    for layer in layers:
        if layer.built and layer.output_shape is not None:
            params = {k: tuple(v.shape) for k, v in layer.params.items()}
            got = (params, tuple(layer.output_shape))
        else:
            got = _layer_shapes(layer, shape)
        if got is None:
            break
        out.append((layer, shape, got[1], got[0]))
        shape = got[1]
    return out


def parameter_count(layers: Sequence[Layer], input_shape) -> int:
    """Number of parameters the layers will have (a lower bound if some layer's
    shapes cannot be worked out before building)."""
    return sum(math.prod(s) for *_, params in _known_shapes(layers, input_shape) for s in params.values())


def multiply_adds(layers: Sequence[Layer], input_shape) -> int:
    """Multiply-adds of one example's forward pass through the layers' weights
    (a rough measure of a network's cost: the backward pass is about twice it):
    each weight once per output position, ``k*k*C*F`` per position of a
    convolution, ``n_in*n_out`` for a dense layer."""
    total = 0
    for _layer, in_shape, _out_shape, params in _known_shapes(layers, input_shape):
        w = params.get("w")
        if w is None:
            continue
        positions = 1
        if len(w) == 4 and len(in_shape) == 3:   # convolution (F, C, k, k) over (C, H, W)
            positions = (in_shape[1] - w[2] + 1) * (in_shape[2] - w[3] + 1)
        total += math.prod(w) * positions
    return total


def network_bytes(layers: Sequence[Layer], input_shape, dtype) -> int:
    """Bytes needed to build the network: parameters and gradient buffers in
    ``dtype``, plus two float64 temporaries of the largest parameter array
    (initialisers draw from the generator in float64, then convert)."""
    itemsize = np.dtype(dtype).itemsize
    sizes = [math.prod(s) for *_, params in _known_shapes(layers, input_shape) for s in params.values()]
    return 2 * itemsize * sum(sizes) + 16 * max(sizes, default=0)


def require_memory(needed: int, what: str, *, hint: str | None = None, error: type = ConfigError) -> None:
    """Raise ``error`` ("``what`` needs about ... of memory, but only ... is
    available; ``hint``") if ``needed`` bytes are more than is available now
    (nothing when that cannot be told)."""
    available = available_memory()
    if available is not None and needed > available:
        raise error(f"{what} needs about {format_bytes(needed)} of memory, but only "
                    f"{format_bytes(available)} is available" + (f"; {hint}" if hint else ""))


def check_network_memory(layers: Sequence[Layer], input_shape, dtype) -> int:
    """Raise ConfigError, with the figures, if building these layers cannot fit
    in the available memory; else return the estimate in bytes."""
    needed = network_bytes(layers, input_shape, dtype)
    available = available_memory()
    if available is not None and needed > available:
        n = parameter_count(layers, input_shape)
        dt = np.dtype(dtype)
        raise ConfigError(f"this network needs {format_bytes(n * dt.itemsize)} for its {n:,} weights and "
                          f"biases as {dt.name} (about {format_bytes(needed)} to build them, with their "
                          f"gradients), but only {format_bytes(available)} of memory is available; "
                          "use smaller layers")
    return needed


def _per_example_floats(entries, *, train: bool) -> int:
    """Numbers one example keeps alive through a training step (``train``) or
    through inference, over all layers."""
    total = math.prod(entries[0][1]) if entries else 0        # the input batch (a copy, as dtype)
    for layer, in_shape, out_shape, params in entries:
        n_in, n_out = math.prod(in_shape), math.prod(out_shape)
        if isinstance(layer, (Reshape, Flatten)):
            continue                                          # views, no copies
        if isinstance(layer, (Conv2D, ConvPool)):
            c, h, w = in_shape
            k = layer.kernel_size
            conv = layer.filters * (h - k + 1) * (w - k + 1)
            cols = c * k * k * (h - k + 1) * (w - k + 1)
            if train:   # im2col input and its gradient; conv output, pooling indices,
                        # unpooled gradient; z, a, delta; the input gradient
                total += 2 * cols + 2 * conv + 3 * n_out + n_in
            else:       # im2col input, conv output, z and a
                total += cols + conv + 2 * n_out
        else:
            total += 3 * n_out + n_in if train else 2 * n_out  # z, a (delta, gradient below)
    return total


def estimate_training_memory(network, batch_size: int, *, momentum: bool = False,
                             input_shape=None, dtype=None) -> int:
    """Bytes a training run of ``network`` with mini-batches of ``batch_size`` needs.

    Args:
        network: a :class:`~nndl.network.Network`, or a list of (unbuilt)
            layers together with ``input_shape`` and ``dtype``.
        batch_size: the mini-batch size m, as given (the compiled dense path
            allocates its buffers for m examples even if the data has fewer).
        momentum: the optimizer keeps a velocity per parameter.

    Returns:
        The estimate in bytes: parameters, gradients, the trainer's copy of the
        parameters, velocities, and the activations of one mini-batch (or of
        one evaluation chunk of :data:`EVAL_CHUNK` examples, if larger).
        Training data is not included.
    """
    if isinstance(network, (list, tuple)):
        layers, shape, dt = list(network), input_shape, np.dtype(dtype or "float32")
        if shape is None:
            raise ConfigError("estimate_training_memory: give input_shape with a list of layers")
    else:
        layers, shape, dt = network.layers, network.input_shape, network.dtype
    entries = _known_shapes(layers, shape)
    n_params = sum(math.prod(s) for *_, params in entries for s in params.values())
    copies = 3 + (1 if momentum else 0)         # params, grads, snapshot (+ velocity)
    activations = max(int(batch_size) * _per_example_floats(entries, train=True),
                      EVAL_CHUNK * _per_example_floats(entries, train=False))
    return dt.itemsize * (copies * n_params + activations)


def check_training_memory(network, batch_size: int, *, momentum: bool = False,
                          input_shape=None, dtype=None) -> int:
    """Raise ConfigError, with the figures, if :func:`estimate_training_memory`
    exceeds the available memory; else return the estimate in bytes."""
    needed = estimate_training_memory(network, batch_size, momentum=momentum,
                                      input_shape=input_shape, dtype=dtype)
    require_memory(needed, f"training with mini-batches of {int(batch_size):,} examples",
                   hint="use a smaller mini-batch size or a smaller network")
    return needed
