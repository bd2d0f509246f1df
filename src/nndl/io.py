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
            raise ModelFileError(f"not an nndl .npz archive and not valid JSON ({e})") from None
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
    """A network from the book's JSON dict (``sizes``, ``weights``, ``biases``, ``cost``)."""
    if not isinstance(data, dict):
        raise ModelFileError("expected a JSON object with sizes, weights, biases and cost")
    missing = [k for k in ("sizes", "weights", "biases", "cost") if k not in data]
    if missing:
        raise ModelFileError(f"JSON model lacks the keys {missing} (the book's format has sizes, weights, biases, cost)")
    if data["cost"] not in BOOK_COSTS:
        raise ModelFileError(f"unknown cost {data['cost']!r}; the book's costs: {', '.join(BOOK_COSTS)}")
    sizes = data["sizes"]
    if not isinstance(sizes, list) or len(sizes) < 2 or not all(isinstance(s, int) and s > 0 for s in sizes):
        raise ModelFileError(f"sizes must be a list of at least two positive integers, got {sizes!r}")
    n = len(sizes) - 1
    if not (isinstance(data["weights"], list) and isinstance(data["biases"], list)
            and len(data["weights"]) == n and len(data["biases"]) == n):
        raise ModelFileError(f"sizes {sizes} need {n} weight matrices and {n} bias vectors")
    net = Network.from_sizes(sizes, cost=BOOK_COSTS[data["cost"]], rng=0, dtype=dtype)
    params = []
    for i, (w, b) in enumerate(zip(data["weights"], data["biases"])):
        try:
            w = np.array(w, dtype=np.float64)
            b = np.array(b, dtype=np.float64)
        except (ValueError, TypeError):
            raise ModelFileError(f"layer {i}: weights/biases are not numeric matrices") from None
        if w.shape != (sizes[i + 1], sizes[i]) or b.shape not in ((sizes[i + 1], 1), (sizes[i + 1],)):
            raise ModelFileError(
                f"layer {i}: expected weights {(sizes[i + 1], sizes[i])} and biases {(sizes[i + 1], 1)}, "
                f"got {w.shape} and {b.shape}"
            )
        if not (np.isfinite(w).all() and np.isfinite(b).all()):
            raise ModelFileError(f"layer {i}: weights or biases are not finite")
        params.append({"w": w, "b": b.reshape(-1)})
    net.set_params(params)
    return net
