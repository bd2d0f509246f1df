"""Saving and loading networks, without pickle.

Two formats:

* **nndl** (``.npz``): a NumPy archive holding every parameter array as
  ``layer<i>/<key>`` plus ``config.json``, the network's description, as a
  byte array. Loaded with ``allow_pickle=False``: nothing in the file runs.
* **book** (``.json``): the format of the book's ``network2.save``:
  ``{"sizes": [...], "weights": [...], "biases": [...], "cost": "CrossEntropyCost"}``
  with weights ``(n_out, n_in)`` and biases ``(n_out, 1)`` as nested lists.
  Only sigmoid networks of dense layers with the quadratic or cross-entropy
  cost fit it, as in the book.

:func:`load` tells the formats apart by content, not by the file name.
"""

from __future__ import annotations

import json
import math
import os
import stat
import zipfile
from pathlib import Path

import numpy as np

from .errors import ConfigError, ModelFileError, NNDLError, path_arg, shape_tuple
from .fileio import atomic_write, atomic_write_text, check_writable
from .layers import Dense, from_config
from .memory import format_bytes, network_bytes, param_shapes, parameter_count, require_memory
from .network import Network

FORMAT_VERSION = 1
#: The extensions :func:`save` knows: ``.npz`` (nndl) and ``.json`` (the book's).
MODEL_SUFFIXES = (".npz", ".json")
BOOK_COSTS = {"QuadraticCost": "quadratic", "CrossEntropyCost": "cross-entropy"}


def save(network: Network, path, format: str | None = None) -> Path:
    """Save ``network`` to ``path`` atomically; ``format`` is ``"nndl"`` or
    ``"book"`` (default: ``"book"`` for a ``.json`` name, else ``"nndl"``)."""
    path = path_arg(path, "save: path")
    if not isinstance(network, Network):
        raise ConfigError(f"save: expected an nndl Network, got {type(network).__name__}")
    if format is None:
        format = "book" if path.suffix.lower() == ".json" else "nndl"
    if format == "book":
        atomic_write_text(path, json.dumps(to_book_dict(network)))
    elif format == "nndl":
        arrays = model_arrays([layer.params for layer in network.layers], network.config())
        atomic_write(path, lambda f: np.savez(f, **arrays))
    else:
        raise ConfigError(f"unknown model format {format!r}; valid formats: nndl, book")
    return path


def model_arrays(params, config: dict | None = None) -> dict[str, np.ndarray]:
    """The members of an nndl model file: ``layer{i}/{key}`` for each layer's
    parameters (``params``: one dict per layer), and with ``config`` (the
    network's :meth:`~nndl.network.Network.config`) ``config.json``, which
    also names the format and its version. A checkpoint holds them too, so
    that it loads as a model."""
    arrays = {f"layer{i}/{k}": v for i, p in enumerate(params) for k, v in p.items()}
    if config is not None:
        text = json.dumps({"format": "nndl", "version": FORMAT_VERSION, **config})
        arrays["config.json"] = np.frombuffer(text.encode(), dtype=np.uint8)
    return arrays


def load(path) -> Network:
    """Load a network saved in either format.

    Whatever the file holds, the answer is a network or a
    :class:`~nndl.errors.ModelFileError` naming the file and what is wrong
    with it. Sizes are checked before memory is spent on them: the path must
    be a regular file (not a folder, a device such as ``/dev/zero`` or a
    pipe); an archive's arrays must have the shapes its description implies
    -- read from the ``.npy`` headers before any data is inflated -- and must
    fit in the available memory together with the network; a JSON file must
    fit in memory as parsed lists.
    """
    path = path_arg(path, "load: path")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ModelFileError(f"model file {path} does not exist") from None
    except OSError as e:
        raise ModelFileError(f"cannot read model file {path}: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ModelFileError(f"{path} is a folder, not a model file")
    if not stat.S_ISREG(st.st_mode):
        raise ModelFileError(f"{path} is not a regular file (a device or a pipe?), not a model file")
    try:
        with open(path, "rb") as f:
            if f.read(4) == b"PK\x03\x04":
                return _load_npz(f)
            f.seek(0)
            return _load_json(f, st.st_size)
    except ModelFileError as e:
        raise ModelFileError(f"{path}: {e}") from None
    except NNDLError as e:
        raise ModelFileError(f"{path}: malformed model: {e}") from None
    except OSError as e:
        raise ModelFileError(f"cannot read model file {path}: {e.strerror or e}") from None


def _load_json(f, size: int) -> Network:
    # Parsed, each number becomes a Python float in a list: about twice the
    # text, which must stay in memory alongside.
    require_memory(4 * size, f"reading this {format_bytes(size)} JSON file", error=ModelFileError)
    raw = f.read()
    try:
        data = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise ModelFileError("not a model: its JSON is nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise ModelFileError(f"not a JSON model file or an nndl .npz archive ({e})") from None
    return from_book_dict(data)


# -- the nndl .npz format ------------------------------------------------------------

#: The largest network description read (a description is a few kB).
MAX_CONFIG_BYTES = 1 << 22
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, NotImplementedError,
               RuntimeError, OSError)


def _npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo):
    """``(fp, shape, dtype, fortran_order)`` of an ``.npy`` member, with ``fp``
    just past the header; checks that the data the header declares is exactly
    what the archive's directory says the member holds, so that reading it
    allocates no more than that."""
    fp = zf.open(info)
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            raise ModelFileError(f"array {info.filename!r}: unsupported .npy format version {version}")
    except ModelFileError:
        fp.close()
        raise
    except (*_ZIP_ERRORS, SyntaxError) as e:
        fp.close()
        raise ModelFileError(f"corrupt .npz archive: array {info.filename!r} has a bad header ({e})") from None
    nbytes = math.prod(shape) * dtype.itemsize
    if dtype.hasobject or fp.tell() + nbytes != info.file_size:
        fp.close()
        raise ModelFileError(f"corrupt .npz archive: array {info.filename!r} declares shape {shape} "
                             f"({format_bytes(nbytes)}) but holds {format_bytes(info.file_size)}")
    return fp, shape, dtype, fortran


