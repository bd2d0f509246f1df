"""``nndl train`` when things go wrong, with real processes on small MNIST
subsets: killed with SIGKILL and resumed (the same weights and history, bit
for bit, as a run never stopped), SIGTERM / SIGHUP / Ctrl-C, divergence,
output paths refused before training, output closed early, two trainings
writing the same files, and broken checkpoints. Each asserts the one line
printed, the exit code, and that no file that was there before changed."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile  # noqa: F401  (imported before dropping privileges, see _as_nobody)
import time
from pathlib import Path

import numpy as np
import pytest

import nndl.checkpoint as ckpt
import nndl.config  # noqa: F401
import nndl.io  # noqa: F401
from nndl import cli

from helpers import MNIST_DIR as MNIST, as_nobody, needs_mnist

pytestmark = needs_mnist
REPO = Path(__file__).resolve().parents[1]


def _cmd(*argv) -> list[str]:
    return [sys.executable, "-m", "nndl.cli", *map(str, argv)]


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO / "src"), PYTHONUNBUFFERED="1")


def run_cli(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    """The only line on stderr, which must be nndl's error line."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("nndl: error: "), err
    assert "Traceback" not in err
    return lines[0]


def _listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"<dir>")
            for p in sorted(folder.rglob("*"))}


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files if k != "config.json"}


def _per_epoch(path: Path) -> dict:
    data = json.loads(path.read_text())
    data.pop("epoch_seconds")
    return {k: v for k, v in data.items() if k != "run"}


# -- SIGKILL after epoch 2 is checkpointed, then --resume: bit for bit ------------------------
KILL_CASES = {
    # compiled kernel; the eta schedule, evaluation of cost and accuracy, the best epoch for --save
    "kernel": (["--dtype", "float64", "--train-size", "3000", "--monitor", "validation:accuracy,cost", "test",
                "--validation-size", "1000", "--test-size", "1000", "--schedule", "1", "--save-best"], 3),
    # NumPy path with momentum, L2 and gradient records
    "numpy-momentum": (["--no-fast", "--dtype", "float64", "--momentum", "0.5", "--eta", "0.5", "--cost",
                        "cross-entropy", "--lmbda", "1", "--train-size", "2000", "--test-size", "1000",
                        "--record-gradients", "50"], 1),
    # a conv network with dropout (its own generator), augmentation on the fly, early stopping
    "conv": (["--layers", "conv:4:5,pool:2,dropout:0.2,dense:20,softmax:10", "--activation", "relu", "--eta",
              "0.03", "--augment", "--dtype", "float64", "--train-size", "1000", "--monitor", "validation", "test",
              "--validation-size", "500", "--test-size", "500", "--early-stopping", "3"], 2),
}


