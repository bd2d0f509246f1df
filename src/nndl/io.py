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

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from .errors import ConfigError, ModelFileError, NNDLError
from .fileio import atomic_write, atomic_write_text
from .layers import Dense, from_config
from .network import Network

FORMAT_VERSION = 1
BOOK_COSTS = {"QuadraticCost": "quadratic", "CrossEntropyCost": "cross-entropy"}


def save(network: Network, path, format: str | None = None) -> Path:
    """Save ``network`` to ``path`` atomically; ``format`` is ``"nndl"`` or
    ``"book"`` (default: ``"book"`` for a ``.json`` name, else ``"nndl"``)."""
    path = Path(path)
    if format is None:
        format = "book" if path.suffix.lower() == ".json" else "nndl"
    if format == "book":
        atomic_write_text(path, json.dumps(to_book_dict(network)))
    elif format == "nndl":
        config = {"format": "nndl", "version": FORMAT_VERSION, **network.config()}
        arrays = {f"layer{i}/{k}": v for i, layer in enumerate(network.layers) for k, v in layer.params.items()}
        arrays["config.json"] = np.frombuffer(json.dumps(config).encode(), dtype=np.uint8)
        atomic_write(path, lambda f: np.savez(f, **arrays))
    else:
        raise ConfigError(f"unknown model format {format!r}; valid formats: nndl, book")
    return path


def load(path) -> Network:
    """Load a network saved in either format."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"model file {path} does not exist") from None
    except OSError as e:
        raise ModelFileError(f"cannot read model file {path}: {e.strerror}") from None
    try:
        if raw[:4] == b"PK\x03\x04":
            return _load_npz(raw)
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise ModelFileError(f"not a JSON model file or an nndl .npz archive ({e})") from None
        return from_book_dict(data)
    except ModelFileError as e:
        raise ModelFileError(f"{path}: {e}") from None
    except NNDLError as e:
        raise ModelFileError(f"{path}: malformed model: {e}") from None


def _load_npz(raw: bytes) -> Network:
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise ModelFileError(f"corrupt .npz archive ({e})") from None
    if "config.json" not in arrays:
        raise ModelFileError("an .npz archive without config.json is not an nndl model")
    try:
        config = json.loads(arrays.pop("config.json").tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ModelFileError(f"config.json is not valid JSON ({e})") from None
    if not isinstance(config, dict) or config.get("format") != "nndl":
        raise ModelFileError("config.json does not describe an nndl network")
    if config.get("version", 0) > FORMAT_VERSION:
        raise ModelFileError(f"written by a newer nndl (format version {config['version']}); upgrade nndl")
    try:
        layers = [from_config(c) for c in config["layers"]]
        net = Network(layers, config["cost"], input_shape=config["input_shape"], dtype=config["dtype"])
    except (KeyError, TypeError) as e:
        raise ModelFileError(f"config.json lacks or garbles {e}") from None
    params = [{k: arrays.get(f"layer{i}/{k}") for k in layer.params} for i, layer in enumerate(net.layers)]
    for i, p in enumerate(params):
        missing = [k for k, v in p.items() if v is None]
        if missing:
            raise ModelFileError(f"layer {i} parameters {missing} are missing")
        for k, v in p.items():
            if not np.issubdtype(v.dtype, np.floating) or not np.isfinite(v).all():
                raise ModelFileError(f"layer {i} parameter {k!r}: weights or biases are not finite numbers")
    net.set_params(params)
    return net


def to_book_dict(network: Network) -> dict:
    """The dict the book's ``network2.save`` writes."""
    if network.cost.name not in BOOK_COSTS.values():
        raise ConfigError(f"the book's format stores quadratic or cross-entropy networks, not {network.cost.name}")
    for layer in network.layers:
        if type(layer) is not Dense or layer.activation.name != "sigmoid":
            raise ConfigError("the book's format stores only sigmoid Dense layers; save in the nndl format (.npz)")
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
    if data["cost"] not in BOOK_COSTS:
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
            except (ValueError, TypeError):
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