def _read_npy(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    fp, shape, dtype, fortran = _npy_header(zf, info)
    with fp:
        try:
            data = fp.read(math.prod(shape) * dtype.itemsize)
        except _ZIP_ERRORS as e:
            raise ModelFileError(f"corrupt .npz archive: array {info.filename!r}: {e}") from None
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def _config_from(zf: zipfile.ZipFile, infos: dict) -> dict:
    info = infos.get("config.json.npy")
    if info is None:
        raise ModelFileError("an .npz archive without config.json is not an nndl model")
    if info.file_size > MAX_CONFIG_BYTES:
        raise ModelFileError(f"config.json holds {format_bytes(info.file_size)}; a network description "
                             "is a few kB")
    raw = _read_npy(zf, info)
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ModelFileError("config.json is not stored as bytes")
    try:
        config = json.loads(raw.tobytes().decode("utf-8"))
    except RecursionError:
        raise ModelFileError("config.json is nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise ModelFileError(f"config.json is not valid JSON ({e})") from None
    if not isinstance(config, dict) or config.get("format") != "nndl":
        raise ModelFileError("config.json does not describe an nndl network")
    version = config.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelFileError(f"config.json: format version must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"written by a newer nndl (format version {version}); upgrade nndl")
    missing = [k for k in ("layers", "cost", "input_shape", "dtype") if k not in config]
    if missing:
        raise ModelFileError(f"config.json lacks {', '.join(missing)}")
    if not isinstance(config["layers"], list) or not config["layers"]:
        raise ModelFileError(f"config.json: layers must be a non-empty list, got {config['layers']!r:.80}")
    if config["dtype"] not in ("float32", "float64"):
        raise ModelFileError(f"config.json: dtype must be float32 or float64, got {config['dtype']!r:.80}")
    if not isinstance(config["cost"], str):
        raise ModelFileError(f"config.json: cost must be a name, got {config['cost']!r:.80}")
    return config


def _load_npz(f) -> Network:
    try:
        zf = zipfile.ZipFile(f)
    except _ZIP_ERRORS as e:
        raise ModelFileError(f"corrupt .npz archive ({e})") from None
    with zf:
        infos = {info.filename: info for info in zf.infolist()}
        config = _config_from(zf, infos)
        input_shape = shape_tuple(config["input_shape"], "input_shape")
        layers = []
        for i, c in enumerate(config["layers"]):
            try:
                layers.append(from_config(c))
            except (TypeError, ValueError, KeyError, AttributeError) as e:
                raise ModelFileError(f"config.json: layer {i} is malformed ({e})") from None
        dtype = np.dtype(config["dtype"])
        # The parameters the description implies, checked against the stored
        # arrays' headers before anything is built or inflated.
        expected = param_shapes(layers, input_shape)
        headers: dict[tuple[int, str], zipfile.ZipInfo] = {}
        if expected is not None:
            for i, shapes in enumerate(expected):
                missing = [k for k in shapes if f"layer{i}/{k}.npy" not in infos]
                if missing:
                    raise ModelFileError(f"layer {i} parameters {missing} are missing")
                for k, want in shapes.items():
                    info = infos[f"layer{i}/{k}.npy"]
                    fp, shape, dt, _ = _npy_header(zf, info)
                    fp.close()
                    if tuple(shape) != tuple(want):
                        raise ModelFileError(f"layer {i} parameter {k!r}: expected shape {tuple(want)}, "
                                             f"got {tuple(shape)}")
                    if dt.kind != "f":
                        raise ModelFileError(f"layer {i} parameter {k!r}: stored as {dt}, not as floats")
                    headers[(i, k)] = info
            stored = sum(info.file_size for info in headers.values())
            require_memory(network_bytes(layers, input_shape, dtype) + stored,
                           f"loading this network ({parameter_count(layers, input_shape):,} parameters)",
                           error=ModelFileError)
        net = Network(layers, config["cost"], input_shape=input_shape, rng=0, dtype=dtype)
        params = []
        for i, layer in enumerate(net.layers):
            p = {}
            for k in layer.params:
                info = headers.get((i, k)) or infos.get(f"layer{i}/{k}.npy")
                if info is None:
                    raise ModelFileError(f"layer {i} parameters {[k]} are missing")
                v = _read_npy(zf, info)
                if v.dtype.kind != "f" or not np.isfinite(v).all():
                    raise ModelFileError(f"layer {i} parameter {k!r}: weights or biases are not finite numbers")
                p[k] = v
            params.append(p)
        try:
            net.set_params(params)
        except ConfigError as e:
            raise ModelFileError(str(e)) from None
    return net


def check_book_format(network: Network) -> None:
    """ConfigError unless the book's JSON format can hold ``network`` (sigmoid
    Dense layers with the quadratic or cross-entropy cost)."""
    if network.cost.name not in BOOK_COSTS.values():
        raise ConfigError(f"the book's format stores quadratic or cross-entropy networks, not "
                          f"{network.cost.name}; save in the nndl format (.npz)")
    for layer in network.layers:
        if type(layer) is not Dense or layer.activation.name != "sigmoid":
            raise ConfigError("the book's format stores only sigmoid Dense layers; save in the nndl format (.npz)")


def check_save_path(path, network: Network | None = None, *, what: str = "model file",
                    parents: bool = True) -> Path:
    """Check, before a long run, that :func:`save` will be able to write
    ``network`` to ``path``: its extension is ``.npz`` or ``.json``, its folder
    exists and is writable (see :func:`nndl.fileio.check_writable`), and for
    ``.json`` the book's format can hold the network. ``parents``: as for
    :func:`~nndl.fileio.check_writable`.

    Raises:
        OutputError: a bad path. ConfigError: a network the book's format
            cannot hold, for a ``.json`` name.
    """
    path = check_writable(path, MODEL_SUFFIXES, what=what, parents=parents)
    if network is not None and path.suffix.lower() == ".json":
        try:
            check_book_format(network)
        except ConfigError as e:
            raise ConfigError(f"{what} {path}: {e}") from None
    return path


def to_book_dict(network: Network) -> dict:
    """The dict the book's ``network2.save`` writes."""
    check_book_format(network)
    cost = {v: k for k, v in BOOK_COSTS.items()}[network.cost.name]
    return {
        "sizes": [network.input_shape[0]] + [layer.n_out for layer in network.layers],
        "weights": [layer.params["w"].astype(np.float64).tolist() for layer in network.layers],
        "biases": [layer.params["b"].astype(np.float64).reshape(-1, 1).tolist() for layer in network.layers],
        "cost": cost,
    }


def from_book_dict(data, dtype="float64") -> Network:
    """A network from the book's JSON dict (``sizes``, ``weights``, ``biases``, ``cost``),
    validated as strictly as the book's code needs it (``ModelFileError`` otherwise)."""
    if not isinstance(data, dict):
        raise ModelFileError(f"expected a JSON object with sizes, weights, biases and cost, "
                             f"got a {type(data).__name__}")
    missing = [k for k in ("sizes", "weights", "biases", "cost") if k not in data]
    if missing:
        raise ModelFileError(f"the model lacks {', '.join(missing)} (the book's format has "
                             "sizes, weights, biases and cost)")
    if not isinstance(data["cost"], str) or data["cost"] not in BOOK_COSTS:
        raise ModelFileError(f"unknown cost {data['cost']!r}; the book's costs: {', '.join(BOOK_COSTS)}")
    sizes = data["sizes"]
    if not isinstance(sizes, list) or len(sizes) < 2:
        raise ModelFileError(f"bad sizes: expected a list of at least two layer sizes, got {sizes!r}")
    for i, s in enumerate(sizes):
        if isinstance(s, bool) or not isinstance(s, int) or s < 1:
            raise ModelFileError(f"bad sizes: sizes[{i}] must be a positive integer, got {s!r}")
    n = len(sizes) - 1
    for key in ("weights", "biases"):
        if not isinstance(data[key], list) or len(data[key]) != n:
            got = len(data[key]) if isinstance(data[key], list) else type(data[key]).__name__
            raise ModelFileError(f"sizes {sizes} need {n} {key} arrays, got {got}")
    params = []
    for i in range(n):
        layer = {}
        for key, short, expected in (("weights", "w", (sizes[i + 1], sizes[i])), ("biases", "b", (sizes[i + 1], 1))):
            try:
                a = np.array(data[key][i], dtype=np.float64)
            except (ValueError, TypeError, OverflowError, RecursionError):
                raise ModelFileError(f"{key}[{i}] is not a numeric matrix") from None
            if a.shape != expected:
                raise ModelFileError(f"{key}[{i}] has shape {a.shape}, but sizes {sizes} need {expected}")
            if not np.isfinite(a).all():
                raise ModelFileError(f"{key}[{i}] holds values that are not finite")
            layer[short] = a.reshape(-1) if short == "b" else a
        params.append(layer)
    net = Network.from_sizes(sizes, cost=BOOK_COSTS[data["cost"]], rng=0, dtype=dtype)
    net.set_params(params)
    return net
