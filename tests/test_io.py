"""Saving and loading: round trips in both formats, malformed files, atomic writes."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import nndl
import nndl.fileio
from nndl import ConfigError, Dense, ModelFileError, NNDLError, Network

pytestmark = pytest.mark.usefixtures("strict_fp")   # floating-point warnings are errors


def _net_for_files(dtype="float64"):
    return Network([Dense(7, "relu", "he"), Dense(5, "tanh"), Dense(3, "softmax", "glorot")],
                   "log-likelihood", input_shape=(6,), rng=4, dtype=dtype)


def _book_net(cost="cross-entropy"):
    return Network.from_sizes([6, 5, 3], cost=cost, rng=4, dtype="float64")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_npz_round_trip(tmp_path, dtype):
    net = _net_for_files(dtype)
    x = np.random.default_rng(1).random((50, 6))
    path = nndl.save(net, tmp_path / "model.npz")
    back = nndl.load(path)
    assert back.config() == net.config() and back.dtype == net.dtype
    assert np.array_equal(back.feedforward(x), net.feedforward(x))
    assert np.array_equal(back.predict(x), net.predict(x))
    # the format does not depend on the name
    nndl.save(net, tmp_path / "model.bin", format="nndl")
    assert np.array_equal(nndl.load(tmp_path / "model.bin").feedforward(x), net.feedforward(x))


@pytest.mark.parametrize("cost", ["quadratic", "cross-entropy"])
def test_book_json_round_trip(tmp_path, cost):
    net = _book_net(cost)
    x = np.random.default_rng(1).random((50, 6))
    path = nndl.save(net, tmp_path / "model.json")
    data = json.loads(path.read_text())
    assert set(data) == {"sizes", "weights", "biases", "cost"}
    assert data["sizes"] == [6, 5, 3]
    assert np.array(data["biases"][0]).shape == (5, 1)          # the book's column biases
    assert data["cost"] == {"quadratic": "QuadraticCost", "cross-entropy": "CrossEntropyCost"}[cost]
    back = nndl.load(path)
    assert back.cost.name == cost
    assert np.array_equal(back.feedforward(x), net.feedforward(x))
    assert np.array_equal(back.predict(x), net.predict(x))


def test_book_json_refuses_what_it_cannot_store(tmp_path):
    with pytest.raises(ConfigError):
        nndl.save(_net_for_files(), tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists() and os.listdir(tmp_path) == []
    with pytest.raises(ConfigError, match="valid formats"):
        nndl.save(_book_net(), tmp_path / "m.npz", format="pickle")


def _book_dict():
    from nndl.io import to_book_dict
    return to_book_dict(_book_net())


def _write_npz(path, arrays: dict, config: dict | None):
    if config is not None:
        arrays = {**arrays, "config.json": np.frombuffer(json.dumps(config).encode(), dtype=np.uint8)}
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _npz_parts():
    net = _net_for_files()
    config = {"format": "nndl", "version": 1, **net.config()}
    arrays = {f"layer{i}/{k}": v for i, layer in enumerate(net.layers) for k, v in layer.params.items()}
    return arrays, config


def _bad_json(mutate):
    d = _book_dict()
    mutate(d)
    return json.dumps(d).encode()


def _bad_npz(tmp_path, mutate):
    arrays, config = _npz_parts()
    config = mutate(arrays, config)
    p = tmp_path / "_src.npz"
    _write_npz(p, arrays, config)
    raw = p.read_bytes()
    p.unlink()
    return raw


def _truncated_npz(tmp_path):
    p = nndl.save(_net_for_files(), tmp_path / "_full.npz")
    raw = p.read_bytes()
    p.unlink()
    return raw[: len(raw) // 2]


def _set(d, key, value):
    d[key] = value


MALFORMED = {
    "garbage bytes": (lambda tmp: b"\x00\x01\x02garbage\xff\xfe", "not a JSON model file or an nndl .npz archive"),
    "empty file": (lambda tmp: b"", "not a JSON model file"),
    "truncated npz": (_truncated_npz, "corrupt .npz archive"),
    "npz without config": (lambda tmp: _bad_npz(tmp, lambda a, c: None), "without config.json"),
    "npz config not nndl": (lambda tmp: _bad_npz(tmp, lambda a, c: {**c, "format": "keras"}),
                            "does not describe an nndl network"),
    "npz config missing layers": (lambda tmp: _bad_npz(tmp, lambda a, c: {k: v for k, v in c.items()
                                                                         if k != "layers"}), "layers"),
    "npz wrong cost": (lambda tmp: _bad_npz(tmp, lambda a, c: {**c, "cost": "hinge"}), "unknown cost 'hinge'"),
    "npz missing array": (lambda tmp: _bad_npz(tmp, lambda a, c: (a.pop("layer1/w"), c)[1]),
                          r"layer 1 parameters \['w'\] are missing"),
    "npz wrong shape": (lambda tmp: _bad_npz(tmp, lambda a, c: (_set(a, "layer0/w", np.zeros((6, 7))), c)[1]),
                        r"layer 0 parameter 'w': expected shape \(7, 6\), got \(6, 7\)"),
    "npz newer version": (lambda tmp: _bad_npz(tmp, lambda a, c: {**c, "version": 99}), "newer nndl"),
    "json not an object": (lambda tmp: b"[1, 2, 3]", "expected a JSON object"),
    "json missing keys": (lambda tmp: _bad_json(lambda d: (d.pop("weights"), d.pop("cost"))),
                          r"lacks weights, cost"),
    "json wrong cost": (lambda tmp: _bad_json(lambda d: _set(d, "cost", "HingeCost")), "unknown cost 'HingeCost'"),
    "json wrong weight shape": (lambda tmp: _bad_json(lambda d: _set(d, "weights", [np.zeros((5, 5)).tolist(),
                                                                                    d["weights"][1]])),
                                r"weights\[0\] has shape \(5, 5\), but sizes \[6, 5, 3\] need \(5, 6\)"),
    "json wrong bias shape": (lambda tmp: _bad_json(lambda d: _set(d, "biases", [[[0.0]] * 4, d["biases"][1]])),
                              r"biases\[0\] has shape \(4, 1\), but sizes \[6, 5, 3\] need \(5, 1\)"),
    "json layer count": (lambda tmp: _bad_json(lambda d: _set(d, "weights", d["weights"][:1])),
                         "need 2 weights arrays, got 1"),
    "json bad sizes": (lambda tmp: _bad_json(lambda d: _set(d, "sizes", [6, -5, 3])), r"bad sizes: sizes\[1\] must be a positive integer, got -5"),
    "json non-numeric": (lambda tmp: _bad_json(lambda d: _set(d, "weights", [[["a"] * 6] * 5, d["weights"][1]])),
                         r"weights\[0\] is not a numeric matrix"),
    "json NaN weights": (lambda tmp: _bad_json(lambda d: d["weights"][1][0].__setitem__(0, float("nan"))),
                         "not finite"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_model_files_raise_model_file_error(tmp_path, case):
    make, match = MALFORMED[case]
    path = tmp_path / "model.bin"
    path.write_bytes(make(tmp_path))
    with pytest.raises(ModelFileError, match=match) as info:
        nndl.load(path)
    assert str(path) in str(info.value)            # the message names the file ...
    assert isinstance(info.value, NNDLError)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_npz_with_non_finite_weights_raises(tmp_path, bad):
    def mutate(a, c):
        a["layer0/w"] = a["layer0/w"].copy()
        a["layer0/w"][0, 0] = bad
        return c
    path = tmp_path / "model.npz"
    path.write_bytes(_bad_npz(tmp_path, mutate))
    with pytest.raises(ModelFileError, match="not finite"):
        nndl.load(path)


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        nndl.load(tmp_path / "nope.npz")


def _listing(folder):
    return sorted(os.listdir(folder))


def test_npz_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    old = _net_for_files()
    nndl.save(old, path)
    before = path.read_bytes()

    def failing_savez(f, **arrays):     # writes part of an archive, then the disk fills up
        f.write(b"PK\x03\x04" + b"\x00" * 100)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", failing_savez)
    new = Network([Dense(7, "relu", "he"), Dense(5, "tanh"), Dense(3, "softmax", "glorot")],
                  "log-likelihood", input_shape=(6,), rng=99, dtype="float64")
    with pytest.raises(OSError, match="No space"):
        nndl.save(new, path)
    with pytest.raises(OSError):
        nndl.save(new, tmp_path / "fresh.npz")
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert _listing(tmp_path) == ["model.npz"]        # no temporary file, no half-written fresh.npz
    x = np.random.default_rng(0).random((10, 6))
    assert np.array_equal(nndl.load(path).feedforward(x), old.feedforward(x))


def test_json_save_is_atomic_even_on_ctrl_c(tmp_path, monkeypatch):
    path = tmp_path / "model.json"
    nndl.save(_book_net(), path)
    before = path.read_text()

    def interrupted_fsync(fd):          # the text is written; Ctrl-C arrives before the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(nndl.fileio.os, "fsync", interrupted_fsync)
    other = Network.from_sizes([6, 5, 3], cost="cross-entropy", rng=123, dtype="float64")
    with pytest.raises(KeyboardInterrupt):
        nndl.save(other, path)
    monkeypatch.undo()
    assert path.read_text() == before
    assert _listing(tmp_path) == ["model.json"]
