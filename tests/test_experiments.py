"""The book's experiments: every one runs in its quick version and shows the
qualitative result the book draws; finished runs are cached; the report and
`nndl plot` work; bad input gets one line."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from nndl import cli, experiments
from nndl.errors import ConfigError

from helpers import MNIST_DIR, needs_mnist

pytestmark = needs_mnist


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("experiments")


@pytest.mark.parametrize("name", experiments.names())
def test_quick_experiment_shows_the_books_result(name, out):
    exp = experiments.get(name)
    res = experiments.run_experiment(exp, out, quick=True, data_dir=MNIST_DIR)
    assert set(res.results.raw) == set(exp.jobs(quick=True))
    assert res.checks, f"{name} checks nothing"
    failed = [f"{c.claim}: {c.detail}" for c in res.checks if not c.passed]
    assert not failed, failed
    summary = json.loads((out / name / "results.json").read_text())
    assert summary["name"] == name and summary["complete"] and summary["quick"]
    for fig in res.figures:
        assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and fig.stat().st_size < 200_000
    for row in res.rows:
        assert row.ours and all(np.isfinite(row.ours))


def test_runs_are_cached_by_configuration(tmp_path):
    exp = experiments.get("weight-initialization")
    first = experiments.run_experiment(exp, tmp_path, quick=True, data_dir=MNIST_DIR)
    assert len(first.trained) == 4 and not first.cached
    again = experiments.run_experiment(exp, tmp_path, quick=True, data_dir=MNIST_DIR)
    assert again.trained == [] and len(again.cached) == 4
    assert again.results.raw == first.results.raw
    # delete one run's file: only that run trains again, to the same numbers
    victim = sorted((tmp_path / exp.name / "runs").glob("hidden=100_init=large*"))[0]
    old = json.loads(victim.read_text())
    victim.unlink()
    third = experiments.run_experiment(exp, tmp_path, quick=True, data_dir=MNIST_DIR)
    assert third.trained == ["hidden=100/init=large/seed=0"] and len(third.cached) == 3
    assert json.loads(victim.read_text())["history"]["validation_accuracy"] == old["history"]["validation_accuracy"]
    # a run file that is not valid is trained again, not trusted
    victim.write_text("{broken")
    assert experiments.run_experiment(exp, tmp_path, quick=True, data_dir=MNIST_DIR).trained == [
        "hidden=100/init=large/seed=0"]



def test_several_experiments_run_as_one_batch_biggest_first(tmp_path):
    import dataclasses

    eta, init = experiments.get("multiple-eta"), experiments.get("weight-initialization")
    twin = dataclasses.replace(eta, name="multiple-eta-twin")   # the same configurations as multiple-eta
    batches = []

    def executor(jobs, **kwargs):
        batches.append(dict(jobs))
        yield from experiments.runner.execute_serially(jobs, **kwargs)

    seen = []
    results = experiments.run_experiments([eta, init, twin], tmp_path, quick=True, data_dir=MNIST_DIR,
                                          executor=executor, on_result=lambda *a: seen.append(a[0]))
    # one batch; a configuration two experiments share runs once, the biggest first
    assert len(batches) == 1
    labels = list(batches[0])
    assert len(labels) == len(eta.jobs(quick=True)) + len(init.jobs(quick=True))
    assert not any(label.startswith("multiple-eta-twin/") for label in labels)
    work = [experiments.base.job_work(job) for job in batches[0].values()]
    assert work == sorted(work, reverse=True) and work[0] > work[-1]
    # every experiment gets all its runs, as if run alone
    assert [r.experiment.name for r in results] == ["multiple-eta", "weight-initialization", "multiple-eta-twin"]
    alone = experiments.run_experiment(init, tmp_path / "alone", quick=True, data_dir=MNIST_DIR)
    for res in results:
        assert res.checks and all(c.passed for c in res.checks)
        assert len(res.trained) == len(res.experiment.jobs(quick=True))
    same = experiments.base.without_times
    assert {k: same(v) for k, v in results[1].results.raw.items()} == {k: same(v) for k, v in alone.results.raw.items()}
    assert results[2].results.raw == results[0].results.raw
    assert sorted(seen) == sorted(f"{r.experiment.name}/{label}" for r in results for label in r.trained)
    # the next time, everything is cached
    again = experiments.run_experiments([eta, twin], tmp_path, quick=True, data_dir=MNIST_DIR, executor=executor)
    assert len(batches) == 2 and batches[1] == {} and all(not r.trained and r.cached for r in again)
    with pytest.raises(ConfigError, match="--only"):
        experiments.run_experiments([eta, init], tmp_path, quick=True, only=["eta"])


def test_report_holds_every_figure_and_book_row(out):
    for name in ("overfitting", "vanishing-gradient"):
        experiments.run_experiment(experiments.get(name), out, quick=True, data_dir=MNIST_DIR)
    text = experiments.write_report(out).read_text()
    for name in ("overfitting", "vanishing-gradient"):
        summary = json.loads((out / name / "results.json").read_text())
        for fig in summary["figures"]:
            assert f"]({name}/{fig})" in text and (out / name / fig).is_file()
        for row in summary["book"]:
            assert row["quantity"] in text
    assert "| experiment | quantity | book | nndl | within |" in text


def run_cli(capsys, *argv):
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err, *fragments):
    assert code != 0 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[0].startswith("nndl"), err
    for f in fragments:
        assert f in err, (f, err)


def test_experiment_list_names_every_experiment(capsys):
    code, out, _ = run_cli(capsys, "experiment", "list")
    assert code == 0
    for name in ["ch1-network", "ch1-hidden-100", "baselines", "overfitting", "overfitting-l2", "l2-full",
                 "weight-initialization", "multiple-eta", "more-data", "early-stopping", "vanishing-gradient",
                 "gradient-magnitudes", "ch6-ladder"]:
        assert any(line.startswith(name + " ") for line in out.splitlines()), name


def test_experiment_cli_run_and_report(tmp_path, capsys):
    code, out, err = run_cli(capsys, "experiment", "run", "gradient-magnitudes", "--quick", "--out", tmp_path,
                             "--data-dir", MNIST_DIR, "--no-progress")
    assert code == 0, err
    assert "[ok]" in out and "1 run(s) trained, 0 cached" in out
    code, out, _ = run_cli(capsys, "experiment", "run", "gradient-magnitudes", "--quick", "--out", tmp_path,
                           "--data-dir", MNIST_DIR, "--no-progress")
    assert code == 0 and "0 run(s) trained, 1 cached" in out
    code, out, _ = run_cli(capsys, "experiment", "report", "--out", tmp_path)
    assert code == 0 and (tmp_path / "report.md").is_file()
    # two experiments in one command: one batch, each summarised; the cached run is not run again
    code, out, err = run_cli(capsys, "experiment", "run", "gradient-magnitudes", "vanishing-gradient", "--quick",
                             "--out", tmp_path, "--data-dir", MNIST_DIR, "--no-progress")
    assert code == 0, err
    assert out.startswith("Experiments gradient-magnitudes, vanishing-gradient: ")
    assert "gradient-magnitudes:\n" in out and "vanishing-gradient:\n" in out
    assert "  0 run(s) trained, 1 cached; results in" in out
    n = len(experiments.get("vanishing-gradient").jobs(quick=True))
    assert f"  {n} run(s) trained, 0 cached; results in" in out
    assert f"\n{n} run(s) trained in one batch, in " in out
    assert (tmp_path / "vanishing-gradient" / "results.json").is_file()


def test_experiment_bad_input(tmp_path, capsys, monkeypatch):
    code, _, err = run_cli(capsys, "experiment", "run", "overfit")
    one_line_error(code, err, "unknown experiment 'overfit'", "overfitting, overfitting-l2")
    blocker = tmp_path / "file"
    blocker.write_text("x")

    def no_training(*a, **k):
        raise AssertionError("trained before checking --out")
    monkeypatch.setattr(experiments.runner, "execute_serially", no_training)
    code, _, err = run_cli(capsys, "experiment", "run", "overfitting", "--quick", "--out", blocker)
    one_line_error(code, err, "is not a folder")
    code, _, err = run_cli(capsys, "experiment", "run", "overfitting", "--quick", "--out", blocker / "sub")
    one_line_error(code, err, "not a folder")
    code, _, err = run_cli(capsys, "experiment", "run", "ch6-ladder", "--quick", "--out", tmp_path / "o",
                           "--only", "nothing")
    one_line_error(code, err, "--only nothing", "fc/seed=0")
    code, _, err = run_cli(capsys, "experiment", "run", "overfitting", "ch6-ladder", "--quick", "--out",
                           tmp_path / "o", "--only", "fc")
    one_line_error(code, err, "--only selects runs of one experiment")
    code, _, err = run_cli(capsys, "experiment", "run", "overfitting", "overfit", "--quick", "--out", tmp_path / "o")
    one_line_error(code, err, "unknown experiment 'overfit'")
    code, _, err = run_cli(capsys, "experiment", "report", "--out", tmp_path / "empty")
    one_line_error(code, err, "not a folder of experiment results")


def test_plot_a_history(tmp_path, capsys):
    hist = tmp_path / "h.json"
    code, _, err = run_cli(capsys, "train", "--data-dir", MNIST_DIR, "--epochs", "2", "--train-size", "2000",
                           "--monitor", "test", "training:cost", "--history", hist, "--record-gradients",
                           "--no-progress")
    assert code == 0, err
    fig = tmp_path / "f.png"
    code, out, err = run_cli(capsys, "plot", hist, hist, "--metrics", "test_accuracy", "training_cost", "-o", fig)
    assert code == 0, err
    import matplotlib.image
    image = matplotlib.image.imread(fig)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    code, _, err = run_cli(capsys, "plot", hist, "--gradients", "-o", tmp_path / "g.png")
    assert code == 0 and (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("content, fragment", [
    ("{broken", "cannot read history"),
    ('{"weights": [[1, 2]], "sizes": [2, 1]}', "is not an nndl history"),
    ("[1, 2, 3]", "is not an nndl history"),
])
def test_plot_refuses_foreign_files(tmp_path, capsys, content, fragment):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    code, _, err = run_cli(capsys, "plot", bad, "-o", tmp_path / "f.png")
    one_line_error(code, err, fragment)
    assert not (tmp_path / "f.png").exists()


def test_plot_needs_png_and_existing_metrics(tmp_path, capsys):
    hist = tmp_path / "h.json"
    hist.write_text(json.dumps({"epoch_seconds": [0.1], "test_accuracy": [0.9]}))
    code, _, err = run_cli(capsys, "plot", hist, "-o", tmp_path / "f.svgz")
    one_line_error(code, err, "PNG")
    code, _, err = run_cli(capsys, "plot", hist, "--metrics", "training_cost", "-o", tmp_path / "f.png")
    one_line_error(code, err, "has no training_cost", "test_accuracy")
    code, _, err = run_cli(capsys, "plot", tmp_path / "missing.json", "-o", tmp_path / "f.png")
    one_line_error(code, err, "no such file")


def test_jobs_round_trip_and_keys():
    for name in experiments.names():
        for label, job in experiments.get(name).jobs(quick=True).items():
            d = json.loads(json.dumps(experiments.job_to_dict(job)))
            assert experiments.job_key(experiments.job_from_dict(d)) == experiments.job_key(job), label
    with pytest.raises(ConfigError, match="valid experiments"):
        experiments.get("nope")
    with pytest.raises(ConfigError, match="seeds"):
        experiments.get("overfitting").jobs(seeds=0)