def _run_until_blocked(argv, lines_before_block: int) -> tuple[subprocess.Popen, list[str]]:
    """Start ``nndl`` with stdout on a pipe; after ``lines_before_block`` lines,
    fill the pipe so that the process blocks at its next line of output."""
    r, w = os.pipe()
    proc = subprocess.Popen(_cmd(*argv), stdout=w, stderr=subprocess.PIPE, env=_env())
    reader = os.fdopen(r, "r")
    seen = [reader.readline() for _ in range(lines_before_block)]
    # A second, non-blocking opening of the pipe (the child's stays blocking).
    filler = os.open(f"/proc/self/fd/{w}", os.O_WRONLY | os.O_NONBLOCK)
    try:
        while True:
            os.write(filler, b"." * 65536)
    except BlockingIOError:
        pass
    os.close(filler)
    proc._test_fds = (reader, w)   # closed by the caller
    return proc, seen


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux's /proc/self/fd to fill a pipe")
@pytest.mark.parametrize("case", list(KILL_CASES))
def test_sigkill_after_epoch_2_then_resume_equals_the_uninterrupted_run(case, tmp_path, capsys):
    options, block = KILL_CASES[case]
    common = ["train", "--data-dir", MNIST, "--epochs", "4", "--no-progress", *options]
    ref_model, ref_hist = tmp_path / "ref.npz", tmp_path / "ref.json"
    code, _, err = run_cli(capsys, *common, "--save", ref_model, "--history", ref_hist)
    assert code == 0, err

    model, hist, folder = tmp_path / "net.npz", tmp_path / "h.json", tmp_path / "ck"
    # the header, then two epochs of `block` lines each: the process is then
    # checkpointing epoch 2 and training epoch 3, and blocks at epoch 3's first line
    proc, seen = _run_until_blocked([*common, "--save", model, "--history", hist, "--checkpoint", folder],
                                    1 + 2 * block)
    try:
        assert seen[0].startswith("Training ") and seen[1 + block].startswith("Epoch 1:"), seen
        deadline = time.monotonic() + 120
        while not (ckpt.exists(folder) and ckpt.read(folder).epoch == 2):
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
            time.sleep(0.02)
        time.sleep(0.2)
        assert proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        proc.kill()
        reader, w = proc._test_fds
        reader.close()
        os.close(w)
    assert ckpt.read(folder).epoch == 2 and not model.exists() and not hist.exists()

    code, out, err = run_cli(capsys, "train", "--data-dir", MNIST, "--resume", folder, "--no-progress")
    assert code == 0, err
    assert out.startswith("Resuming ") and f"from {folder} after epoch 1;" in out.splitlines()[0]
    assert re.findall(r"^Epoch (\d+):", out, flags=re.M) == ["2", "3"]
    a, b = _arrays(ref_model), _arrays(model)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype == np.float64 and np.array_equal(a[k], b[k]), k
    assert _per_epoch(ref_hist) == _per_epoch(hist)
    resumed = json.loads(hist.read_text())["run"]
    assert resumed["config"] == json.loads(ref_hist.read_text())["run"]["config"]
    assert resumed["resumed"][0]["epoch"] == 2 and resumed["epochs_done"] == 4


