"""The command line: book-style output, history format, clear errors, Ctrl-C."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nndl import cli

REPO = Path(__file__).resolve().parents[1]
from helpers import MNIST_DIR as MNIST, needs_mnist


def run_cli(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    assert code != 0
    lines = [line for line in err.strip().splitlines() if line]
    assert lines and lines[0].startswith(("nndl: error:", "nndl train: error:", "nndl evaluate: error:"))
    assert "Traceback" not in err
    for frag in fragments:
        assert frag in err, (frag, err)


@needs_mnist
def test_train_prints_book_lines_and_writes_history(tmp_path, capsys):
    hist, model = tmp_path / "h.json", tmp_path / "net.npz"
    code, out, err = run_cli(capsys, "train", "--data-dir", MNIST, "--epochs", "2", "--train-size", "5000",
                             "--monitor", "test", "validation:accuracy,cost", "training:cost",
                             "--history", hist, "--save", model, "--no-progress")
    assert code == 0, err
    epochs = re.findall(r"^Epoch (\d+): (\d+) / 10000$", out, flags=re.M)
    assert [e for e, _ in epochs] == ["0", "1"]
    assert int(epochs[-1][1]) > 6000  # a sanity bound; accuracy is tested in test_engine
    data = json.loads(hist.read_text())
    assert set(data) >= {"test_accuracy", "validation_accuracy", "validation_cost", "training_cost",
                         "epoch_seconds"}
    run = data.pop("run")
    assert all(len(v) == 2 for v in data.values())
    assert all(0 <= a <= 1 for a in data["test_accuracy"])
    # the history says which run produced it
    assert run["config"]["train_size"] == 5000 and run["config"]["epochs"] == 2
    assert run["config"]["monitor"] == {"training": ["cost"], "validation": ["accuracy", "cost"],
                                        "test": ["accuracy"]}
    assert run["numpy"] == np.__version__ and run["epochs_done"] == 2 and run["wall_seconds"] > 0
    assert data["test_accuracy"][-1] == int(epochs[-1][1]) / 10000
    code, out, _ = run_cli(capsys, "evaluate", model, "--data-dir", MNIST)
    assert code == 0 and f"{epochs[-1][1]} / 10000" in out


@needs_mnist
def test_book_json_save_and_evaluate(tmp_path, capsys):
    model = tmp_path / "net.json"
    code, out, _ = run_cli(capsys, "train", "--data-dir", MNIST, "--epochs", "1", "--train-size", "2000",
                           "--save", model, "--no-progress")
    assert code == 0
    book = json.loads(model.read_text())
    assert set(book) == {"sizes", "weights", "biases", "cost"} and book["cost"] == "QuadraticCost"
    assert np.array(book["biases"][0]).shape == (30, 1)
    last = re.findall(r"^Epoch 0: (\d+) / 10000$", out, flags=re.M)[0]
    code, out, _ = run_cli(capsys, "evaluate", model, "--data-dir", MNIST)
    assert code == 0 and f"{last} / 10000" in out


@pytest.mark.parametrize("argv, fragments", [
    (["train", "--activation", "swish"], ["unknown activation 'swish'", "sigmoid, tanh, relu"]),
    (["train", "--cost", "hinge"], ["unknown cost 'hinge'", "quadratic, cross-entropy, log-likelihood"]),
    (["train", "--init", "orthogonal"], ["unknown initializer", "default, large, glorot, he, zeros"]),
    (["train", "--eta", "-1"], ["--eta", "> 0", "-1"]),
    (["train", "--eta", "0"], ["--eta", "> 0"]),
    (["train", "--epochs", "0"], ["--epochs", "positive integer"]),
    (["train", "--batch-size", "ten"], ["--batch-size", "expected an integer", "'ten'"]),
    (["train", "--seed", "-1"], ["--seed", ">= 0"]),
    (["train", "--threads", "0"], ["--threads", "positive integer"]),
    (["train", "--layers", "conv:20:5,pool:2,dense:100,softmax:10", "--sizes", "784", "10"], ["either"]),
    (["train", "--config-from", "/nonexistent/h.json"], ["--config-from", "cannot read"]),
    (["train", "--momentum", "1.5"], ["momentum must be in [0, 1)"]),
    (["train", "--lmbda", "nan"], ["--lmbda"]),
    (["train", "--sizes", "100", "30", "10"], ["does not fit MNIST", "784"]),
    (["train", "--sizes", "784", "30", "3"], ["does not fit MNIST", "10"]),
    (["train", "--cost", "cross-entropy", "--activation", "tanh"], ["cannot follow a tanh output"]),
    (["train", "--monitor", "holdout"], ["unknown split 'holdout'"]),
    (["train", "--early-stopping", "3", "--monitor", "training:cost"], ["--early-stopping"]),
    (["train", "--dtype", "float16"], ["float16"]),
])
def test_bad_options_give_one_clear_line(capsys, argv, fragments):
    try:
        code = cli.main(argv)
    except SystemExit as e:  # argparse exits on its own errors
        code = e.code
    _, err = capsys.readouterr()
    assert_one_line_error(code, err, *fragments)


def test_missing_data_files_are_named(tmp_path, capsys, monkeypatch):
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    # no network in tests: make every download fail fast
    import nndl.data.download as dl
    monkeypatch.setattr(dl, "MIRRORS", ["http://127.0.0.1:9/"])
    code, _, err = run_cli(capsys, "train", "--data-dir", empty, "--epochs", "1", "--no-progress")
    notice, err = err.split("\n", 1)       # the download notice comes first, at once
    assert notice == "nndl: downloading train-images-idx3-ubyte.gz from http://127.0.0.1:9/"
    assert_one_line_error(code, err, "train-images-idx3-ubyte", str(empty))


@needs_mnist
def test_corrupt_data_file_is_named(tmp_path, capsys):
    for f in MNIST.glob("*.gz"):
        shutil.copy(f, tmp_path / f.name)
    raw = gzip.decompress((MNIST / "t10k-labels-idx1-ubyte.gz").read_bytes())
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(raw[:-100]))
    code, _, err = run_cli(capsys, "train", "--data-dir", tmp_path, "--epochs", "1", "--no-progress")
    assert_one_line_error(code, err, "t10k-labels-idx1-ubyte", "truncated")


@pytest.mark.parametrize("content, fragment", [
    (b"\x00\x01garbage", "not a JSON model file"),
    (b'{"sizes": [784, 10]}', "lacks weights, biases, cost"),
    (b'{"sizes": [784, 10], "weights": [[[1.0]]], "biases": [[[0.0]]], "cost": "QuadraticCost"}',
     "weights[0] has shape (1, 1), but sizes [784, 10] need (10, 784)"),
    (b"PK\x03\x04truncated zip", "corrupt .npz"),
])
def test_malformed_model_file(tmp_path, capsys, content, fragment):
    bad = tmp_path / "model.bin"
    bad.write_bytes(content)
    code, _, err = run_cli(capsys, "evaluate", bad, "--data-dir", MNIST)
    assert_one_line_error(code, err, str(bad), fragment)


def test_missing_model_file(tmp_path, capsys):
    code, _, err = run_cli(capsys, "evaluate", tmp_path / "nope.npz")
    assert_one_line_error(code, err, "does not exist")


@needs_mnist
def test_unwritable_save_path_fails_cleanly(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run_cli(capsys, "train", "--data-dir", MNIST, "--epochs", "1", "--train-size", "500",
                           "--save", blocker / "net.npz", "--no-progress")
    assert_one_line_error(code, err)


@needs_mnist
def test_ctrl_c_saves_completed_epochs_and_exits_130(tmp_path):
    hist, model = tmp_path / "h.json", tmp_path / "net.npz"
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nndl.cli", "train", "--data-dir", str(MNIST), "--epochs", "10000",
         "--train-size", "20000", "--no-fast", "--history", str(hist), "--save", str(model), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("Epoch 1:"):
            proc.send_signal(signal.SIGINT)
            break
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    data = json.loads(hist.read_text())
    n = len(data["epoch_seconds"])
    # the signal lands somewhere around the end of epoch 1: epochs 0..n-1 were recorded
    assert n >= 1 and len(data["test_accuracy"]) == n
    printed = "".join(seen) + out
    lines = re.findall(r"^Epoch (\d+): (\d+) / 10000$", printed, flags=re.M)
    assert int(lines[n - 1][0]) == n - 1
    assert data["test_accuracy"][-1] == int(lines[n - 1][1]) / 10000
    # the saved network is the one of the last recorded epoch
    from nndl import load
    from nndl.data import load_mnist
    test = load_mnist(MNIST).test
    assert load(model).accuracy(test.x, test.y) == int(lines[n - 1][1])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary files left behind"


@needs_mnist
def test_config_from_a_history_reruns_the_same_numbers(tmp_path, capsys):
    h1, h2, h3 = tmp_path / "h1.json", tmp_path / "h2.json", tmp_path / "h3.json"
    code, out1, err = run_cli(capsys, "train", "--data-dir", MNIST, "--epochs", "2", "--train-size", "3000",
                              "--cost", "cross-entropy", "--init", "default", "--eta", "0.5", "--lmbda", "1",
                              "--seed", "7", "--monitor", "test", "training:cost", "--history", h1, "--no-progress")
    assert code == 0, err
    assert "init default" in out1.splitlines()[0]
    code, out2, err = run_cli(capsys, "train", "--data-dir", MNIST, "--config-from", h1, "--history", h2,
                              "--no-progress")
    assert code == 0, err
    a, b = json.loads(h1.read_text()), json.loads(h2.read_text())
    assert a["test_accuracy"] == b["test_accuracy"] and a["training_cost"] == b["training_cost"]
    assert a["run"]["config"] == b["run"]["config"]
    # options given on the command line override the stored configuration
    code, _, err = run_cli(capsys, "train", "--data-dir", MNIST, "--config-from", h1, "--epochs", "1",
                           "--history", h3, "--no-progress")
    h = json.loads(h3.read_text())
    assert code == 0 and h["run"]["config"]["epochs"] == 1 and h["run"]["config"]["seed"] == 7
    assert h["test_accuracy"] == a["test_accuracy"][:1]
    foreign = tmp_path / "foreign.json"
    foreign.write_text('{"test_accuracy": [0.5]}')
    code, _, err = run_cli(capsys, "train", "--config-from", foreign)
    assert_one_line_error(code, err, "holds no run configuration")


@needs_mnist
def test_init_large_trains_a_conv_network(tmp_path, capsys):
    # one initialiser registry for every layer type: conv layers take --init
    # too (every name with every layer: tests/test_initializers.py)
    model = tmp_path / "net.npz"
    code, out, err = run_cli(capsys, "train", "--data-dir", MNIST, "--init", "large", "--layers",
                             "conv:20:5,pool:2,dense:100,softmax:10", "--epochs", "1", "--train-size", "200",
                             "--eta", "0.1", "--save", model, "--no-progress")
    assert code == 0, err
    assert "init large" in out.splitlines()[0]
    assert re.search(r"^Epoch 0: \d+ / 10000$", out, flags=re.M)
    from nndl import load
    assert {layer.init.name for layer in load(model).layers if layer.params} == {"large"}
