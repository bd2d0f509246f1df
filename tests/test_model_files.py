"""Malformed and hostile model files: each is one ModelFileError naming the
file, found from headers before memory is spent (no multi-GB network built,
no archive inflated), and one line from ``nndl evaluate``."""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import nndl
from nndl import Network, cli
from nndl.errors import ModelFileError
from helpers import peak_mb

MB = 1 << 20


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """The arrays and description of a saved [6, 5, 3] network."""
    path = tmp_path_factory.mktemp("good") / "net.npz"
    nndl.save(Network.from_sizes([6, 5, 3], cost="cross-entropy", rng=0, dtype="float64"), path)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    config = json.loads(arrays.pop("config.json").tobytes())
    return arrays, config


def _npz(path, arrays, config):
    np.savez(path, **arrays, **{"config.json": np.frombuffer(json.dumps(config).encode(), np.uint8)})
    return path


def _book(**changes):
    d = nndl.io.to_book_dict(Network.from_sizes([2, 1], rng=0, dtype="float64"))
    d.update(changes)
    return json.dumps(d)


def _npy_bytes(a):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a)
    return buf.getvalue()


def _forged(path, config, members):
    """An archive with config.json and raw ``members`` {name: bytes}."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json.npy", _npy_bytes(np.frombuffer(json.dumps(config).encode(), np.uint8)))
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _header(shape, descr="<f8"):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


NPZ_CONFIG_CASES = {
    "version a string": ({"version": "1"}, "config.json: format version must be a positive integer, got '1'"),
    "version null": ({"version": None}, "config.json: format version must be a positive integer, got None"),
    "version missing": ({"version": ...}, "config.json: format version must be a positive integer, got None"),
    "input_shape a string": ({"input_shape": "abc"}, "input_shape must be one or more positive integers, got 'abc'"),
    "input_shape negative": ({"input_shape": [-6]}, "input_shape must be one or more positive integers, got [-6]"),
    "input_shape nested": ({"input_shape": [[6]]}, "input_shape must be one or more positive integers, got [[6]]"),
    "input_shape a float": ({"input_shape": [6.5]}, "input_shape must be one or more positive integers, got [6.5]"),
    "input_shape empty": ({"input_shape": []}, "input_shape must be one or more positive integers, got []"),
    "cost a list": ({"cost": ["cross-entropy"]}, "config.json: cost must be a name, got ['cross-entropy']"),
    "cost an object": ({"cost": {"name": "x"}}, "config.json: cost must be a name, got {'name': 'x'}"),
    "dtype an object": ({"dtype": {"names": ["a"]}}, "config.json: dtype must be float32 or float64"),
    "layers a string": ({"layers": "dense"}, "config.json: layers must be a non-empty list, got 'dense'"),
    "layer a number": ({"layers": [5]}, "config.json: layer 0 is malformed (unknown layer description 5"),
    "layer type a list": ({"layers": [{"type": ["Dense"]}]}, "config.json: layer 0 is malformed (unknown layer"),
    "layer argument bad": ({"layers": [{"type": "Dense", "n_out": "five"}]},
                           "layer 0 is malformed (Dense: n_out must be a positive integer, got 'five')"),
    "layer argument unknown": ({"layers": [{"type": "Dense", "n_out": 3, "units": 3}]},
                               "unexpected keyword argument 'units'"),
    "shape inconsistent": ({"input_shape": [7]}, "layer 0 parameter 'w': expected shape (5, 7), got (5, 6)"),
}


@pytest.mark.parametrize("case", list(NPZ_CONFIG_CASES))
def test_malformed_npz_descriptions(tmp_path, good, case):
    arrays, config = good
    change, message = NPZ_CONFIG_CASES[case]
    config = {k: v for k, v in {**config, **change}.items() if v is not ...}
    path = _npz(tmp_path / "model.npz", arrays, config)
    with pytest.raises(ModelFileError) as e:
        nndl.load(path)
    assert str(e.value).startswith(f"{path}: ") and message in str(e.value)


BOOK_CASES = {
    "cost a list": (_book(cost=["QuadraticCost"]), "unknown cost ['QuadraticCost']; the book's costs"),
    "cost an object": (_book(cost={"QuadraticCost": 1}), "unknown cost {'QuadraticCost': 1}"),
    "cost null": (_book(cost=None), "unknown cost None"),
    "deeply nested": ("[" * 100_000 + "]" * 100_000, "not a model: its JSON is nested too deeply"),
    "deep weights": (_book(weights=json.loads("[" * 300 + "]" * 300)), "weights[0] is not a numeric matrix"),
    "sizes a string": (_book(sizes="2 1"), "bad sizes: expected a list of at least two layer sizes"),
    "sizes bools": (_book(sizes=[True, 1]), "bad sizes: sizes[0] must be a positive integer, got True"),
    "huge numbers": (_book(weights=[[[1e400, 0]]]), "weights[0] holds values that are not finite"),
}


@pytest.mark.parametrize("case", list(BOOK_CASES))
def test_malformed_book_json(tmp_path, case):
    text, message = BOOK_CASES[case]
    path = tmp_path / "model.json"
    path.write_text(text)
    with pytest.raises(ModelFileError) as e:
        nndl.load(path)
    assert str(e.value).startswith(f"{path}: ") and message in str(e.value)


def test_not_regular_files():
    with pytest.raises(ModelFileError, match="^/dev/zero is not a regular file"):
        nndl.load("/dev/zero")
    with pytest.raises(ModelFileError, match="is a folder, not a model file"):
        nndl.load(Path(__file__).parent)


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "model.npz"
    os.mkfifo(fifo)
    with pytest.raises(ModelFileError, match="is not a regular file"):
        nndl.load(fifo)


def _refused(path, match):
    with pytest.raises(ModelFileError, match=match):
        nndl.load(path)




def test_an_array_header_declaring_a_huge_shape(tmp_path, good):
    arrays, config = good
    members = {f"{k}.npy": _npy_bytes(v) for k, v in arrays.items() if k != "layer0/w"}
    members["layer0/w.npy"] = _header((10**6, 10**6))           # 8 TB declared, nothing stored
    path = _forged(tmp_path / "model.npz", config, members)
    with pytest.raises(ModelFileError) as e:
        nndl.load(path)
    assert str(e.value) == (f"{path}: corrupt .npz archive: array 'layer0/w.npy' declares shape "
                            "(1000000, 1000000) (8.0 TB) but holds 128 B")


def test_a_small_file_that_would_inflate_to_hundreds_of_mb(tmp_path, good):
    """A 200 MB array of zeros deflates to 200 kB; its header is consistent,
    but the description needs a 5x6 matrix: refused before inflating."""
    arrays, config = good
    path = tmp_path / "model.npz"
    n = 25 * MB // 1                                           # float64: 200 MB
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.json.npy", _npy_bytes(np.frombuffer(json.dumps(config).encode(), np.uint8)))
        for k, v in arrays.items():
            if k != "layer0/w":
                z.writestr(f"{k}.npy", _npy_bytes(v))
        with z.open("layer0/w.npy", "w", force_zip64=True) as f:
            f.write(_header((n,)))
            zeros = bytes(8 * MB)
            for _ in range(n * 8 // len(zeros)):
                f.write(zeros)
    assert path.stat().st_size < 1 * MB
    t0 = time.perf_counter()
    peak = peak_mb(lambda: _refused(path, r"layer 0 parameter 'w': expected shape \(5, 6\), got \(26214400,\)"))
    assert time.perf_counter() - t0 < 2.0                      # inflating 200 MB alone takes longer
    assert peak < 10


def test_a_535_byte_npz_claiming_a_huge_layer_builds_nothing(tmp_path, good):
    """The description asks for 784 -> 20,000 -> 10 (float64: 126 MB of
    weights, 250 MB with gradients); the archive holds no weights."""
    _, config = good
    config = {**config, "input_shape": [784],
              "layers": [{"type": "Dense", "n_out": 20_000, "activation": "sigmoid", "init": "default"},
                         {"type": "Dense", "n_out": 10, "activation": "sigmoid", "init": "default"}]}
    path = tmp_path / "model.npz"
    np.savez(path, **{"config.json": np.frombuffer(json.dumps(config).encode(), np.uint8)})
    assert path.stat().st_size < 700
    assert peak_mb(lambda: _refused(path, r"layer 0 parameters \['w', 'b'\] are missing")) < 5


def test_a_description_beyond_memory_is_refused_with_the_figures(tmp_path, good, monkeypatch):
    arrays, config = good
    path = _npz(tmp_path / "model.npz", arrays, config)
    monkeypatch.setattr(nndl.memory, "available_memory", lambda: 1000)
    # 53 float64 parameters and their gradients: 2 * 8 * 53 = 848 B, plus two float64
    # draws of the largest array (5x6): 16 * 30 = 480 B; the stored arrays: four
    # 128-byte .npy headers and 8 * 53 = 424 B of data = 936 B. In all 2,264 B.
    with pytest.raises(ModelFileError, match=r"loading this network \(53 parameters\) needs about 2.3 kB "
                                             r"of memory, but only 1.0 kB is available"):
        nndl.load(path)


def test_good_files_still_load(tmp_path):
    from nndl.architecture import parse_layers
    conv = Network(parse_layers("conv:3:5,pool:2,dense:7,dropout:0.5,softmax:10", activation="relu"),
                   "log-likelihood", rng=3, dtype="float32")
    x = np.random.default_rng(0).random((4, 784)).astype(np.float32)
    for name, net in (("c.npz", conv), ("d.json", Network.from_sizes([784, 5, 10], rng=2))):
        back = nndl.load(nndl.save(net, tmp_path / name))
        assert np.allclose(back.feedforward(x), net.feedforward(x), atol=1e-6)


@pytest.mark.parametrize("content, fragment", [
    (_book(cost=["QuadraticCost"]), "unknown cost ['QuadraticCost']"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
])
def test_evaluate_gives_one_line(tmp_path, capsys, content, fragment):
    path = tmp_path / "model.json"
    path.write_text(content)
    code = cli.main(["evaluate", str(path)])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"nndl: error: {path}: ") and fragment in err


def test_evaluate_dev_zero_gives_one_line(capsys):
    assert cli.main(["evaluate", "/dev/zero"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err == "nndl: error: /dev/zero is not a regular file (a device or a pipe?), not a model file\n"
