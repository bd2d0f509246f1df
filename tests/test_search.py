"""nndl search: the space on the command line, Optuna storage that resumes,
the best configuration as an nndl train command, and trials on a real Dask
cluster, one of whose workers dies."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("optuna")
pytest.importorskip("distributed")

from nndl import cli  # noqa: E402
from nndl.config import RunConfig  # noqa: E402
from nndl.errors import ConfigError  # noqa: E402
from nndl.parallel import search as S  # noqa: E402

from dask_cluster import DaskCluster  # noqa: E402
from helpers import MNIST_DIR, needs_mnist  # noqa: E402

#: a tiny search: a second or two a trial
TINY = ["--sizes", "784", "20", "10", "--cost", "cross-entropy", "--init", "default", "--train-size", "1000",
        "--validation-size", "1000", "--test-size", "1000", "--epochs", "2", "--data-dir", str(MNIST_DIR),
        "--param", "eta=log:0.05:5", "--param", "lmbda=log:0.01:10", "--no-progress"]


def search_cli(capsys, *argv):
    code = cli.main(["search", *TINY, *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def trial_lines(out: str) -> dict[int, str]:
    return {int(m.group(1)): m.group(0) for m in re.finditer(r"^trial (\d+): .*$", out, re.M)}


def finished(out_dir, name=None):
    import optuna

    storage = S.open_storage(S.parse_storage(None, out_dir))
    name = name or optuna.get_all_study_names(storage)[0]
    return S.finished_trials(optuna.load_study(study_name=name, storage=storage))


# -- the space ---------------------------------------------------------------------------
def test_params_parse_into_optuna_distributions():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    space = S.Space.parse(["eta=log:0.01:10", "lambda=float:0:5", "hidden=int:10:200", "batch-size=choice:10,20,50",
                           "activation=choice:sigmoid,relu"])
    d = space.distributions()
    assert d["eta"] == FloatDistribution(0.01, 10.0, log=True)
    assert d["lmbda"] == FloatDistribution(0.0, 5.0)                    # the book's spelling
    assert d["hidden"] == IntDistribution(10, 200)
    assert d["batch_size"] == CategoricalDistribution((10, 20, 50))
    assert d["activation"] == CategoricalDistribution(("sigmoid", "relu"))
    base = RunConfig(sizes=(784, 30, 30, 10))
    c = space.config(base, {"eta": 0.5, "lmbda": 1.0, "hidden": 64, "batch_size": 20, "activation": "relu"})
    assert (c.sizes, c.eta, c.lmbda, c.batch_size, c.activation) == ((784, 64, 64, 10), 0.5, 1.0, 20, "relu")


def test_a_space_file_holds_params_one_per_line(tmp_path):
    f = tmp_path / "space.txt"
    f.write_text("# the book's two\neta=log:0.01:10   # learning rate\n\nlmbda=log:0.01:10\n")
    assert S.read_space_file(f) == ["eta=log:0.01:10", "lmbda=log:0.01:10"]
    with pytest.raises(ConfigError, match="--param lmbda is given twice"):
        S.Space.parse(S.read_space_file(f) + ["lambda=float:0:1"])
    with pytest.raises(ConfigError, match="--space .*missing.txt: cannot read it"):
        S.read_space_file(tmp_path / "missing.txt")


@pytest.mark.parametrize("spec, why", [
    ("eta", "no NAME=SPEC"),
    ("eta=log:0.01", "log needs LOW:HIGH"),
    ("eta=log:0.01:ten", "LOW and HIGH must be numbers"),
    ("eta=log:0:10", "a log scale needs LOW > 0"),
    ("eta=log:10:0.01", "LOW must be less than HIGH"),
    ("eta=uniform:0:1", "unknown kind 'uniform'"),
    ("seed=int:0:10", "cannot search 'seed'"),
    ("eta=int:1:10", "eta is a real number"),
    ("hidden=float:1.5:10", "hidden is an integer"),
    ("cost=float:0:1", "cost takes names"),
])
def test_a_malformed_param_says_which_and_shows_the_syntax(spec, why, tmp_path, capsys):
    code = cli.main(["search", "--param", spec, "--trials", "1", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == cli.EXIT_ERROR and err.count("\n") == 1
    assert err.startswith(f"nndl: error: --param {spec!r}: {why}")
    assert "expected NAME=KIND:LOW:HIGH" in err and "eta=log:0.01:10" in err
    assert not any(tmp_path.iterdir())


def test_a_range_the_run_refuses_is_caught_before_training(tmp_path, capsys):
    code = cli.main(["search", "--param", "momentum=float:0:1.5", "--trials", "1", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == cli.EXIT_ERROR and "--param momentum=float:0:1.5: momentum must be in [0, 1), got 1.5" in err
    with pytest.raises(ConfigError, match="hidden sets the hidden layers"):
        S.Space.parse(["hidden=int:10:20"]).check(RunConfig(layers="dense:30,softmax:10"))


@pytest.mark.parametrize("storage", ["redis://localhost:6379", "ftp://host/study", "s3://bucket/study.db"])
def test_an_unknown_storage_scheme_is_refused_before_any_training(storage, tmp_path, capsys):
    t0 = time.monotonic()
    code = cli.main(["search", *TINY, "--trials", "2", "--storage", storage, "--out", str(tmp_path / "out"),
                     "--data-dir", str(tmp_path / "no-mnist-here")])
    out, err = capsys.readouterr()
    assert code == cli.EXIT_ERROR and time.monotonic() - t0 < 5
    assert err.startswith(f"nndl: error: --storage {storage!r}: unknown storage URL scheme")
    assert "sqlite://" in err and "trial" not in out
    assert not (tmp_path / "out").exists()


def test_no_budget_is_refused(tmp_path, capsys):
    code, _, err = search_cli(capsys, "--out", tmp_path)
    assert code == cli.EXIT_ERROR and "--trials N" in err and "--timeout SECONDS" in err


@pytest.mark.parametrize("config", [
    RunConfig(),
    RunConfig(sizes=(784, 30, 10), cost="cross-entropy", init="default", eta=0.1234567891234, lmbda=5.0,
              epochs=5, train_size=10000, monitor=["validation", "test:accuracy,cost"], seed=3),
    RunConfig(layers="conv:20:5,pool:2,dense:100,softmax:10", activation="relu", fast=False, expand=True,
              record_gradients=0, monitor="none", dtype="float64", momentum=0.9, batch_size=20),
    RunConfig(augment=True, max_shift=1, early_stopping=3, monitor=["validation"], record_gradients=50),
])
def test_a_config_written_as_a_train_command_reads_back_equal(config):
    argv = cli.config_to_argv(config)
    args = cli.build_parser().parse_args(["train", *argv])
    assert cli.config_from_args(args) == config


# -- searching -----------------------------------------------------------------------------
@needs_mnist
def test_a_search_prints_the_best_as_a_train_command_that_reproduces_it(tmp_path, capsys):
    code, out, err = search_cli(capsys, "--trials", "4", "--out", tmp_path)
    assert code == 0, err
    assert len(trial_lines(out)) == 4
    best = json.loads((tmp_path / "best.json").read_text())
    m = re.search(r"^Best: trial (\d+), validation accuracy ([\d.]+)%", out, re.M)
    assert int(m.group(1)) == best["trial"] and abs(float(m.group(2)) - 100 * best["validation_accuracy"]) < 0.006
    # the printed command line is the best trial's configuration, on validation and test data
    command = re.search(r"^  (nndl train .*)$", out, re.M).group(1)
    import shlex
    args = cli.build_parser().parse_args(shlex.split(command)[1:])
    config = cli.config_from_args(args)
    assert config == RunConfig.from_dict(best["config"])
    assert (config.eta, config.lmbda) == (best["params"]["eta"], best["params"]["lmbda"])
    assert config.monitor == (("validation", ("accuracy",)), ("test", ("accuracy",)))
    # retrained once with the same seed: the same validation accuracy as its trial, and a test accuracy
    m = re.search(r"^Retrained once: test accuracy ([\d.]+)% \(validation accuracy ([\d.]+)%\)", out, re.M)
    assert float(m.group(2)) == pytest.approx(100 * best["validation_accuracy"], abs=0.006)
    assert float(m.group(1)) == pytest.approx(100 * best["test_accuracy"], abs=0.006)
    for stem in ("optimization_history", "param_importances", "slice"):
        png = (tmp_path / f"{stem}.png").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 5000
    # the same command again: the study already holds 4 finished trials, so none runs
    code, out, _ = search_cli(capsys, "--trials", "4", "--out", tmp_path)
    assert code == 0 and "resuming, 4 finished trial(s) already" in out and not trial_lines(out)
    assert len(finished(tmp_path)) == 4


@needs_mnist
def test_a_time_budget_starts_no_trial_after_it(tmp_path, capsys):
    t0 = time.monotonic()
    code, out, err = search_cli(capsys, "--timeout", "2", "--trials", "1000", "--out", tmp_path)
    assert code == 0, err
    assert 1 <= len(trial_lines(out)) < 1000 and time.monotonic() - t0 < 60


@needs_mnist
def test_ctrl_c_then_the_same_command_resumes_without_repeating_finished_trials(tmp_path):
    argv = [sys.executable, "-c", "import sys; from nndl.cli import main; sys.exit(main())", "search", *TINY,
            "--sizes", "784", "100", "10", "--train-size", "20000", "--epochs", "3", "--trials", "6", "--no-prune",
            "--out", str(tmp_path)]   # trials of half a second or more: Ctrl-C lands before the sixth
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    seen = []
    deadline = time.monotonic() + 120
    while len(seen) < 2 and time.monotonic() < deadline:   # let two trials finish, then Ctrl-C
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("trial "):
            seen.append(line)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == cli.EXIT_INTERRUPTED, err
    assert "run the same command again to resume" in err
    first = {t.number: t.params for t in finished(tmp_path)}
    assert 2 <= len(first) < 6

    again = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"resuming, {len(first)} finished trial(s) already" in again.stdout
    ran = trial_lines(again.stdout)
    assert len(ran) == 6 - len(first) and not set(ran) & set(first)   # none of the finished ones again
    trials = finished(tmp_path)
    assert len(trials) == 6
    params = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(params)) == 6



@needs_mnist
def test_a_killed_search_loses_only_its_running_trial_which_runs_first_next_time(tmp_path):
    import optuna
    from optuna.trial import TrialState

    argv = [sys.executable, "-c", "import sys; from nndl.cli import main; sys.exit(main())", "search", *TINY,
            "--sizes", "784", "100", "10", "--train-size", "20000", "--epochs", "3", "--trials", "4", "--no-prune",
            "--out", str(tmp_path)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:   # the first trial finishes; the second is running
        line = proc.stdout.readline()
        if not line or line.startswith("trial "):
            break
    time.sleep(0.3)
    proc.kill()                           # SIGKILL: no clean-up runs
    proc.communicate(timeout=60)
    storage = S.open_storage(S.parse_storage(None, tmp_path))
    study = optuna.load_study(study_name=optuna.get_all_study_names(storage)[0], storage=storage)
    orphans = study.get_trials(states=(TrialState.RUNNING,))
    assert len(orphans) == 1 and orphans[0].user_attrs[S.OWNER]["pid"] == proc.pid
    finished_before = {t.number for t in S.finished_trials(study)}
    assert finished_before

    again = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr
    assert (f"Trial(s) {orphans[0].number} were left running by a search that was killed: marked failed, "
            "and their parameters run again first") in again.stdout
    ran = trial_lines(again.stdout)
    first = min(ran)
    assert first > orphans[0].number and f"eta={orphans[0].params['eta']:.4g}" in ran[first]
    study = optuna.load_study(study_name=study.study_name, storage=storage)
    assert not study.get_trials(states=(TrialState.RUNNING,))
    assert study.trials[orphans[0].number].state == TrialState.FAIL
    assert len(S.finished_trials(study)) == 4 and finished_before <= {t.number for t in S.finished_trials(study)}


@needs_mnist
def test_two_processes_share_one_study(tmp_path):
    """Two machines, simulated: two nndl search processes on one storage (a journal file on a shared
    disk), each with its own sampler seed, fill one study of 6 trials between them."""
    journal = tmp_path / "shared" / "study.journal"
    argv = [sys.executable, "-c", "import sys; from nndl.cli import main; sys.exit(main())", "search", *TINY,
            "--trials", "6", "--storage", str(journal), "--study", "shared"]
    procs = [subprocess.Popen(argv + ["--sampler-seed", str(k), "--out", str(tmp_path / f"m{k}")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in (1, 2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    ran = [trial_lines(out) for out, _ in outs]
    assert not set(ran[0]) & set(ran[1])                      # each trial ran on one machine
    import optuna
    study = optuna.load_study(study_name="shared", storage=S.open_storage(("journal", str(journal))))
    assert len(S.finished_trials(study)) >= 6 and len(ran[0]) + len(ran[1]) == len(S.finished_trials(study))


@needs_mnist
def test_an_rdb_url_names_the_storage(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    code, out, err = search_cli(capsys, "--trials", "2", "--storage", url, "--out", tmp_path / "out")
    assert code == 0, err
    assert f"in {url}" in out
    import optuna
    assert len(S.finished_trials(optuna.load_study(study_name=optuna.get_all_study_names(url)[0],
                                                   storage=url))) == 2


# -- on a real Dask cluster ----------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST not in {MNIST_DIR}")
    c = DaskCluster(tmp_path_factory.mktemp("dask-logs"))
    yield c
    c.stop()


def test_a_search_on_a_dask_cluster(cluster, tmp_path, capsys):
    code, out, err = search_cli(capsys, "--trials", "4", "--scheduler", cluster.address, "--out", tmp_path)
    assert code == 0, err
    assert f"on the Dask cluster at {cluster.address} (2 workers, 2 threads)" in out
    assert len(trial_lines(out)) == 4 and "0 FAILED" in out
    assert re.search(r"^Best: trial \d+, validation accuracy", out, re.M)
    assert re.search(r"^Retrained once: test accuracy [\d.]+%", out, re.M)
    assert len(finished(tmp_path)) == 4


def test_a_search_survives_a_worker_killed_mid_trial(cluster, tmp_path, capsys):
    killer = cluster.kill_when_busy()
    try:
        code, out, err = search_cli(capsys, "--trials", "4", "--sizes", "784", "100", "10", "--train-size", "20000",
                                    "--epochs", "3", "--no-prune", "--scheduler", cluster.address, "--out", tmp_path)
        killer.join(timeout=5)
        assert killer.killed is not None and killer.killed[1].startswith("nndl-trial-")
        assert code == 0, err
        assert len(trial_lines(out)) == 4 and "4 complete, 0 pruned, 0 FAILED" in out
        assert re.search(r"^Best: trial \d+, validation accuracy", out, re.M)
    finally:
        cluster.restore()