# -- signals ----------------------------------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_end_the_run_like_ctrl_c(sig, tmp_path):
    model, hist, folder = tmp_path / "net.npz", tmp_path / "h.json", tmp_path / "ck"
    proc = subprocess.Popen(_cmd("train", "--data-dir", MNIST, "--epochs", "1000", "--train-size", "3000",
                                 "--test-size", "1000", "--no-progress", "--save", model, "--history", hist,
                                 "--checkpoint", folder),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    for line in proc.stdout:
        if line.startswith("Epoch 1:"):
            proc.send_signal(sig)
            break
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    # (a cold numba cache adds the compile notice before the epochs)
    lines = [line for line in err.splitlines() if line.strip() and line != "compiling kernels (first run only)..."]
    n = len(json.loads(hist.read_text())["epoch_seconds"])
    assert lines == [f"Interrupted ({signal.Signals(sig).name}): keeping the {n} completed epoch(s)."]
    assert n >= 2 and ckpt.read(folder).epoch == n
    # the saved network is the one the history's last epoch measured
    correct = round(json.loads(hist.read_text())["test_accuracy"][-1] * 1000)
    from nndl.data import load_mnist
    test = load_mnist(MNIST).test[:1000]
    assert nndl.io.load(model).accuracy(test.x, test.y) == correct
    assert f"continue with nndl train --resume {folder}" in out


def test_ctrl_c_before_the_first_epoch_ends_writes_nothing(tmp_path):
    model, hist, folder = tmp_path / "net.npz", tmp_path / "h.json", tmp_path / "ck"
    model.write_bytes(b"a good model")
    hist.write_text("a good history")
    before = _listing(tmp_path)
    # a conv network on 50,000 images: its first epoch takes far longer than the wait
    proc = subprocess.Popen(_cmd("train", "--data-dir", MNIST, "--layers", "conv:8:5,pool:2,softmax:10",
                                 "--epochs", "2", "--no-progress", "--save", model, "--history", hist,
                                 "--checkpoint", folder),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    assert proc.stdout.readline().startswith("Training ")
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == [f"Interrupted (SIGINT) before an epoch was completed: nothing written (--save {model} and "
                     f"--history {hist} left as they were)."]
    assert "Epoch 0" not in out
    after = _listing(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("ck")} == before
    assert not ckpt.exists(folder)


# -- divergence -------------------------------------------------------------------------------
def test_a_diverging_run_exits_3_naming_the_epoch_and_keeps_files_valid(tmp_path, capsys):
    model, hist = tmp_path / "net.npz", tmp_path / "h.json"
    model.write_bytes(b"a good model")
    code, out, err = run_cli(capsys, "train", "--data-dir", MNIST, "--eta", "1e6", "--activation", "relu",
                             "--cost", "log-likelihood", "--epochs", "3", "--no-progress",
                             "--save", model, "--history", hist)
    assert code == cli.EXIT_DIVERGED == 3
    line = one_error_line(err)
    assert re.fullmatch(r"nndl: error: the run diverged in epoch 0: the weights of layer 0 reached [0-9.e+]+ in "
                        r"magnitude \(the guard's limit is 10000\); the learning rate \(eta 1e\+06\) is probably "
                        r"too large: try a smaller one", line), line

    def no_bare_nan(token):
        raise AssertionError(f"{token} in the history: not JSON")

    data = json.loads(hist.read_text(), parse_constant=no_bare_nan)
    assert data["epoch_seconds"] == [] and data["run"]["stop_reason"] == line[len("nndl: error: "):]
    assert model.read_bytes() == b"a good model"   # no epoch complete: nothing to save over it
    assert f"Network not saved to {model}: the run diverged before completing an epoch." in out


# -- output paths, refused before anything is read or trained ------------------------------------
def _paths(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder.npz").mkdir()
    (tmp_path / "net.npz").write_bytes(b"a good model")
    (tmp_path / "h.json").write_text("a good history")
    (tmp_path / "ck").mkdir()
    ckpt_args = ["train", "--epochs", "1", "--train-size", "500", "--checkpoint", tmp_path / "ck", "--no-progress"]
    return ckpt_args


OUTPUT_CASES = {
    "save in a missing folder": (
        ["--save", "{t}/nope/net.npz"], "--save: cannot write {t}/nope/net.npz: the folder {t}/nope does not exist"),
    "save to a folder": (
        ["--save", "{t}/folder"], "--save {t}/folder: no extension is not a known extension; use .npz or .json"),
    "save to a folder.npz": (
        ["--save", "{t}/folder.npz"], "--save: cannot write {t}/folder.npz: it is a folder; give a file name"),
    "save with another extension": (
        ["--save", "{t}/net.pkl"], "--save {t}/net.pkl: '.pkl' is not a known extension; use .npz or .json"),
    "book format for relu": (
        ["--activation", "relu", "--save", "{t}/net.json"],
        "--save {t}/net.json: the book's format stores only sigmoid Dense layers; save in the nndl format (.npz)"),
    "book format for log-likelihood": (
        ["--cost", "log-likelihood", "--save", "{t}/net.json"],
        "--save {t}/net.json: the book's format stores quadratic or cross-entropy networks, not log-likelihood; "
        "save in the nndl format (.npz)"),
    "history to a folder": (
        ["--history", "{t}/folder"], "--history: cannot write {t}/folder: it is a folder; give a file name"),
    "history in a missing folder": (
        ["--history", "{t}/nope/h.json"],
        "--history: cannot write {t}/nope/h.json: the folder {t}/nope does not exist"),
    "save and history the same": (
        ["--save", "{t}/net.npz", "--history", "{t}/net.npz"],
        "--save and --history both name {t}/net.npz; give two files"),
    "checkpoint under a missing folder": (
        ["--checkpoint", "{t}/nope/ck"], "--checkpoint {t}/nope/ck: the folder {t}/nope does not exist"),
    "checkpoint is a file": (
        ["--checkpoint", "{t}/net.npz"], "--checkpoint {t}/net.npz: it is a file; give a folder"),
    "save-best without save": (
        ["--save-best"], "--save-best chooses which epoch's network --save writes; give --save too"),
    "save-best of a metric not evaluated": (
        ["--save", "{t}/net.npz", "--save-best", "validation_cost"],
        "cannot choose the best epoch by 'validation_cost': it is not evaluated; evaluated: test_accuracy "
        "(see monitor)"),
}


@pytest.mark.parametrize("case", list(OUTPUT_CASES))
def test_bad_output_paths_are_refused_before_training(case, tmp_path, capsys):
    _paths(tmp_path)
    options, message = OUTPUT_CASES[case]
    before = _listing(tmp_path)
    # a data folder that does not exist: had the data been read first, the error would say so
    code, out, err = run_cli(capsys, "train", "--data-dir", tmp_path / "no-data", "--epochs", "1",
                             *[o.format(t=tmp_path) if isinstance(o, str) else o for o in options])
    assert code == 1 and out == ""
    assert one_error_line(err) == "nndl: error: " + message.format(t=tmp_path)
    assert _listing(tmp_path) == before


def _as_nobody(argv) -> tuple[int, str]:
    """``nndl`` run by an ordinary user (root ignores folder permissions):
    ``(exit code, stderr)``."""
    def run():
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = io.StringIO(), io.StringIO()
        try:
            return cli.main(argv), sys.stderr.getvalue()
        finally:
            sys.stdout, sys.stderr = saved

    return as_nobody(run)[1]


@pytest.mark.parametrize("option", ["--save", "--history", "--checkpoint"])
def test_a_read_only_folder_is_refused_before_training(option, tmp_path):
    base = Path(tempfile.mkdtemp(dir="/tmp"))
    os.chmod(base, 0o755)
    folder = base / "ro"
    folder.mkdir()
    (folder / "net.npz").write_bytes(b"a good model")
    os.chmod(folder, 0o555)
    try:
        name = {"--save": "net.npz", "--history": "h.json", "--checkpoint": "ck"}[option]
        code, err = _as_nobody(["train", "--data-dir", str(tmp_path / "no-data"), option, str(folder / name)])
        assert code == 1
        target = folder / name / ckpt.FILENAME if option == "--checkpoint" else folder / name
        assert one_error_line(err) == (f"nndl: error: {option}: cannot write {target}: the folder {folder} is not "
                                       "writable (Permission denied)")
        assert sorted(p.name for p in folder.iterdir()) == ["net.npz"]
        assert (folder / "net.npz").read_bytes() == b"a good model"
    finally:
        os.chmod(folder, 0o755)


# -- stdout closed early, and two trainings on the same files -------------------------------------
def test_output_closed_early_does_not_stop_training(tmp_path):
    model, hist = tmp_path / "net.npz", tmp_path / "h.json"
    proc = subprocess.Popen(_cmd("train", "--data-dir", MNIST, "--epochs", "2", "--train-size", "2000",
                                 "--test-size", "1000", "--save", model, "--history", hist),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    first = proc.stdout.readline()     # nndl train ... | head -1
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert first.startswith(b"Training ") and "Broken pipe" not in err and "Traceback" not in err
    assert len(json.loads(hist.read_text())["epoch_seconds"]) == 2 and nndl.io.load(model)


def test_two_trainings_never_leave_a_model_and_a_history_of_different_runs(tmp_path):
    # Outputs are written under a lock on their folder: while another process
    # holds it, a finished training waits, then writes its pair whole.
    model, hist = tmp_path / "net.npz", tmp_path / "h.json"
    with ckpt.Lock(tmp_path, wait=True):
        proc = subprocess.Popen(_cmd("train", "--data-dir", MNIST, "--epochs", "2", "--train-size", "2000",
                                     "--test-size", "1000", "--no-progress", "--save", model, "--history", hist),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
        for line in proc.stdout:
            if line.startswith("Training time:"):
                break
        time.sleep(0.5)
        assert proc.poll() is None and not model.exists() and not hist.exists()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    correct = round(json.loads(hist.read_text())["test_accuracy"][-1] * 1000)
    from nndl.data import load_mnist
    test = load_mnist(MNIST).test[:1000]
    assert nndl.io.load(model).accuracy(test.x, test.y) == correct


# -- resuming: what it refuses ---------------------------------------------------------------------
@pytest.fixture
def checkpointed(tmp_path, capsys):
    """A finished 2-epoch run checkpointed in tmp_path/ck."""
    code, _, err = run_cli(capsys, "train", "--data-dir", MNIST, "--epochs", "2", "--train-size", "500",
                           "--test-size", "500", "--no-progress", "--checkpoint", tmp_path / "ck",
                           "--history", tmp_path / "h.json")
    assert code == 0, err
    return tmp_path / "ck"


RESUME_CASES = {
    "another eta": (["--eta", "0.5"], "--eta 0.5 contradicts the run checkpointed in {ck}, whose eta is 3.0; a "
                                      "resumed run keeps its configuration: only --epochs may change"),
    "other sizes": (["--sizes", "784", "20", "10"], "--sizes 784 20 10 contradicts the run checkpointed in {ck}, "
                                                    "whose sizes is 784 30 10; a resumed run keeps its "
                                                    "configuration: only --epochs may change"),
    "fewer epochs than done": (["--epochs", "1"], "--epochs 1: the run checkpointed in {ck} has already done 2 epochs"),
    "config-from": (["--config-from", "{t}/h.json"], "--config-from and --resume cannot be combined: a resumed run "
                                                     "keeps the configuration it was started with"),
    "save-best added": (["--save", "{t}/net.npz", "--save-best"],
                        "--save-best test_accuracy: the run checkpointed in {ck} did not keep its best epoch; a "
                        "resumed run cannot change that"),
}


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_resume_refuses_options_that_contradict_the_checkpoint(case, checkpointed, capsys):
    t = checkpointed.parent
    options, message = RESUME_CASES[case]
    before = _listing(t)
    code, out, err = run_cli(capsys, "train", "--data-dir", t / "no-data", "--resume", checkpointed,
                             *[o.format(t=t) for o in options])
    assert code == 1 and out == ""
    assert one_error_line(err) == "nndl: error: " + message.format(t=t, ck=checkpointed)
    assert _listing(t) == before


def test_resuming_a_complete_run_trains_nothing_and_says_so(checkpointed, capsys):
    code, out, err = run_cli(capsys, "train", "--data-dir", MNIST, "--resume", checkpointed, "--no-progress")
    assert code == 0, err
    assert f"The run in {checkpointed} is complete (2 epochs); give a larger --epochs to train on." in out
    assert "Epoch " not in out


def test_a_checkpoint_folder_is_never_reused_or_shared(checkpointed, capsys):
    t = checkpointed.parent
    before = _listing(t)
    code, _, err = run_cli(capsys, "train", "--data-dir", t / "no-data", "--checkpoint", checkpointed)
    assert code == 1 and one_error_line(err) == (
        f"nndl: error: --checkpoint {checkpointed} already holds a checkpoint; continue that run with --resume "
        f"{checkpointed}, or choose another folder")
    (t / "busy").mkdir()
    with ckpt.Lock(t / "busy" / ckpt.LOCK_NAME):   # another training is writing there
        code, _, err = run_cli(capsys, "train", "--data-dir", t / "no-data", "--checkpoint", t / "busy")
    assert code == 1 and one_error_line(err) == (f"nndl: error: --checkpoint {t}/busy is in use by another nndl "
                                                 "training; wait for it to end or choose another folder")
    assert {k: v for k, v in _listing(t).items() if not k.startswith("busy")} == before


@pytest.mark.parametrize("damage, message", [
    (lambda ck: (ck / ckpt.FILENAME).write_bytes(b"PK\x03\x04 not really"),
     "nndl: error: {ck}/checkpoint.npz is not a readable checkpoint (corrupt or not an .npz archive: "),
    (lambda ck: (ck / ckpt.FILENAME).unlink(),
     "nndl: error: {ck} holds no checkpoint (checkpoint.npz); nndl train --checkpoint DIR writes one after every "
     "epoch"),
    (lambda ck: nndl.io.save(nndl.io.load(ck / ckpt.FILENAME), ck / ckpt.FILENAME),
     "nndl: error: {ck}/checkpoint.npz is an nndl model file, not a checkpoint (it has no checkpoint.json)"),
], ids=["corrupt", "missing", "a model"])
def test_resuming_a_broken_checkpoint_prints_one_line(damage, message, checkpointed, capsys):
    damage(checkpointed)
    before = _listing(checkpointed.parent)
    code, out, err = run_cli(capsys, "train", "--data-dir", MNIST, "--resume", checkpointed)
    assert code == 1 and out == ""
    assert one_error_line(err).startswith(message.format(ck=checkpointed))
    assert _listing(checkpointed.parent) == before
